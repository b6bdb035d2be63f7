"""A throwaway PostgreSQL server for the tests, made from the machine's own server binaries.

One server per test session (tests/conftest.py's `postgres_server` fixture): `initdb` into a
temporary folder, `pg_ctl start` listening on a unix socket in that folder only
(`listen_addresses=''`: nothing on the network), durability switched off (a crash of the
*server* is not what the tests exercise; clients are killed, the server stays up). Each test
gets a fresh database copied from a template that already holds the migrated schema
(CREATE DATABASE … TEMPLATE: tens of milliseconds), dropped when the test ends.

Binaries: `$GENTRIAGE_TEST_PG_BIN` (a folder holding initdb, pg_ctl and postgres; an empty
folder means "none here" — how the suite checks it passes without PostgreSQL), else the
newest /usr/lib/postgresql/*/bin, else the folder of an `initdb` on PATH. Where there are
none, the PostgreSQL half of every parametrised test skips with a reason that says so.

initdb refuses to run as root (CI runs as root): the server then runs as an unprivileged
account — `postgres` where it exists, else `nobody` — owning the data folder; the tests,
as root, reach its socket all the same. As any other user it simply runs as that user.

The server's default collation is ICU's en-US where the binaries support ICU (a typical
studio server sorts by a language's rules, not by bytes), so tests catch queries that
assume byte order; the schema asks for byte order where it needs it (db.dialect).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN_ENV = "GENTRIAGE_TEST_PG_BIN"
SUPERUSER = "gentriage_admin"
# The role that owns every test database: not a superuser, as a studio's GenTriage role
# would be (so the migrations are checked to need no more than owning the database).
OWNER = "gentriage"
TEMPLATE = "gentriage_template"
START_TIMEOUT_S = 60
_UNPRIVILEGED = ("postgres", "nobody")


def _version(folder: str) -> tuple[int, ...]:
    match = re.search(r"postgresql/(\d+(?:\.\d+)?)/bin", folder)
    return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)


def find_binaries() -> Path | None:
    """The folder with initdb, pg_ctl and postgres, or None (see the module docstring)."""
    override = os.environ.get(BIN_ENV)
    if override is not None:
        candidates = [Path(override)]
    else:
        folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
        candidates = [Path(f) for f in folders]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def missing_reason() -> str:
    where = os.environ.get(BIN_ENV) or "/usr/lib/postgresql/*/bin or PATH"
    return (f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {where}; "
            f"install the postgresql package or set {BIN_ENV} to run the PostgreSQL half")


def _run_as() -> str | None:
    """The account the server runs as: None for the current user, unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged account (postgres, nobody) "
                       "to run the PostgreSQL test server as")


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str | None

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "server.log"

    def url(self, database: str, role: str = OWNER) -> str:
        """A SQLAlchemy URL for `database` over the server's unix socket."""
        return (f"postgresql+psycopg://{role}@/{database}"
                f"?host={self.socket_dir}&port={self.port}")

    # --- life cycle ---------------------------------------------------------------------

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / name), *args], cwd=self.root, user=self.user,
                              capture_output=True, text=True, check=check,
                              timeout=START_TIMEOUT_S)

    def start(self) -> None:
        for folder in (self.data_dir, self.socket_dir, self.log_file.parent):
            folder.mkdir(mode=0o700)
            if self.user is not None:
                info = pwd.getpwnam(self.user)
                os.chown(folder, info.pw_uid, info.pw_gid)
        base = ["-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                "--no-sync"]
        icu = self._tool("initdb", *base, "--locale=C.UTF-8", "--locale-provider=icu",
                         "--icu-locale=en-US", check=False)
        if icu.returncode != 0:  # binaries without ICU (or older than 15): plain C.UTF-8
            shutil.rmtree(self.data_dir)
            self.data_dir.mkdir(mode=0o700)
            if self.user is not None:
                info = pwd.getpwnam(self.user)
                os.chown(self.data_dir, info.pw_uid, info.pw_gid)
            self._tool("initdb", *base, "--locale=C.UTF-8")
        options = " ".join([
            "-c listen_addresses=''", f"-c unix_socket_directories='{self.socket_dir}'",
            f"-p {self.port}", "-c fsync=off", "-c synchronous_commit=off",
            "-c full_page_writes=off", "-c max_connections=300", "-c shared_buffers=64MB",
        ])
        self._tool("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D",
                   str(self.data_dir), "-l", str(self.log_file), "-o", options)

    def stop(self) -> None:
        try:
            self._tool("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate",
                       check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    # --- databases -----------------------------------------------------------------------

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, outside any transaction (CREATE DATABASE)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url("postgres", SUPERUSER), isolation_level="AUTOCOMMIT",
                               poolclass=_null_pool())
        try:
            with engine.connect() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()

    def make_template(self) -> None:
        """The migrated, empty library every test database is copied from."""
        from db.engine import open_library

        self.admin(f"CREATE ROLE {OWNER} LOGIN")
        self.admin(f"CREATE DATABASE {TEMPLATE} OWNER {OWNER}")
        open_library(self.url(TEMPLATE)).dispose()

    def create_database(self, *, blank: bool = False) -> str:
        """A fresh library database (a copy of the migrated template; `blank`: an empty
        database, as `createdb` makes it, for tests of schema creation); returns its name."""
        name = f"library_{os.getpid()}_{next(_numbers)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {'template0' if blank else TEMPLATE} "
                   f"OWNER {OWNER}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_numbers = itertools.count(1)


def _null_pool() -> type:
    from sqlalchemy.pool import NullPool

    return NullPool


def start_server(bindir: Path) -> PostgresServer:
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="gentriage-pg-"))
    root.chmod(0o755)  # the server's account must reach its folders inside
    # The port only names the socket file (no TCP): any number, unlikely to be in use.
    server = PostgresServer(bindir, root, 20000 + os.getpid() % 20000, user)
    try:
        server.start()
        server.make_template()
    except Exception as exc:
        output = getattr(exc, "stderr", "") or ""
        log = server.log_tail()
        server.stop()
        raise RuntimeError(f"the PostgreSQL test server did not start: {exc}\n{output}\n"
                           f"{log}") from exc
    return server
