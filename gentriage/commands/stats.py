"""`gentriage stats`: an alias of `gentriage report` (same options, same output).

`stats` came first with a smaller table (counts, coherent/flagged/accepted/rejected shares,
mean aesthetic and prompt adherence); `report` supersedes it with GhostReview's figures. The
name is kept so existing scripts keep running; their JSON keys are now the report's
(README, "gentriage report").
"""

from __future__ import annotations

import argparse

from gentriage.commands import report


def configure(parser: argparse.ArgumentParser) -> None:
    report.configure(parser)


def run(args: argparse.Namespace) -> int:
    return report.run(args, command="stats")
