"""The analyser classes, keyed as in inference.catalog (the one list of analysers, in cost
order). An explicit dict: a key maps to its class; nothing is inferred from model or file
names. Importing this module is cheap (the analyser modules import torch & co. only inside
their methods)."""

from __future__ import annotations

from inference.aesthetic import Aesthetic
from inference.base import Analyser
from inference.catalog import ANALYSER_KEYS
from inference.clip_search import ClipEmbedding
from inference.coherence import Coherence
from inference.nsfw_default import NsfwDefault
from inference.nsfw_vit import NsfwVit
from inference.safety_checker import SafetyChecker
from inference.style import Style
from inference.tagger_jtp import TaggerJtp

_CLASSES: tuple[type[Analyser], ...] = (
    NsfwDefault, Coherence, NsfwVit, SafetyChecker, Aesthetic, ClipEmbedding, Style, TaggerJtp)

# In catalog (cost) order. A catalog key without a class fails here, at import;
# tests/inference/test_catalog.py checks the converse and the titles.
_BY_KEY: dict[str, type[Analyser]] = {cls.key: cls for cls in _CLASSES}
ANALYSERS: dict[str, type[Analyser]] = {key: _BY_KEY[key] for key in ANALYSER_KEYS}

__all__ = ["ANALYSERS", "ANALYSER_KEYS", "analyser_class"]


def analyser_class(key: str) -> type[Analyser]:
    try:
        return ANALYSERS[key]
    except KeyError:
        raise KeyError(f"unknown analyser {key!r}; known: {', '.join(ANALYSER_KEYS)}") from None
