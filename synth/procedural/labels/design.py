"""The design of one product: everything random about its artwork, decided once from the seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synth.procedural.labels.ean13 import random_ean13
from synth.procedural.labels.fonts import BRAND_FACES
from synth.procedural.labels.palette import Palette, sample_palette
from synth.procedural.labels.products import DRINKS, brand_name, product_name, sample_nutrition


@dataclass(frozen=True)
class LabelDesign:
    """Everything random about one product's artwork, decided once from the seed."""

    brand: str
    product: str
    category: str
    palette: Palette
    brand_face: str
    logo: str  # circle | star | diamond | ribbon | leaf | sun
    motif: str  # band | diagonal | wave | burst | stripes
    ean: str
    net_quantity: str
    nutrition: tuple[tuple[str, str], ...] | None  # None: not a food (ingredients text instead)
    per: str = "100 g"
    dots_seed: int = 0
    claims: tuple[str, ...] = field(default_factory=tuple)


LOGOS = ("circle", "star", "diamond", "ribbon", "leaf", "sun")
MOTIFS = ("band", "diagonal", "wave", "burst", "stripes")
_CLAIMS = (
    "NEW",
    "High in Fibre",
    "No Added Sugar",
    "Vegan",
    "Gluten Free",
    "Source of Protein",
    "Family Size",
    "Value Pack",
    "Since 1921",
    "Product of Italy",
    "Recyclable",
)


def sample_design(rng: np.random.Generator, category: str, net_quantity: str) -> LabelDesign:
    palette = sample_palette(rng, category)
    claims = tuple(str(c) for c in rng.choice(_CLAIMS, size=int(rng.integers(0, 3)), replace=False))
    return LabelDesign(
        brand=brand_name(rng),
        product=product_name(rng, category),
        category=category,
        palette=palette,
        brand_face=BRAND_FACES[rng.integers(len(BRAND_FACES))],
        logo=LOGOS[rng.integers(len(LOGOS))],
        motif=MOTIFS[rng.integers(len(MOTIFS))],
        ean=random_ean13(rng),
        net_quantity=net_quantity,
        nutrition=sample_nutrition(rng, category),
        per="100 ml" if category in DRINKS else "100 g",
        dots_seed=int(rng.integers(0, 2**31 - 1)),
        claims=claims,
    )
