"""pyrender backend options: a validated section that never imports pyrender or OpenGL.

The orchestrating process checks ``--backend-opts`` with it before any worker starts (it must never
create a GL context); the worker's backend takes its values from the same model, so the accepted
options and their limits are written once.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

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
    # longest side a mesh's own texture is uploaded at: "auto" (a power of two >= the image's longer side),
    # a number of pixels, or 0 for the file's full resolution
    texture_max_side: Literal["auto"] | Annotated[int, Field(ge=0)] = "auto"


def pyrender_settings(
    options: dict[str, Any] | None = None, where: str = "backend pyrender"
) -> PyrenderSettings:
    """Validate backend options into ``PyrenderSettings`` (one line naming the key on error)."""
    try:
        return PyrenderSettings.model_validate(dict(options or {}))
    except ValidationError as e:
        known = ", ".join(PyrenderSettings.model_fields)
        raise ConfigError(where, f"{format_validation_error(where, e)} (options: {known})") from None


def texture_cap(setting: int | str, width: int, height: int) -> int:
    """The largest side a mesh's own texture is uploaded at for a ``width`` x ``height`` image (0: no cap).

    "auto": the smallest power of two at least as long as the image's longer side (1024 for 640x480, 256
    for 224x224), so an object as large as the whole image still draws from one texel per pixel or more;
    what an object covers in a randomized scene is a fraction of that, so the texture's mipmaps would never
    have used the larger levels. Catalog labels are made for close-ups (up to ~2000 px): uploading and
    mipmapping them was most of a worker's start-up."""
    if setting != "auto":
        return int(setting)
    return 1 << max(0, math.ceil(math.log2(max(width, height, 1))))
