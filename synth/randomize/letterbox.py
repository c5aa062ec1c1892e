"""Which images are letterboxed photos, and of which aspect: the scene's ``Letterbox``
(``synth.letterbox``)."""

from __future__ import annotations

import numpy as np

from synth.config import ImageConfig
from synth.letterbox import photo_rectangle
from synth.randomize.settings import LetterboxConfig
from synth.scene import Letterbox


def sample_letterbox(cfg: LetterboxConfig, image: ImageConfig, rng: np.random.Generator) -> Letterbox | None:
    """The photo rectangle of one image, or None for a full-frame image. Draws nothing when the
    probability is 0, so configs without bars keep their images."""
    if cfg.probability <= 0.0 or rng.random() >= cfg.probability:
        return None
    weights = np.asarray(cfg.weights if cfg.weights is not None else [1.0] * len(cfg.aspects), dtype=float)
    aspect = float(cfg.aspects[int(rng.choice(len(cfg.aspects), p=weights / weights.sum()))])
    portrait = bool(rng.random() < cfg.portrait_probability)
    x0, y0, x1, y1 = photo_rectangle(image.width, image.height, aspect, portrait)
    if (x0, y0, x1, y1) == (0, 0, image.width, image.height):
        return None
    return Letterbox(x0=x0, y0=y0, x1=x1, y1=y1, fill=(cfg.fill, cfg.fill, cfg.fill))
