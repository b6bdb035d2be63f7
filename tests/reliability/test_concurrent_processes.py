"""Two GenTriage processes on one database: a headless `gentriage scan` indexing and
analysing while another process reviews and reads pages the way the app does (db.review,
db.queries). Both finish without errors, and no write of either is lost."""

from __future__ import annotations

import pytest
from reliability_support import (
    NSFW_ONLY,
    REVIEWER,
    Lines,
    counts,
    integrity_problems,
    kill,
    log_disagreements,
    lost_decisions,
    parse_reviewer,
    start_gentriage,
    start_python,
    summary_lines,
    wait_until,
    write_images,
)

N_IMAGES = 80


@pytest.mark.slow
def test_a_scan_and_a_reviewing_process_share_the_database(tmp_path, library_db):
    folder = tmp_path / "pics"
    write_images(folder, N_IMAGES)
    db = library_db.target
    home = tmp_path / "home"
    stop = tmp_path / "stop-reviewing"

    scan = start_gentriage(["scan", str(folder), "--db", str(db), *NSFW_ONLY,
                            "--batch-size", "1", "--workers", "1"], home)
    reviewer = None
    try:
        wait_until(lambda: counts(db)["images"] > 0, 120, "the first indexed files",
                   alive=scan)
        reviewer = start_python(REVIEWER, home, str(db), str(stop), "100000")
        lines = Lines(reviewer)
        scan_out, scan_err = scan.communicate(timeout=120)
        stop.touch()
        review_out, review_err = lines.finish(timeout=60)
    finally:
        kill(scan)
        if reviewer is not None:
            kill(reviewer)

    assert scan.returncode == 0, scan_err[-3000:]
    assert "locked" not in scan_err and "Traceback" not in scan_err
    assert summary_lines(scan_out)["analysed"] == f"nsfw-default {N_IMAGES}"
    log = parse_reviewer(review_out)
    assert reviewer.returncode == 0 and log.errors == [], review_err[-3000:]
    assert log.n_acks > 0 and lines.count("PAGE") > 0
    assert lost_decisions(db, log) == []
    assert log_disagreements(db) == []
    assert integrity_problems(db) == []
    table = counts(db)
    assert (table["images"], table["contents"], table["analysis_results"],
            table["analysis_queue"]) == (N_IMAGES, N_IMAGES, N_IMAGES, 0)
