"""Find the Caffe that dfseg runs on, and import pycaffe: the one place the rest of the
project asks.

Search order:
1. ``$CAFFE_ROOT`` — an install prefix (``bin/caffe``, ``lib/python3/dist-packages/caffe``)
   or a BVLC source tree built in place (``build/tools/caffe``, ``python/caffe``);
2. a pycaffe that is already importable (``import caffe`` works on the current ``sys.path``);
3. ``build/caffe`` in this repository, made by ``make caffe``.

Whatever is found must have the Interp layer (the released DF-Seg nets and ICNet use it);
a Caffe without it is rejected with a message saying so, not used to fail later.  Every way
of not getting a usable Caffe is one :class:`CaffeNotFound` (bad input: a command prints one
line and exits 2; a test fails with the reason).

``make caffe-gpu`` builds the CUDA Caffe at ``build/caffe-gpu``; ``make ... CAFFE_GPU=1``
points ``$CAFFE_ROOT`` at it and sets ``DFSEG_CAFFE_DEVICE=gpu`` (read by
:func:`caffe_device`), which the Caffe engines (tools.engines.caffe) run on.

pycaffe is imported on first use (:func:`import_caffe`, :func:`load_caffe`), never when this
module is imported: Caffe is optional for everything that does not train or run a net.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from dfseg.base.errors import InputError

__all__ = ["BUILT_CAFFE", "BUILT_CAFFE_GPU", "DEVICE_VARIABLE", "REQUIRED_LAYERS", "CaffeInstall",
           "CaffeNotFound", "caffe_available", "caffe_binary", "caffe_device", "caffe_root",
           "checked_install", "find_caffe", "import_caffe", "load_caffe"]

REPO = Path(__file__).resolve().parents[2]   # tools/runtime/caffe.py -> the checkout
BUILT_CAFFE = REPO / "build" / "caffe"
BUILT_CAFFE_GPU = REPO / "build" / "caffe-gpu"
REQUIRED_LAYERS = ("Interp",)
DEVICE_VARIABLE = "DFSEG_CAFFE_DEVICE"

_BINARY_CANDIDATES = ("bin/caffe", "build/tools/caffe", "build/tools/caffe.bin",
                      ".build_release/tools/caffe.bin", "build/install/bin/caffe")
_PYTHON_CANDIDATES = ("lib/python3/dist-packages", "python", "build/install/python")
_LIBRARY_GLOBS = ("lib/libcaffe.so*", "build/lib/libcaffe.so*", ".build_release/lib/libcaffe.so*")


class CaffeNotFound(InputError, RuntimeError):
    """No usable Caffe: none found, one without a layer dfseg needs, or a pycaffe that does
    not import; the message says why and how to get one."""


@dataclass(frozen=True)
class CaffeInstall:
    root: Path
    source: str                 # how it was found: "$CAFFE_ROOT", "importable pycaffe", "make caffe"
    binary: Path | None         # the `caffe` command-line tool
    python_dir: Path | None     # directory to put on sys.path for `import caffe`


def _python_dir(root: Path) -> Path | None:
    candidates = [root / c for c in _PYTHON_CANDIDATES]
    candidates += sorted(root.glob("lib/python3*/site-packages"))
    for d in candidates:
        if (d / "caffe" / "__init__.py").is_file() and any((d / "caffe").glob("_caffe*.so")):
            return d
    return None


def _binary(root: Path) -> Path | None:
    for c in _BINARY_CANDIDATES:
        p = root / c
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def _install_at(root: Path, source: str) -> CaffeInstall:
    root = root.resolve()
    if not root.is_dir():
        raise CaffeNotFound(f"{source} points at {root}, which is not a directory")
    install = CaffeInstall(root, source, _binary(root), _python_dir(root))
    if install.binary is None and install.python_dir is None:
        raise CaffeNotFound(f"{source} = {root} holds neither a caffe binary "
                            f"({', '.join(_BINARY_CANDIDATES)}) nor pycaffe")
    return install


def _importable_pycaffe() -> CaffeInstall | None:
    spec = importlib.util.find_spec("caffe")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).resolve().parent
    if not any(package.glob("_caffe*.so")):
        return None                  # some other package called "caffe"
    python_dir = package.parent
    # .../python/caffe (source tree) or .../lib/python3/dist-packages/caffe (install prefix)
    root = python_dir.parent if python_dir.name == "python" else python_dir.parent.parent.parent
    return CaffeInstall(root, "importable pycaffe", _binary(root), python_dir)


def find_caffe() -> CaffeInstall:
    """The Caffe to use, per the search order in the module docstring (not yet checked for Interp)."""
    if os.environ.get("CAFFE_ROOT"):
        return _install_at(Path(os.environ["CAFFE_ROOT"]), "$CAFFE_ROOT")
    found = _importable_pycaffe()
    if found is not None:
        return found
    if BUILT_CAFFE.exists():
        return _install_at(BUILT_CAFFE, "make caffe")
    raise CaffeNotFound("no Caffe found: run `make caffe` (or set CAFFE_ROOT to a Caffe "
                        "with the Interp layer)")


def _missing_layers_in_libraries(install: CaffeInstall) -> list[str]:
    """Layers missing from a Caffe we cannot import: look for their class names in its
    shared library (or a statically linked binary)."""
    files = [p for g in _LIBRARY_GLOBS for p in install.root.glob(g) if p.is_file()]
    if not files and install.binary is not None:
        files = [install.binary]
    blobs = [f.read_bytes() for f in files]
    return [name for name in REQUIRED_LAYERS
            if not any(f"{name}Layer".encode() in b for b in blobs)]


def _reject_missing(install: CaffeInstall, missing: list[str]) -> None:
    if missing:
        raise CaffeNotFound(
            f"the Caffe at {install.root} (found via {install.source}) has no "
            f"{', '.join(missing)} layer, which the DF-Seg and ICNet nets need: run `make caffe` "
            "for dfseg's own build" + (" and unset CAFFE_ROOT" if install.source == "$CAFFE_ROOT"
                                       else ""))


def checked_install() -> CaffeInstall:
    """The Caffe to use, checked for the layers dfseg needs."""
    install = find_caffe()
    if install.python_dir is not None:
        module = _import_from(install)
        _reject_missing(install, [n for n in REQUIRED_LAYERS if n not in module.layer_type_list()])
    else:
        _reject_missing(install, _missing_layers_in_libraries(install))
    return install


def _import_from(install: CaffeInstall) -> ModuleType:
    # Caffe logs every layer it builds at INFO; keep that out of Python users' way unless asked.
    os.environ.setdefault("GLOG_minloglevel", "2")
    if install.python_dir is not None and str(install.python_dir) not in sys.path:
        sys.path.insert(0, str(install.python_dir))
    stale = sys.modules.get("caffe")
    if stale is not None and not hasattr(stale, "layer_type_list"):
        # e.g. this repository's caffe/ directory imported as a namespace package
        del sys.modules["caffe"]
    try:
        module = importlib.import_module("caffe")
    except ImportError as e:
        raise CaffeNotFound(f"pycaffe at {install.python_dir} does not import ({e}): "
                            "run `make caffe`") from e
    return module


def caffe_root() -> Path:
    """Root directory of the Caffe to use (install prefix or source tree)."""
    return checked_install().root


def caffe_binary() -> Path:
    """Path of the `caffe` command-line tool."""
    install = checked_install()
    if install.binary is None:
        raise CaffeNotFound(f"the Caffe at {install.root} (found via {install.source}) has "
                            "pycaffe but no `caffe` binary: run `make caffe`")
    return install.binary


def import_caffe() -> ModuleType:
    """Import and return pycaffe (sys.path set up, glog quiet unless GLOG_minloglevel is set)."""
    install = checked_install()
    if install.python_dir is None:
        raise CaffeNotFound(f"the Caffe at {install.root} (found via {install.source}) has no "
                            "pycaffe: run `make caffe`")
    return _import_from(install)


def caffe_device() -> int | None:
    """The GPU the Caffe engines run on (``$DFSEG_CAFFE_DEVICE``: ``gpu`` = ``gpu:0``,
    ``gpu:N``), or None for the CPU (unset, empty or ``cpu``)."""
    value = os.environ.get(DEVICE_VARIABLE, "").strip().lower()
    if value in ("", "cpu"):
        return None
    kind, _, index = value.partition(":")
    if kind != "gpu" or not (index or "0").isdigit():
        raise CaffeNotFound(f"${DEVICE_VARIABLE}={value!r}: cpu, gpu or gpu:N")
    return int(index or "0")


_loaded: ModuleType | None = None


def load_caffe() -> ModuleType:
    """pycaffe for the training code: imported once and set to CPU mode (the training and
    evaluation runs are CPU runs; the engines choose their device with caffe_device)."""
    global _loaded
    if _loaded is None:
        try:
            module = import_caffe()
        except CaffeNotFound:
            raise
        except Exception as e:  # a broken build: pycaffe's own imports, a missing symbol
            raise CaffeNotFound(f"pycaffe is not available ({e}): run `make caffe`") from None
        module.set_mode_cpu()
        _loaded = module
    return _loaded


def caffe_available() -> tuple[bool, str]:
    """(available, reason) without raising."""
    try:
        load_caffe()
        return True, ""
    except CaffeNotFound as e:
        return False, str(e)
