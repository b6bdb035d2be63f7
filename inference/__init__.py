"""Image analysers and the batch pipeline that runs them. No Qt, no database.

Entry points:
- `inference.catalog`: the one list of analysers (keys, roles, labels), cheapest first,
  torch-free so db/ and library/ read it too; `inference.registry.ANALYSERS`: their classes.
- `inference.weights.discover(models_dir)`: ready / missing / broken per analyser, from file
  headers only (no torch import).
- `inference.pipeline.Pipeline`: load, then iterate `run(jobs)` for results as they come.
- `inference.testing`: tiny models in the upstream file layouts, for tests and benchmarks.
"""

from inference.onnx_runtime import disable_telemetry_before_import

# onnxruntime reads its telemetry switch once, when its native library loads: set it before
# anything in this package (or anything importing it) can import onnxruntime. See
# inference/onnx_runtime.py.
disable_telemetry_before_import()
