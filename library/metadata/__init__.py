"""Generation metadata embedded in Stable Diffusion outputs, read in-house on Pillow.

    from library.metadata import read_metadata, read_metadata_file
    meta = read_metadata(image)        # an already-opened PIL image; never raises
    meta.generator, meta.prompt, meta.seed, meta.loras, meta.raw ...

Families: a1111, forge, sdnext, comfyui, invokeai, novelai, fooocus, swarmui, drawthings,
civitai; None when there is no generation metadata or the writer is unknown (check
`meta.has_parameters` to tell those apart). See FORMATS.md in the sample corpus for where
each generator hides its data.
"""

from .model import FAMILIES, GenerationMetadata, Lora, MetadataReadError
from .reader import open_image, raised_png_text_limit, read_metadata, read_metadata_file

__all__ = [
    "FAMILIES",
    "GenerationMetadata",
    "Lora",
    "MetadataReadError",
    "open_image",
    "raised_png_text_limit",
    "read_metadata",
    "read_metadata_file",
]
