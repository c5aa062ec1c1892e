"""What the benchmark compares: five training variants, each defined by its data, augmentation, domain
adaptation and starting weights. Everything else (model, budget, seed) is shared, see ``scales``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from train.config import TARGET_IMAGE_METHODS

VariantKey = Literal["a", "b", "c", "d", "e"]
Role = Literal["synthetic", "real", "finetuned"]


@dataclass(frozen=True)
class Variant:
    key: str
    name: str  # folder name and short label
    title: str
    role: Role  # what the report compares it as: synthetic-only, the real-only reference, or fine-tuned
    data: str  # "synthetic_plain" | "synthetic_dr" | "real_train"
    augment: bool  # train-time kornia randomization
    dann: bool = False
    self_training: bool = False  # mean-teacher pseudo-labels on the real train photos (train.self_training)
    init_from: str | None = None  # key of the variant whose checkpoint this one starts from
    # Training-config settings of the variant's own recipe, before --train-set overrides; ``ssd_settings``
    # apply to SSD models only (they act on SSD's hard-negative mining).
    settings: tuple[tuple[str, Any], ...] = ()
    ssd_settings: tuple[tuple[str, Any], ...] = ()
    steps_share: float = 1.0  # share of the shared step count it trains (on top of its parent's, if any)

    @property
    def adapts(self) -> bool:
        """Whether it reads the real train photos (never their labels) to adapt to them."""
        return self.dann or self.self_training

    @property
    def synthetic_only(self) -> bool:
        return self.role == "synthetic"

    def takes(self, setting: str) -> bool:
        """Whether a ``--train-set`` override reaches this variant: the adaptation sections (DANN,
        self-training, FDA) reach only the variants that adapt, so (b), trained first for (c), stays (b)."""
        section = setting.split(".", 1)[0]
        return self.adapts or (section not in TARGET_IMAGE_METHODS and setting != "target_images")


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "a",
        "synthetic-plain",
        "(a) synthetic, no randomization",
        "synthetic",
        "synthetic_plain",
        augment=False,
    ),
    Variant(
        "b", "synthetic-dr", "(b) synthetic + domain randomization", "synthetic", "synthetic_dr", augment=True
    ),
    Variant(
        "c",
        "synthetic-dr-dann",
        "(c) = (b) adapted by DANN and self-training on the real train photos",
        "synthetic",
        "synthetic_dr",
        augment=True,
        dann=True,
        self_training=True,
        # Adaptive Teacher's order: (b) is the burn-in on labelled renders, so its final detector is the
        # teacher from the first step; the teacher's unsure detections are don't-care, not background.
        # Half the steps on top of (b)'s cost less than the one-run form (half burn-in, half adaptation)
        # whose step time doubles once the teacher labels every target batch.
        init_from="b",
        steps_share=0.5,
        settings=(("self_training.start", 0.0),),
        ssd_settings=(("self_training.ignore_below", 0.2),),
    ),
    Variant("d", "real-only", "(d) real train split only (reference)", "real", "real_train", augment=True),
    Variant(
        "e",
        "dr-then-real",
        "(e) = (b) fine-tuned on the real train split",
        "finetuned",
        "real_train",
        augment=True,
        init_from="b",
    ),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}


class Gain(NamedTuple):
    """One change of recipe the benchmark isolates: ``variant`` minus ``baseline``."""

    key: str  # in the summary's "transfer"
    variant: str
    baseline: str
    label: str  # in the bootstrap's "differences"


GAINS: tuple[Gain, ...] = (
    Gain("adaptation_gain_AP50", "c", "b", "adaptation (c - b)"),
    Gain("randomization_gain_AP50", "b", "a", "randomization (b - a)"),
    Gain("finetune_gain_AP50", "e", "d", "fine-tuning (e - d)"),
)


def plan_variants(keys: list[str]) -> list[Variant]:
    """The chosen variants plus what they start from ((e) needs (b)), in training order."""
    chosen = set(keys)
    for k in keys:
        if VARIANT_BY_KEY[k].init_from:
            chosen.add(VARIANT_BY_KEY[k].init_from)
    return [v for v in VARIANTS if v.key in chosen]


def reference_key(keys) -> str | None:
    """The real-only variant among ``keys``: the number every other variant is compared with."""
    return next((k for k in keys if VARIANT_BY_KEY[k].role == "real"), None)
