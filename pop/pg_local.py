"""A real PostgreSQL server on loopback, for the tests and benchmarks of the distributed search.

Debian's ``postgresql`` package (apt-installed when missing and we are root, as CI is),
``initdb`` in a folder of the caller's, ``postgres`` on a free 127.0.0.1 port with its socket
in that folder.  PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user the package creates.  The superuser logs in without a password (``trust``,
loopback only); :meth:`LocalPostgres.add_role` adds a role whose password the server checks
(scram-sha-256), so a URL with a password in it is tested for real.

Nothing here stays behind: :meth:`LocalPostgres.close` stops the server; the folder is the
caller's to remove.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from dfseg.base.atomic import atomic_write_text
from dfseg.base.errors import InputError


class PostgresUnavailable(InputError, RuntimeError):
    """No PostgreSQL server can be installed or started here; the message says why."""


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or None."""
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists():
            return root
    return None


def ensure_installed(log=print) -> Path:
    """Debian's postgresql package, apt-installed when missing (root only): its bin folder."""
    if (bindir := pg_bindir()) is not None:
        return bindir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable("PostgreSQL is not installed and cannot be installed here "
                                  "(needs root and apt-get: apt-get install postgresql)")
    log("installing Debian's postgresql package (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PostgresUnavailable(f"{' '.join(cmd)} failed: {tail[0]}")
    if (bindir := pg_bindir()) is None:
        raise PostgresUnavailable("postgresql installed but initdb not found under /usr/lib/postgresql")
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPostgres:
    """One server: data in ``root/db``, socket in ``root``, log in ``root/server.log``."""

    root: Path
    bindir: Path
    port: int
    run_as: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "db"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def admin_url(self) -> str:
        """The superuser (no password: trust on loopback)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = self.run_as + [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise PostgresUnavailable(f"pg_ctl {' '.join(args)} failed: "
                                      f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return done

    def start(self) -> None:
        """Start (again) and wait until it accepts connections."""
        self._ctl("-l", str(self.log), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: fast ends every session at once (a restart, a failover)."""
        self._ctl("-m", mode, "-w", "stop")

    def close(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop", check=False)

    def add_role(self, name: str, password: str, database: str) -> str:
        """A login role with `password`, owner of a new `database`, that must give its password
        (scram-sha-256 from 127.0.0.1); returns "127.0.0.1:PORT" once the server asks for it."""
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            # psycopg2 quotes the parameter on the client: a utility statement takes no server-side one
            c.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD %(pw)s", {"pw": password})
            c.exec_driver_sql(f"CREATE DATABASE {database} OWNER {name}")
        hba = self.data / "pg_hba.conf"
        owner = hba.stat()
        atomic_write_text(hba, f"host all {name} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        os.chown(hba, owner.st_uid, owner.st_gid)   # the server (user postgres) reads it
        with admin.connect() as c:
            c.execute(sa.text("SELECT pg_reload_conf()"))
        admin.dispose()
        self._wait_for_password(name, database)
        return f"127.0.0.1:{self.port}"

    def _wait_for_password(self, name: str, database: str, timeout: float = 20.0) -> None:
        import psycopg2   # the reload is asynchronous: wait until the role is asked its password
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(host="127.0.0.1", port=self.port, user=name, dbname=database,
                                 passfile="/nonexistent/pgpass").close()
            except psycopg2.OperationalError:
                return
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"pg_hba.conf reload: role {name} still gets in without a password")
            time.sleep(0.1)


def start_local(root: Path, log=print) -> LocalPostgres:
    """Install when needed, initdb in ``root`` and start on a free loopback port."""
    bindir = ensure_installed(log)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    run_as: list[str] = []
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            raise PostgresUnavailable("running as root, but there is no `postgres` user to run the server as")
        if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(root.parent)]).returncode != 0:
            raise PostgresUnavailable(f"{root.parent}: the postgres user cannot enter it (chmod o+x its folders)")
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(root / "db"), "-A", "trust", "-U", "postgres",
                                    "--no-sync"], capture_output=True, text=True)
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
    server = LocalPostgres(root, bindir, free_port(), run_as)
    server.start()
    return server
