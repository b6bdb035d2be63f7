"""What `--strip-metadata` costs over a plain copy, and what writing sidecars costs.

Files: generated 1024×1024 pictures carrying realistic metadata — PNG with a ComfyUI
`prompt` + `workflow` (~60 KB of JSON) and an A1111 `parameters` chunk, JPEG with an A1111
UserComment, lossy WebP with ComfyUI's EXIF Make/Model graphs, and PNG whose opaque alpha
channel carries a stealth payload (the one case that re-encodes pixels).

Baseline: reading the file and writing its bytes unchanged (the floor of any export).
Measured: library.strip_metadata.strip_file + writing the result (the check that reads the
result back with the metadata reader included), per file, best of 3; and writing one XMP
sidecar (new, then merged into the existing one).

Targets (per 1024×1024 picture, 2 cores): a clean copy of a container-only format under
50 ms (the container is rewritten, the pixels are not decoded except for the stealth check on
alpha images); the stealth re-encode under 1 s. Run: `python -m benchmarks.bench_export`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

ROUNDS = 3
SIDE = 1024
QUICK_SIDE = 512


def _picture(side: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    # Smooth gradients plus noise: compresses like a generated picture, not like pure noise.
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([(x * 255 // side), (y * 255 // side), ((x + y) * 127 // side)], axis=-1)
    noisy = np.clip(base + rng.integers(-12, 12, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(noisy, "RGB")
    return image.convert(mode) if mode != "RGB" else image


def _workflow(nodes: int = 120) -> str:
    return json.dumps({"nodes": [{"id": i, "type": "KSampler", "widgets_values": [i] * 40,
                                  "inputs": [{"name": "model", "link": i}] * 3}
                                 for i in range(nodes)], "links": []})


def _files(folder: Path, side: int) -> dict[str, Path]:
    from library.metadata.stealth import MAGIC_GZIP  # noqa: F401 - layout documented there

    infotext = ("a lighthouse, <lora:grain:0.6>\nNegative prompt: blurry\nSteps: 30, Sampler: "
                "DPM++ 2M, CFG scale: 6, Seed: 1, Size: 1024x1024, Model: m")
    graph = json.dumps({str(i): {"class_type": "CLIPTextEncode", "inputs": {"text": "x" * 200}}
                        for i in range(40)})
    files: dict[str, Path] = {}
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    info.add_text("prompt", graph)
    info.add_text("workflow", _workflow(), zip=True)
    files["PNG + ComfyUI/A1111 text"] = folder / "comfy.png"
    _picture(side).save(files["PNG + ComfyUI/A1111 text"], "PNG", pnginfo=info)

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + infotext.encode("utf-16-be")
    files["JPEG + EXIF UserComment"] = folder / "a1111.jpg"
    _picture(side).save(files["JPEG + EXIF UserComment"], "JPEG", quality=90,
                        exif=exif.tobytes())

    webp_exif = Image.Exif()
    webp_exif[0x0110] = "prompt:" + graph
    webp_exif[0x010F] = "workflow:" + _workflow()
    files["WebP (lossy) + ComfyUI EXIF"] = folder / "comfy.webp"
    _picture(side).save(files["WebP (lossy) + ComfyUI EXIF"], "WEBP", quality=85,
                        exif=webp_exif.tobytes())

    files["PNG + stealth alpha (re-encoded)"] = folder / "stealth.png"
    _stealth(_picture(side), infotext).save(files["PNG + stealth alpha (re-encoded)"], "PNG")
    return files


def _stealth(image: Image.Image, text: str) -> Image.Image:
    import gzip

    payload = gzip.compress(text.encode())
    bits = "".join(f"{b:08b}" for b in b"stealth_pngcomp") + f"{len(payload) * 8:032b}" + \
        "".join(f"{b:08b}" for b in payload)
    width, height = image.size
    column_major = bytearray([255]) * (width * height)
    for index, bit in enumerate(bits):
        column_major[index] = 254 | int(bit)
    alpha = Image.frombytes("L", (height, width), bytes(column_major)).transpose(
        Image.Transpose.TRANSPOSE)
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def _best(work: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def run(report, quick: bool = False) -> None:
    from db.interop import PictureFacts
    from library.sidecars import write_sidecar
    from library.strip_metadata import strip_file

    side = QUICK_SIDE if quick else SIDE
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "out.bin"
        for label, path in _files(folder, side).items():
            def plain(source: Path = path) -> None:
                out.write_bytes(source.read_bytes())

            def clean(source: Path = path) -> None:
                out.write_bytes(strip_file(source).data)

            copy, strip = _best(plain), _best(clean)
            target = "< 1000 ms" if "stealth" in label else "< 50 ms"
            report(f"clean copy, {label} ({side}px)", strip * 1000, "ms", baseline=copy * 1000,
                   target=target)
        facts = PictureFacts(1, "accepted", 4, "a lighthouse " * 20,
                             tuple(f"tag_{i}" for i in range(40)))
        image = folder / "comfy.png"
        sidecar = image.with_name(image.name + ".xmp")
        def write_new() -> None:
            sidecar.unlink(missing_ok=True)
            write_sidecar(image, facts)

        fresh = _best(write_new)
        merged = _best(lambda: write_sidecar(image, facts))
        report("write a new XMP sidecar", fresh * 1000, "ms", target="< 20 ms")
        report("merge into an existing XMP sidecar", merged * 1000, "ms", baseline=fresh * 1000)


if __name__ == "__main__":
    from benchmarks import print_report

    run(print_report)
