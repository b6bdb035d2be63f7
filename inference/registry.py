"""The analysers GenTriage knows, in cost order (cheapest first). An explicit dict: a key
maps to its class; nothing is inferred from model or file names. Importing this module is
cheap (the analyser modules import torch & co. only inside their methods)."""

from __future__ import annotations

from inference.aesthetic import Aesthetic
from inference.base import Analyser
from inference.coherence import Coherence
from inference.nsfw_default import NsfwDefault
from inference.nsfw_vit import NsfwVit
from inference.safety_checker import SafetyChecker
from inference.tagger_jtp import TaggerJtp

ANALYSERS: dict[str, type[Analyser]] = {
    NsfwDefault.key: NsfwDefault,
    Coherence.key: Coherence,
    NsfwVit.key: NsfwVit,
    SafetyChecker.key: SafetyChecker,
    Aesthetic.key: Aesthetic,
    TaggerJtp.key: TaggerJtp,
}

ANALYSER_KEYS: tuple[str, ...] = tuple(ANALYSERS)


def analyser_class(key: str) -> type[Analyser]:
    try:
        return ANALYSERS[key]
    except KeyError:
        raise KeyError(f"unknown analyser {key!r}; known: {', '.join(ANALYSER_KEYS)}") from None
