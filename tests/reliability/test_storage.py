"""Where the library lives: creating it (killed half-way, two creators at once), who may read
it (file modes), paths that cannot hold it, a full disk, and a database from a newer
GenTriage. Each ends in a usable library or one clear line, never a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import (
    NSFW_ONLY,
    REPO,
    child_env,
    connect_ro,
    counts,
    gentriage,
    integrity_problems,
    kill,
    start_python,
    summary_lines,
    wait_until,
    write_images,
)

# ----------------------------------------------------------------------------- creation

# The first `gentriage scan` of a new library, stopped for good in the middle of creating
# the schema: right after SQLite ran the first CREATE TABLE, it announces that (the marker
# file) and sleeps until the test kills it with SIGKILL.
STALL_IN_SCHEMA_CREATION = r'''
import sys, time, pathlib
from sqlalchemy import event
from sqlalchemy.engine import Engine

marker = pathlib.Path(sys.argv[1])

@event.listens_for(Engine, "after_cursor_execute")
def _stall(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("CREATE TABLE") and not marker.exists():
        marker.write_text("created one table of the schema")
        time.sleep(600)

from gentriage.cli import main
sys.exit(main(sys.argv[2:]))
'''


def _every_command_works(folder: Path, db: Path, home: Path) -> None:
    scan = gentriage(["scan", str(folder), "--db", str(db), *NSFW_ONLY, "--workers", "1"], home)
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert summary_lines(scan.stdout)["indexed"].startswith("4 new")
    for args in (["stats", "--db", str(db)], ["export", "--db", str(db)],
                 ["review", str(folder), "--accept", "--db", str(db)]):
        done = gentriage(args, home)
        assert done.returncode == 0, (args, done.stderr[-3000:])
        assert "Traceback" not in done.stderr and "already exists" not in done.stderr
    assert counts(db)["images"] == 4


@pytest.mark.slow
def test_a_kill_while_the_first_scan_creates_the_schema_leaves_a_usable_library(tmp_path):
    folder = tmp_path / "pics"
    write_images(folder, 4)
    db, home, marker = tmp_path / "lib.sqlite3", tmp_path / "home", tmp_path / "stalled"
    proc = start_python(STALL_IN_SCHEMA_CREATION, home, str(marker), "scan", str(folder),
                        "--db", str(db), *NSFW_ONLY)
    try:
        wait_until(marker.exists, 120, "the schema creation to begin", alive=proc)
        kill(proc)  # SIGKILL in the middle of the creating transaction
    finally:
        kill(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert integrity_problems(db) == []
    with sqlite3.connect(db) as conn:  # nothing of the half-made schema survived
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == []
    _every_command_works(folder, db, home)


# Two scans of a new library start at the same moment: each waits for the "go" file, so both
# reach the schema creation together.
SCAN_ON_GO = r'''
import sys, time, pathlib
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
from gentriage.cli import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.mark.slow
def test_two_scans_creating_a_new_library_at_once_both_succeed(tmp_path):
    db, home, go = tmp_path / "lib.sqlite3", tmp_path / "home", tmp_path / "go"
    folders = [tmp_path / "a", tmp_path / "b"]
    for index, folder in enumerate(folders):
        write_images(folder, 3, prefix=f"set{index}_")
    procs = [subprocess.Popen([sys.executable, "-c", SCAN_ON_GO, str(go), "scan", str(folder),
                               "--db", str(db), *NSFW_ONLY, "--workers", "1"], cwd=REPO,
                              env=child_env(home), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for folder in folders]
    go.write_text("go")
    outputs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    assert counts(db)["images"] == 6 and counts(db)["folders"] == 2
    assert integrity_problems(db) == []


# ----------------------------------------------------------------------------- file modes

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_library_and_everything_beside_it_are_private_to_the_user(tmp_path, monkeypatch):
    """0700 folders and 0600 files whatever the umask (0: the most permissive one), the
    database's -wal and -shm included (checked while the library is open)."""
    from db.engine import open_library, session_factory
    from db.transaction import write_transaction
    from library.paths import Locations
    from library.settings import Settings
    from library.thumbnails import ThumbnailCache

    home = tmp_path / "new-home"
    monkeypatch.setenv("GENTRIAGE_HOME", str(home))
    previous = os.umask(0)
    try:
        locations = Locations.resolve()
        engine = open_library(locations.database)
        try:
            from db import store

            with write_transaction(session_factory(engine)) as session:
                store.add_folder(session, tmp_path)
            wal = Path(f"{locations.database}-wal")
            shm = Path(f"{locations.database}-shm")
            assert wal.exists() and shm.exists()  # open: WAL mode keeps them
            files = {"database": locations.database, "wal": wal, "shm": shm}
            assert {name: oct(_mode(p)) for name, p in files.items()} == dict.fromkeys(
                files, oct(0o600))
        finally:
            engine.dispose()
        Settings().save(locations.settings)
        from PIL import Image

        ThumbnailCache(locations.thumbnails).save("ab" * 32, Image.new("RGB", (8, 8)))
        thumbnail = locations.thumbnails / "ab" / f"{'ab' * 32}.jpg"
        assert oct(_mode(locations.settings)) == oct(0o600)
        assert oct(_mode(thumbnail)) == oct(0o600)
        folders = [home, locations.thumbnails.parent, locations.thumbnails, thumbnail.parent]
        assert {str(f): oct(_mode(f)) for f in folders} == dict.fromkeys(map(str, folders),
                                                                          oct(0o700))
    finally:
        os.umask(previous)


def test_a_first_scan_creates_a_private_library(tmp_path):
    folder = tmp_path / "pics"
    write_images(folder, 2)
    home = tmp_path / "home"
    done = gentriage(["scan", str(folder), *NSFW_ONLY], home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert oct(_mode(home)) == oct(0o700)
    assert oct(_mode(home / "library.sqlite3")) == oct(0o600)


# ----------------------------------------------------------------------------- bad locations

@pytest.mark.parametrize("command", [["scan", "{folder}"], ["stats"], ["export"],
                                     ["review", "{folder}", "--accept"]])
def test_a_library_path_under_a_file_is_a_clear_usage_error(tmp_path, command):
    folder = tmp_path / "pics"
    write_images(folder, 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("a file, not a folder")
    args = [a.format(folder=folder) for a in command]
    for extra, env in ((["--db", str(notes / "lib.sqlite3")], {}),
                       ([], {"GENTRIAGE_HOME": str(notes)})):
        done = gentriage([*args, *extra], tmp_path / "home", **env)
        assert done.returncode == 2, (args, extra, env, done.stderr[-2000:])
        assert str(notes) in done.stderr and "is a file, not a folder" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_app_with_a_home_that_is_a_file_says_so_before_any_window(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    done = gentriage([str(tmp_path)], tmp_path / "home", GENTRIAGE_HOME=str(notes))
    assert done.returncode == 2
    assert "is a file, not a folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_database_path_that_is_not_a_file_is_refused_without_hanging(tmp_path, kind):
    db = tmp_path / "lib.sqlite3"
    if kind == "folder":
        db.mkdir()
    else:
        os.mkfifo(db)
    done = gentriage(["stats", "--db", str(db)], tmp_path / "home", timeout=60)
    assert done.returncode in (1, 2)
    assert str(db) in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- full disk

def _can_mount_a_small_disk() -> bool:
    if shutil.which("unshare") is None or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_a_small_disk(),
                    reason="needs `unshare` (user and mount namespaces) to mount a small tmpfs")
def test_a_full_disk_while_recording_ends_in_one_line_and_exit_1(tmp_path):
    """The database on a real 400 KiB file system (tmpfs, in a private mount namespace):
    the scan fills it, says so in one line, exits 1; with room again the next scan records
    everything and the library is intact."""
    folder = tmp_path / "pics"
    write_images(folder, 300)
    small, home = tmp_path / "small", tmp_path / "home"
    small.mkdir()
    db = small / "lib.sqlite3"
    scan = (f"{sys.executable} -m gentriage scan {folder} --db {db} --workers 1 "
            f"{' '.join(NSFW_ONLY)}")
    script = (f"mount -t tmpfs -o size=400k tmpfs {small} || exit 99\n"
              f"{scan}; echo \"first=$?\" >&2\n"
              f"mount -o remount,size=64m {small}\n"
              f"{scan} > /dev/null; echo \"second=$?\" >&2\n"
              f"{sys.executable} -c \"import sqlite3; c = sqlite3.connect('{db}'); "
              "print('integrity', c.execute('PRAGMA integrity_check').fetchone()[0]); "
              "print('images', c.execute('SELECT count(*) FROM images').fetchone()[0])\"\n")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           script], cwd=REPO, env=child_env(home), capture_output=True,
                          text=True, timeout=600)
    first_run = done.stderr.split("first=")[0]
    assert "first=1" in done.stderr, done.stderr[-4000:]
    assert "Traceback" not in first_run, first_run[-4000:]
    full = [line for line in first_run.splitlines() if "disk is full" in line]
    assert len(full) == 1, first_run[-4000:]
    assert "second=0" in done.stderr, done.stderr[-4000:]
    assert "integrity ok" in done.stdout and "images 300" in done.stdout, done.stdout


def test_disk_io_error_on_a_full_disk_is_called_a_full_disk(monkeypatch, tmp_path):
    """SQLite says "disk I/O error" when a write fails for a reason it does not classify;
    with no free space left, GenTriage says the disk is full."""
    from sqlalchemy.exc import OperationalError

    import db.engine as engine_module

    error = OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
    plenty = os.statvfs(tmp_path)
    assert "disk I/O error" in engine_module.describe_database_error(error, tmp_path / "x")

    class NoRoom:
        f_bavail, f_frsize = 0, plenty.f_frsize

    monkeypatch.setattr(engine_module.os, "statvfs", lambda _path: NoRoom())
    assert "disk is full" in engine_module.describe_database_error(error, tmp_path / "x")


# ----------------------------------------------------------------------------- newer version

def test_a_library_from_a_newer_gentriage_says_so_and_stays_untouched(tmp_path, library):
    engine, _, db = library
    engine.dispose()
    with connect_ro(db, read_only=False) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'zz99_from_the_future'")
        conn.connection.commit()
    before = _schema_and_version(db)
    for args in (["stats", "--db", str(db)], ["scan", str(tmp_path), "--db", str(db)]):
        done = gentriage(args, tmp_path / "home")
        assert done.returncode == 1
        assert "newer version of GenTriage" in done.stderr, done.stderr[-2000:]
        assert "Can't locate revision" not in done.stderr and "Traceback" not in done.stderr
    assert _schema_and_version(db) == before
    assert counts(db)["folders"] == 0  # the scan recorded nothing


def _schema_and_version(db) -> tuple[list, str]:
    """Every table with its columns and indexes, and the schema revision (either backend)."""
    from sqlalchemy import inspect

    with connect_ro(db) as conn:
        inspector = inspect(conn.connection)
        schema = [(table, [(c["name"], str(c["type"])) for c in inspector.get_columns(table)],
                   sorted(i["name"] for i in inspector.get_indexes(table)))
                  for table in sorted(inspector.get_table_names())]
        version = conn.execute("SELECT version_num FROM alembic_version").scalar_one()
        if conn.dialect == "sqlite":  # and every statement that made it, triggers too
            schema.append(conn.execute("SELECT name, sql FROM sqlite_master WHERE name NOT "
                                       "LIKE 'sqlite_stat%' ORDER BY name").all())
    return schema, version
