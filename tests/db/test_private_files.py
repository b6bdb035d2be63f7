"""db.private_files: folders created for GenTriage's own data, safe against other threads
creating the same folders at the same moment (the app's indexers and analysis all write
thumbnails)."""

from __future__ import annotations

import os
import threading

import pytest

from db import private_files
from db.private_files import NotAFolderError, private_directory


def test_a_folder_created_by_another_thread_between_the_checks_is_used(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "thumbnails" / "ab"
    real_lexists = os.path.lexists

    def lexists_after_another_thread_made_it(path):
        if str(path) == str(target):  # the other thread wins the race right here
            os.makedirs(target, exist_ok=True)
        return real_lexists(path)

    monkeypatch.setattr(private_files.os.path, "lexists", lexists_after_another_thread_made_it)
    (tmp_path / "cache" / "thumbnails").mkdir(parents=True)

    assert private_directory(target) == target
    assert target.is_dir()


def test_threads_creating_the_same_folders_all_succeed(tmp_path):
    targets = [tmp_path / f"run{n}" / "cache" / "thumbnails" / "ab" for n in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def create_all() -> None:
        start.wait()
        for target in targets:
            try:
                private_directory(target)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=create_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(target.is_dir() for target in targets)


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(NotAFolderError, match="cache exists and is not a folder"):
        private_directory(tmp_path / "cache" / "thumbnails")
