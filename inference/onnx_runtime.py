"""onnxruntime without its telemetry, and the execution providers a device maps to.

Official onnxruntime builds (1.3x) carry Microsoft's 1DS telemetry: importing the package
creates `~/.cache/Microsoft/DeveloperTools/.onnxruntime/{onnxruntime.db,deviceid}` (or under
$XDG_CACHE_HOME), and after ~10 s a session resolves `mobile.events.data.microsoft.com` to
upload events. GenTriage promises no network use, so:

- `ORT_DISABLE_TELEMETRY=1` must be in the environment before the native library loads — it
  is read once, at import, and is the only switch that stops the uploader, the event store and
  the persistent device id (checked in onnxruntime 1.32: `disable_telemetry_events()` alone
  still writes the store and still resolves the collector). `inference/__init__.py` sets it,
  so every GenTriage process has it before anything of ours can import onnxruntime;
- `onnxruntime()` (the only way GenTriage code imports the package) sets it again, imports,
  and also calls the Python-level `disable_telemetry_events()` for builds that predate the
  environment variable.

The promise is tested end to end with a C-level network guard during a long
`gentriage scan --watch` (tests/reliability/test_security.py) and with a check that no
telemetry store appears in a fresh home (tests/inference/test_onnx_runtime.py).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

TELEMETRY_SWITCH = "ORT_DISABLE_TELEMETRY"
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_HINT = ("onnxruntime has no CUDA provider here; for nsfw-default on the GPU install the "
            "'gpu' extra (pip uninstall onnxruntime && pip install 'gentriage[gpu]')")


def disable_telemetry_before_import() -> None:
    """Put the switch in the environment (forced: GenTriage never allows telemetry)."""
    os.environ[TELEMETRY_SWITCH] = "1"


def onnxruntime() -> ModuleType:
    """The onnxruntime module, telemetry off. Import it only through here."""
    if "onnxruntime" not in sys.modules:
        disable_telemetry_before_import()
    elif os.environ.get(TELEMETRY_SWITCH) != "1":  # someone imported it before us
        log.warning("onnxruntime was imported before GenTriage could disable its telemetry")
    import onnxruntime as ort

    disable = getattr(ort, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    return ort


# ---------------------------------------------------------------------------- devices


def parse_device(requested: str | None) -> tuple[str, int | None]:
    """("auto"|"cpu"|"cuda"|"mps", cuda index or None) from a device string; ValueError for
    anything else. Torch-free, so the default path can check `--device` without torch."""
    want = (requested or "auto").strip().lower()
    if want in ("auto", "cpu", "mps", "cuda"):
        return want, None
    if want.startswith("cuda:") and want[5:].isdigit():
        return "cuda", int(want[5:])
    raise ValueError(f"unknown device {requested!r} (auto, cpu, cuda, cuda:N, mps)")


def choose_providers(requested: str | None, available: Sequence[str]
                     ) -> tuple[str, list[Any], str | None]:
    """(device label, providers for InferenceSession, note) for an ONNX model.

    CUDA when asked for ("auto", "cuda", "cuda:N") and onnxruntime has the CUDA provider (the
    `gpu` extra), always with the CPU provider behind it for unsupported operators; otherwise
    the CPU. An explicit CUDA request that cannot be met still runs, on the CPU, with a note
    saying why (refusing would lose the one analyser that works without downloads)."""
    kind, index = parse_device(requested)
    if kind in ("auto", "cuda") and CUDA in available:
        label = "cuda" if index is None else f"cuda:{index}"  # as torch's resolve_device
        return label, [(CUDA, {"device_id": index or 0}), CPU], None
    note = GPU_HINT if kind == "cuda" else None
    return "cpu", [CPU], note
