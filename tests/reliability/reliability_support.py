"""Helpers for the reliability suite: generated image folders, subprocess runs of GenTriage
(and of small Python programs using its modules), and read-only checks of a library — a
SQLite file or a PostgreSQL database (`db` below: a path, a URL, or tests' LibraryDatabase;
the checks use plain connections, no GenTriage code)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
NSFW_ONLY = ["--analysers", "nsfw-default"]


def write_images(folder: Path, count: int, prefix: str = "img", size: int = 24,
                 parameters: bool = True) -> list[Path]:
    """`count` distinct small PNGs (A1111-style metadata when `parameters`)."""
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        digest = hashlib.sha256(f"{folder}/{prefix}{i}".encode()).digest()
        pixels = (digest * (size * size * 3 // len(digest) + 1))[: size * size * 3]
        info = PngInfo()
        if parameters:
            info.add_text("parameters", f"a photo number {i}\nNegative prompt: blurry\n"
                          f"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {i}, "
                          f"Size: {size}x{size}, Model: model{i % 3}")
        path = folder / f"{prefix}{i:04d}.png"
        Image.frombytes("RGB", (size, size), pixels).save(path, "PNG", pnginfo=info)
        paths.append(path)
    return paths


def child_env(home: Path, extra_path: Sequence[str | Path] = (), **extra: str) -> dict[str, str]:
    """The environment of a GenTriage child: its own home, the repository (and `extra_path`,
    e.g. a sitecustomize folder) importable, offline, offscreen."""
    env = dict(os.environ)
    env["GENTRIAGE_HOME"] = str(home)
    env.pop("GENTRIAGE_DB", None)
    env.pop("GENTRIAGE_MODELS_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), str(REPO)])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def gentriage(args: Sequence[str], home: Path, timeout: float = 120,
              extra_path: Sequence[str | Path] = (), **env: str) -> Done:
    """`python -m gentriage ARGS` to completion (stdout is a pipe: plain progress)."""
    proc = subprocess.run([sys.executable, "-m", "gentriage", *args], cwd=REPO,
                          env=child_env(home, extra_path, **env), capture_output=True,
                          text=True, timeout=timeout)
    return Done(proc.returncode, proc.stdout, proc.stderr)


def start_gentriage(args: Sequence[str], home: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gentriage", *args], cwd=REPO,
                            env=child_env(home, (), **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def start_python(code: str, home: Path, *args: str, **env: str) -> subprocess.Popen:
    """A Python child running `code` (line-buffered stdout) with GenTriage importable."""
    return subprocess.Popen([sys.executable, "-u", "-c", code, *args], cwd=REPO,
                            env=child_env(home, (), **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL (if still running) and reap; the pipes are left to whoever reads them."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(60)


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               alive: subprocess.Popen | None = None) -> None:
    """Poll `condition` (never a blind sleep) until it holds; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and alive.poll() is not None:
            out, err = alive.communicate()
            raise AssertionError(f"process ended before {what}: rc={alive.returncode}\n"
                                 f"{out[-2000:]}\n{err[-4000:]}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------- db checks

def _is_url(db: Any) -> bool:
    return "://" in str(db)


def _sqlite_file(db: Any) -> Path:
    return Path(str(db))


@contextmanager
def connect_ro(db: Any, *, read_only: bool = True) -> Iterator[Any]:
    """A plain SQLAlchemy connection to the library (SQLite: read-only unless asked; a
    read-write one replays a leftover WAL). Rows come back as tuples, as from sqlite3."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    if _is_url(db):
        engine = create_engine(str(db), poolclass=NullPool)
    else:
        mode = "?mode=ro&uri=true" if read_only else ""
        prefix = "file:" if read_only else ""
        engine = create_engine(f"sqlite:///{prefix}{_sqlite_file(db)}{mode}", poolclass=NullPool,
                               connect_args={"timeout": 30})
    try:
        with engine.connect() as connection:
            yield _Plain(connection)
    finally:
        engine.dispose()


class _Plain:
    """`conn.execute(sql)` with plain SQL text, as sqlite3 offers it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        from sqlalchemy import text

        return self.connection.execute(text(sql), parameters or {})

    @property
    def dialect(self) -> str:
        return str(self.connection.dialect.name)


def counts(db: Any) -> dict[str, int]:
    """Row counts of the main tables; zeros while the schema does not exist yet."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    tables = ("folders", "images", "contents", "analysis_results", "analysis_queue",
              "review_log")
    if not _is_url(db) and not _sqlite_file(db).exists():
        return dict.fromkeys(tables, 0)
    try:
        with connect_ro(db) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").scalar_one() for t in tables}
    except (OperationalError, ProgrammingError):
        return dict.fromkeys(tables, 0)


def integrity_problems(db: Any) -> list[str]:
    """SQLite: what `PRAGMA integrity_check` and `foreign_key_check` report (PostgreSQL
    checks both on every write); both: duplicate rows the schema's keys should make
    impossible (empty = healthy)."""
    from sqlalchemy import inspect

    with connect_ro(db, read_only=False) as conn:
        problems: list[str] = []
        if conn.dialect == "sqlite":
            problems += [row[0] for row in conn.execute("PRAGMA integrity_check")
                         if row[0] != "ok"]
            problems += [f"foreign key: {tuple(row)}"
                         for row in conn.execute("PRAGMA foreign_key_check")]
        tables = set(inspect(conn.connection).get_table_names())
        for table, key in (("images", "path"), ("contents", "sha256"),
                           ("analysis_queue", "content_id"),
                           ("analysis_results", "content_id, analyser")):
            if table not in tables:  # killed before the schema was created
                continue
            dupes = conn.execute(f"SELECT {key}, count(*) FROM {table} GROUP BY {key} "
                                 "HAVING count(*) > 1").fetchall()
            problems += [f"duplicate {table} row {tuple(d)}" for d in dupes]
    return problems


def summary_lines(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


# ----------------------------------------------------------------------------- the reviewer

# A second GenTriage process doing what the app does on a keypress: write a decision through
# db.review and commit *before* acknowledging it (the app commits before the cursor moves),
# and read grid pages through db.queries between writes. Protocol on stdout, one line each:
#   TRY <content id> <decision>     about to write
#   ACK <content id> <decision>     committed
#   PAGE <rows>                     a page was read
#   ERR <message>                   anything that went wrong (the test fails on any)
# It runs until `max_acks` decisions are acknowledged or the file `stop` exists.
REVIEWER = r'''
import sys, os, traceback
from pathlib import Path
from db.engine import open_library, session_factory
from db.transaction import write_transaction
from db import review, queries
from db.filters import ImageFilter
from db.schema import Content, Image
from sqlalchemy import select

db, stop, max_acks = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
sessions = session_factory(open_library(db))
cycle = ["accepted", "rejected", "none", "accepted"]
acks = i = 0
while acks < max_acks and not stop.exists():
    try:
        with sessions() as s:
            rows, _ = queries.fetch_page(s, ImageFilter(), limit=50)
        print(f"PAGE {len(rows)}", flush=True)
        ids = sorted({r.content_id for r in rows if r.content_id is not None})
        if not ids:
            continue
        cid = ids[i % len(ids)]
        decision = cycle[(i // len(ids)) % len(cycle)]
        i += 1
        print(f"TRY {cid} {decision}", flush=True)
        with write_transaction(sessions) as s:  # as the app writes
            review.set_decision(s, [cid], decision, source="app")
        print(f"ACK {cid} {decision}", flush=True)
        acks += 1
    except Exception:
        print("ERR " + traceback.format_exc().replace("\n", " | "), flush=True)
        break
'''


@dataclass
class ReviewLog:
    """What the reviewer child said, parsed."""

    acked: dict[int, str]  # content id -> last acknowledged decision
    pending: dict[int, str]  # content id -> a decision tried after its last ack (not acked)
    n_acks: int
    errors: list[str]


def parse_reviewer(stdout: str) -> ReviewLog:
    acked: dict[int, str] = {}
    pending: dict[int, str] = {}
    errors = []
    n_acks = 0
    for line in stdout.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "TRY" and len(parts) == 3:
            pending[int(parts[1])] = parts[2]
        elif parts[0] == "ACK" and len(parts) == 3:
            acked[int(parts[1])] = parts[2]
            pending.pop(int(parts[1]), None)
            n_acks += 1
        elif parts[0] == "ERR":
            errors.append(line)
    return ReviewLog(acked, pending, n_acks, errors)


def lost_decisions(db: Any, log: ReviewLog) -> list[str]:
    """Acknowledged decisions the database does not hold (a decision tried after the last
    acknowledgement may or may not have committed before a kill: either value is right)."""
    with connect_ro(db) as conn:
        current = dict(conn.execute("SELECT id, decision FROM contents").all())
    lost = []
    for cid, decision in log.acked.items():
        allowed = {decision, log.pending.get(cid, decision)}
        if current.get(cid) not in allowed:
            lost.append(f"content {cid}: {current.get(cid)!r}, acknowledged {decision!r}")
    return lost


class Lines:
    """Collects a child's stdout lines on a thread, so the test can wait on them."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, prefix: str) -> int:
        return sum(line.startswith(prefix) for line in list(self.lines))

    def finish(self, timeout: float = 60) -> tuple[str, str]:
        """Wait for the process to end (kill it first if you need it dead); all output."""
        self.proc.wait(timeout)
        self._thread.join(timeout)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return "\n".join(self.lines), err


def log_disagreements(db: Any) -> list[str]:
    """Contents whose latest logged decision differs from their decision (undo would lie)."""
    with connect_ro(db) as conn:
        rows = conn.execute(
            "SELECT c.id, c.decision, (SELECT new_value FROM review_log r WHERE r.content_id = "
            "c.id AND r.field = 'decision' ORDER BY r.id DESC LIMIT 1) FROM contents c"
        ).fetchall()
    return [f"content {cid}: decision {d!r}, log says {logged!r}"
            for cid, d, logged in rows if (logged or "none") != d]
