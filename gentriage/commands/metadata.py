"""`gentriage metadata FILE… [--json]`: print the generation metadata embedded in images.

Imports only the Pillow-based reader (no Qt, no torch). Exit status is 0 whenever the command
ran, even if some files could not be read: their `error` says why. Everything printed came
from the files, so it goes through library.safe_output: escape sequences in a prompt or a
file name are shown, not executed, and the JSON is valid UTF-8 even for file names that are
not (their bytes appear as `\\xNN`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, TextIO

JSON_KEYS = ("path", "generator", "prompt", "negative_prompt", "seed", "steps", "sampler",
             "scheduler", "cfg_scale", "width", "height", "model", "model_hash", "loras", "error")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files to read")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line with fixed keys (null when unknown)")


def run(args: argparse.Namespace) -> int:
    from library.metadata import MetadataReadError, read_metadata_file
    from library.safe_output import json_text

    # Pillow warns on every corrupt EXIF block; the per-file `error`/output is the report.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    out = sys.stdout
    for index, path in enumerate(args.files):
        record: dict[str, Any] = {key: None for key in JSON_KEYS}
        record["path"] = os.fsdecode(path)
        record["loras"] = []
        detail = None
        try:
            meta = read_metadata_file(path)
        except MetadataReadError as exc:
            record["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a reader bug must not abort a batch
            record["error"] = f"{path}: unexpected error ({type(exc).__name__}: {exc})"
        else:
            record.update(meta.to_json_dict())
            detail = meta.generator_detail
        if args.json:
            out.write(json_text(record) + "\n")
        else:
            if index:
                out.write("\n")
            _write_human(out, record, detail)
    out.flush()
    return 0


def _write_human(out: TextIO, record: dict[str, Any], detail: str | None) -> None:
    from library.safe_output import terminal_text

    def line(text: str) -> None:
        out.write(text + "\n")

    line(terminal_text(record["path"]))
    if record["error"]:
        line(f"  error: {terminal_text(record['error'])}")
        return
    if record["generator"] is None and detail is None:
        line("  no generation metadata")
        return
    family = terminal_text(record["generator"] or "unknown")
    line(f"  generator: {family}" + (f" ({terminal_text(detail)})" if detail else ""))
    for label, key in (("prompt", "prompt"), ("negative", "negative_prompt")):
        if record[key]:
            text = terminal_text(record[key].strip(), multiline=True)
            line(f"  {label + ':':<10}" + text.replace("\n", "\n" + " " * 12))
    sampling = [f"{label} {terminal_text(record[key])}" for label, key in (
        ("seed", "seed"), ("steps", "steps"), ("cfg", "cfg_scale"), ("sampler", "sampler"),
        ("scheduler", "scheduler")) if record[key] is not None]
    if sampling:
        line(f"  {'sampling:':<10}{', '.join(sampling)}")
    if record["width"] and record["height"]:
        line(f"  {'size:':<10}{record['width']}x{record['height']}")
    if record["model"] or record["model_hash"]:
        model = terminal_text(record["model"] or "?")
        suffix = f" [{terminal_text(record['model_hash'])}]" if record["model_hash"] else ""
        line(f"  {'model:':<10}{model}{suffix}")
    if record["loras"]:
        loras = ", ".join(
            terminal_text(lora["name"])
            + (f" ({lora['weight']:g})" if lora["weight"] is not None else "")
            for lora in record["loras"])
        line(f"  {'loras:':<10}{loras}")
