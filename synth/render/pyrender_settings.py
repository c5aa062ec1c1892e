"""pyrender backend options: a validated section that never imports pyrender or OpenGL.

The orchestrating process checks ``--backend-opts`` with it before any worker starts (it must never
create a GL context); the worker's backend takes its values from the same model, so the accepted
options and their limits are written once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth.config import format_validation_error
from synth.errors import ConfigError


class PyrenderSettings(BaseModel):
    """What a user may tune about the rasteriser (see synth/render/pyrender_backend.py)."""

    model_config = ConfigDict(extra="forbid")

    # id-edge blur (default: on llvmpipe 4x MSAA costs 4-5x the colour pass, ~1.7x the whole image),
    # 4x MSAA, or nothing
    antialias: Literal["msaa", "edge", "none"] = "edge"
    shadows: bool = False  # shadow maps for directional and spot lights (one more pass per light)
    exposure: float = Field(1.0, gt=0.0, allow_inf_nan=False)  # multiplies every light and the ambient
    max_pooled_nodes: int = Field(512, ge=1)  # GL-resident mesh nodes kept between images


def pyrender_settings(
    options: dict[str, Any] | None = None, where: str = "backend pyrender"
) -> PyrenderSettings:
    """Validate backend options into ``PyrenderSettings`` (one line naming the key on error)."""
    try:
        return PyrenderSettings.model_validate(dict(options or {}))
    except ValidationError as e:
        known = ", ".join(PyrenderSettings.model_fields)
        raise ConfigError(where, f"{format_validation_error(where, e)} (options: {known})") from None
