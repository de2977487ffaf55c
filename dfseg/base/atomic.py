"""Atomic file writes: a temp file beside the destination, fsync, rename.

A write that fails (disk full, a kill, an exception while producing the content) leaves the
previous file byte for byte; :func:`atomic_write_group` extends that to a set of files that
belong together (a prototxt and its caffemodel): either all are new or none is.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Mapping

__all__ = ["atomic_save_figure", "atomic_write", "atomic_write_bytes", "atomic_write_group",
           "atomic_write_text"]


def _temp_beside(path: Path, binary: bool) -> tuple[IO, Path]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    return os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8"), Path(tmp)


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"folder {path.parent} does not exist", str(path))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """``with atomic_write(p) as f: f.write(...)``; ``p`` changes only if the block succeeds."""
    path = Path(path)
    _check_destination(path)
    f, tmp = _temp_beside(path, binary)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _keep_mode(path, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """The error with the destination's name (a write error names only a file descriptor)."""
    if isinstance(exc.filename, str) and exc.filename and exc.strerror:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _keep_mode(path: Path, tmp: Path) -> None:
    # mkstemp creates 0600; a rewritten file keeps its mode, a new one gets the umask's.
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, binary=True) as f:
        f.write(data)
    return Path(path)


def atomic_write_group(contents: Mapping[str | os.PathLike, bytes | str]) -> list[Path]:
    """Write several files so that none is replaced unless all were written.

    Every file is first written in full to a temp file beside it; only then are they renamed
    into place, one after another (renames do not fail for lack of space). If any write fails,
    every temp file is removed and every destination is left as it was.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for dest, data in contents.items():
            dest = Path(dest)
            _check_destination(dest)
            binary = isinstance(data, (bytes, bytearray))
            f, tmp = _temp_beside(dest, binary)
            staged.append((dest, tmp))
            with f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            _keep_mode(dest, tmp)
    except BaseException as exc:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and staged:
            raise _naming(exc, staged[-1][0]) from exc
        raise
    for dest, tmp in staged:
        os.replace(tmp, dest)
    return [dest for dest, _ in staged]


def atomic_save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """``fig.savefig`` through :func:`atomic_write`; the format follows the file's suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path, binary=True) as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)
    return path
