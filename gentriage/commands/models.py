"""`gentriage models [--json]`: each analyser's weights — ready, missing or broken, where
they were found, what is expected and how to get it. `gentriage models download KEY` fetches
the upstream files with huggingface_hub (optional; only for online users).

Cheap: discovery reads file headers only and never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gentriage.cli import EXIT_OK, EXIT_SOME_BROKEN, EXIT_USAGE, add_storage_options, say

INSTALL_HINT = ("downloading needs huggingface_hub: pip install 'gentriage[download]' "
                "(or: pip install huggingface_hub)")


def configure(parser: argparse.ArgumentParser) -> None:
    from inference.registry import ANALYSER_KEYS, analyser_class

    add_storage_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list (key, status, path, message, …)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    download = sub.add_parser("download", help="fetch an analyser's upstream files from "
                              "Hugging Face into the models directory")
    # Only analysers with Hugging Face sources (not the bundled one, nor style's torchvision file).
    download.add_argument("key", choices=[k for k in ANALYSER_KEYS
                                          if analyser_class(k).download_plan()])
    # SUPPRESS: otherwise the subparser's default would overwrite a --models-dir given
    # before the word "download".
    download.add_argument("--models-dir", metavar="DIR", default=argparse.SUPPRESS,
                          help="models folder (default: as for `gentriage models`)")


def run(args: argparse.Namespace) -> int:
    from library.paths import models_dir

    folder = models_dir(getattr(args, "models_dir", None))
    if getattr(args, "action", None) == "download":
        return download(args.key, folder)
    from inference.weights import BROKEN, discover
    from library.safe_output import json_text

    statuses = discover(folder)
    if args.json:
        print(json_text([s.to_json() for s in statuses], indent=2))
    else:
        print_table(statuses, folder)
    return EXIT_SOME_BROKEN if any(s.status == BROKEN for s in statuses) else EXIT_OK


def print_table(statuses: list[Any], folder: Path) -> None:
    # Paths and messages name files in the models folder: shown through say(), not run.
    say(f"models directory: {folder}")
    width = max(len(s.key) for s in statuses)
    for s in statuses:
        say(f"  {s.key:<{width}}  {s.status:<7}  {s.path or '-'}")
        say(f"  {'':<{width}}           {s.message}")
        if s.status != "ready":
            say(f"  {'':<{width}}           expects: {', '.join(s.expected_files)}")
            say(f"  {'':<{width}}           get it:  {s.how_to_get}")


def download(key: str, folder: Path) -> int:
    from db.private_files import private_directory
    from inference.registry import analyser_class
    from inference.weights import READY, discover

    try:
        import huggingface_hub
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return EXIT_USAGE
    cls = analyser_class(key)
    for source, subdir in cls.download_plan():
        target = folder / key / subdir if subdir else folder / key
        private_directory(target)
        patterns = list(source.allow_patterns) or None
        say(f"downloading {source.repo_id} -> {target}")
        try:
            huggingface_hub.snapshot_download(repo_id=source.repo_id, local_dir=str(target),
                                              allow_patterns=patterns)
        except Exception as exc:  # noqa: BLE001 — network, auth, missing repo: all reported
            say(f"download of {source.repo_id} failed: {exc}", file=sys.stderr)
            say(cls.how_to_get, file=sys.stderr)
            return EXIT_SOME_BROKEN
    (status,) = discover(folder, [key])
    say(f"{key}: {status.status} — {status.message}")
    return EXIT_OK if status.status == READY else EXIT_SOME_BROKEN
