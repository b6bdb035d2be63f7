"""Tiny upstream-layout model folders for any test suite (CLI, app, inference).

The builders live in `inference.testing` so that benchmarks and suites in any folder can
import them without sys.path tricks; this module re-exports them under the tests tree.
"""

from inference.testing import (  # noqa: F401
                               CLIP_PREPROCESSOR,
                               VIT_PREPROCESSOR,
                               coherence_reference_model,
                               jtp_reference_model,
                               jtp_tag_names,
                               photo_like,
                               tiny_clip_vision_state,
                               vit_key_to_4x,
                               write_aesthetic,
                               write_all,
                               write_coherence,
                               write_images,
                               write_jtp,
                               write_nsfw_vit,
                               write_safety_checker,
)
