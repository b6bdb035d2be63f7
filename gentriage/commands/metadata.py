"""`gentriage metadata FILE… [--json]`: print the generation metadata embedded in images.

Imports only the Pillow-based reader (no Qt, no torch). Exit status is 0 whenever the command
ran, even if some files could not be read: their `error` says why.
"""

from __future__ import annotations

import argparse
import json
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

    # Pillow warns on every corrupt EXIF block; the per-file `error`/output is the report.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    out = sys.stdout
    for index, path in enumerate(args.files):
        record: dict[str, Any] = {key: None for key in JSON_KEYS}
        record["path"] = path
        record["loras"] = []
        detail = None
        try:
            meta = read_metadata_file(path)
        except MetadataReadError as exc:
            record["error"] = str(exc)
        except Exception as exc:  # a reader bug must not abort a batch
            record["error"] = f"{path}: unexpected error ({type(exc).__name__}: {exc})"
        else:
            record.update(meta.to_json_dict())
            detail = meta.generator_detail
        if args.json:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            if index:
                out.write("\n")
            _write_human(out, record, detail)
    out.flush()
    return 0


def _write_human(out: TextIO, record: dict[str, Any], detail: str | None) -> None:
    out.write(f"{record['path']}\n")
    if record["error"]:
        out.write(f"  error: {record['error']}\n")
        return
    if record["generator"] is None and detail is None:
        out.write("  no generation metadata\n")
        return
    family = record["generator"] or "unknown"
    out.write(f"  generator: {family}" + (f" ({detail})" if detail else "") + "\n")
    for label, key in (("prompt", "prompt"), ("negative", "negative_prompt")):
        if record[key]:
            text = record[key].strip().replace("\n", "\n" + " " * 12)
            out.write(f"  {label + ':':<10}{text}\n")
    sampling = [f"{label} {record[key]}" for label, key in (
        ("seed", "seed"), ("steps", "steps"), ("cfg", "cfg_scale"), ("sampler", "sampler"),
        ("scheduler", "scheduler")) if record[key] is not None]
    if sampling:
        out.write(f"  {'sampling:':<10}{', '.join(sampling)}\n")
    if record["width"] and record["height"]:
        out.write(f"  {'size:':<10}{record['width']}x{record['height']}\n")
    if record["model"] or record["model_hash"]:
        model = record["model"] or "?"
        suffix = f" [{record['model_hash']}]" if record["model_hash"] else ""
        out.write(f"  {'model:':<10}{model}{suffix}\n")
    if record["loras"]:
        loras = ", ".join(lora["name"] + (f" ({lora['weight']:g})" if lora["weight"] is not None else "")
                          for lora in record["loras"])
        out.write(f"  {'loras:':<10}{loras}\n")
