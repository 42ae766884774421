"""Colour words in requests and the colours a map object shows: "the purple mug" checked against the mug.

The absence pointer (model/absence.py) learns whether any object matches a request, but it was
trained to rank objects, and a present category in a colour none of its instances has ("the purple
mug" beside a red one) is the case it rejects least (about a quarter of them). The map itself
holds the evidence: every feature voxel keeps the running mean of the colours fused into it
(mapping/voxel_features.py). Colour terms are matched to those voxel colours as basic colour
categories (Berlin & Kay's eleven terms plus navy, teal and beige, the generator's palette), with
the brightness left free within a range, because the same albedo is rendered or photographed
brighter or darker with the light and the surface's angle to it.

A voxel "could be" a colour when that colour is among its `top` nearest terms after the best
brightness scaling, so neighbouring terms (navy/blue, beige/white, orange/brown) are not told
apart: the check refuses an object only when the named colour is far from what it shows.

Brightness is left free, but saturation ((max - min) / max of the channels) is not: light changes
how bright a surface looks far more than how grey it looks, so a voxel is no candidate for a term
whose paint is much more or much less saturated than the voxel. Without that, a near-black chair
"could be" brown (dark brown scaled to half brightness lies as close to it as black does) and
"go to the brown chair" drove to a black one; a beige shelf "could be" grey.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from llm3d_core.known_things import target_phrase

# Colour terms: canonical name -> sRGB (0-255) of the term's typical surface. The generator's
# scenes paint objects with these same values (sim.scenes.catalog.PALETTE reads them from here).
COLOR_TERMS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "green": (60, 160, 70), "blue": (50, 90, 200), "yellow": (230, 200, 50),
    "orange": (235, 130, 40), "purple": (130, 60, 170), "pink": (235, 140, 180), "brown": (120, 80, 45),
    "black": (35, 35, 35), "white": (240, 240, 240), "gray": (130, 130, 130), "beige": (215, 195, 160),
    "teal": (40, 150, 150), "navy": (30, 40, 100),
}
# Other words for the terms (longest matched first: "navy blue" is navy, not blue).
COLOR_SYNONYMS: dict[str, str] = {
    "grey": "gray", "navy blue": "navy", "dark blue": "navy", "blue-green": "teal", "blue green": "teal",
    "cream": "beige", "violet": "purple", "turquoise": "teal", "silver": "gray", "tan": "beige",
}
_NAMES = tuple(COLOR_TERMS)
NAMING_SCALE = (0.5, 1.2)  # brightness factors dominant_color allows (see there)
_RGB = np.array([COLOR_TERMS[n] for n in _NAMES], dtype=np.float64) / 255.0  # (T, 3)
_BLACK = _NAMES.index("black")
_SATURATION = (_RGB.max(1) - _RGB.min(1)) / _RGB.max(1)  # (T,) each term's paint saturation
# How much less / more saturated than a term's paint a voxel may be and still be that term. The
# data generator's renders keep a paint's saturation to +-0.01 (white light; brown 0.63, beige
# 0.26, the greys 0); a camera's white balance and mixed light tint greys and fade colours, so the
# allowance is wide: a colour down to 0.35 below its term (brown from 0.28), a grey up to 0.2
# above it, and any voxel whose channels differ by less than CHROMA_FLOOR counts as grey (dark
# voxels' saturation is noise: (20, 20, 27) is 0.26 saturated).
SATURATION_TOL = (0.35, 0.2)
CHROMA_FLOOR = 0.04
_FORMS = sorted([*COLOR_TERMS, *COLOR_SYNONYMS], key=len, reverse=True)
_WORD = re.compile(r"\b(" + "|".join(re.escape(f) for f in _FORMS) + r")\b", re.IGNORECASE)


def color_words(text: str) -> list[str]:
    """The colour terms `text` names, canonical, each once, in order ("grey and navy blue" -> ["gray", "navy"])."""
    return list(dict.fromkeys(COLOR_SYNONYMS.get(m.lower(), m.lower()) for m in _WORD.findall(text)))


def target_color_words(expression: str) -> list[str]:
    """The colour terms of a referring expression's target, not of its anchors.

    "the purple mug" -> ["purple"]; "the fridge that is grey" -> ["gray"]; "the mug on the blue
    table" -> [] (blue is the table's); "go to the white mug" -> ["white"]. The target's words run
    from the first determiner to the next relation word (llm3d_core.known_things.target_phrase)."""
    return color_words(target_phrase(expression))


def compatible_terms(rgb: np.ndarray, top: int = 2, scale: tuple[float, float] = (0.45, 1.6)) -> np.ndarray:
    """Which colour terms each colour could be: (N, 3) in [0, 1] -> (N, T) bool, T = len(COLOR_TERMS).

    For each term the colour's distance to the term's RGB scaled by the best factor in `scale`
    (light and shading change brightness, much less hue); the `top` nearest terms are compatible.
    Black is the one term that names a brightness rather than a hue, so it is no candidate for a
    colour brighter than black's paint under the brightest light `scale` allows (brightest channel
    above 0.137 x scale[1]): without that, with the brightness free, a mid-grey laptop "could be"
    black and "go to the black laptop" drove to it. Nor is a term whose saturation is far from
    the colour's (SATURATION_TOL): it drops out of the `top` nearest, and no farther term takes
    its place (a beige shelf does not become "pink" because grey and white dropped out)."""
    c = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)  # (N, 3)
    k = np.clip(c @ _RGB.T / (_RGB ** 2).sum(1), *scale)  # (N, T) best brightness factor per term
    dist = np.linalg.norm(c[:, None, :] - k[..., None] * _RGB[None], axis=2)  # (N, T)
    chroma = c.max(1) - c.min(1)  # (N,)
    sat = np.where(chroma >= CHROMA_FLOOR, chroma / np.maximum(c.max(1), 1e-9), 0.0)  # (N,)
    diff = sat[:, None] - _SATURATION[None]  # (N, T) > 0: the voxel is more saturated than the term
    allowed = (diff >= -SATURATION_TOL[0]) & (diff <= SATURATION_TOL[1])  # (N, T)
    order = np.argsort(dist, axis=1)[:, :top]  # (N, top)
    out = np.zeros(dist.shape, dtype=bool)
    np.put_along_axis(out, order, True, axis=1)
    out &= allowed
    out[c.max(1) > _RGB[_BLACK].max() * scale[1], _BLACK] = False  # (no other term takes its place)
    return out


def _finite(rgb: np.ndarray) -> np.ndarray:
    """Colours (any shape ending in 3) as (N, 3) float64, rows with a NaN or inf dropped."""
    c = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    return c[np.isfinite(c).all(1)]


def color_shares(rgb: np.ndarray, top: int = 2) -> dict[str, float]:
    """The share of an object's colours (N, 3) in [0, 1] compatible with each term, largest first
    (terms no colour is compatible with are left out). Empty without colours."""
    c = _finite(rgb)
    if not len(c):
        return {}
    share = compatible_terms(c, top).mean(0)  # (T,)
    return {_NAMES[i]: round(float(share[i]), 4) for i in np.argsort(-share) if share[i] > 0}


def dominant_color(rgb: np.ndarray, scale: tuple[float, float] = NAMING_SCALE) -> tuple[str | None, float]:
    """The colour term most of an object's colours (N, 3) in [0, 1] are nearest to, and the share
    of them that are: ("brown", 0.94); (None, 0.0) without colours.

    Naming needs brightness, which the refusal check leaves free: a mid grey is grey at factor 1
    and white at 0.54, so with the check's range (0.45, 1.6) every achromatic colour is a tie.
    NAMING_SCALE lets light and shade darken a surface to half and brighten it by a fifth: of
    the scales tried on the 10 val maps' colour questions (the asked object's colours), (0.5, 1.2)
    named 77.5 % right, (0.45, 1.6) 65 %, none (1, 1) 20 % (rendered surfaces are darker than
    their paint); docs/model.md "Colours from the map"."""
    c = _finite(rgb)
    nearest = compatible_terms(c, top=1, scale=scale)  # (N, T) each colour's one term, if any
    named = nearest.any(1)  # (N,) False where the nearest term's saturation is far from the colour's
    if not named.any():
        return None, 0.0
    counts = np.bincount(nearest[named].argmax(1), minlength=len(_NAMES))
    best = int(counts.argmax())
    return _NAMES[best], float(counts[best]) / len(c)  # (unnamed colours count against the share)


def missing_colors(expression: str, shares: Mapping[str, float], min_share: float) -> list[str]:
    """The target colours `expression` names that an object with `shares` does not show
    (share below `min_share`); [] when it names none, or when the object's colours are unknown."""
    if not shares:
        return []
    return [c for c in target_color_words(expression) if shares.get(c, 0.0) < min_share]


def describe_shares(shares: Mapping[str, float], n: int = 2) -> str:
    """"red 0.71, orange 0.40": the object's leading colour terms, for messages."""
    return ", ".join(f"{name} {share:.2f}" for name, share in list(shares.items())[:n]) or "no colour seen"
