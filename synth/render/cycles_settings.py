"""Cycles render settings: a validated config section that never imports bpy.

The render config and the CLI validate these in the main process (a bad ``samples`` fails before any
worker starts); the worker hands them to ``CyclesBackend``. Resolution is not here on purpose: it is the
scene camera's ``width``/``height`` (the render config's ``image`` section), so labels, intrinsics and
pixels can never disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth.errors import ConfigError

Device = Literal["auto", "cpu", "optix", "cuda", "hip"]
Denoiser = Literal["openimagedenoise", "optix", "none"]
ViewTransform = Literal["AgX", "Standard", "Filmic", "Khronos PBR Neutral"]


class CyclesSettings(BaseModel):
    """Everything a user may tune about the path tracer (defaults: good quality at ~64 spp)."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(64, ge=1, le=65536)  # max samples per pixel of the photoreal (beauty) image
    adaptive_sampling: bool = True  # stop converged pixels early
    adaptive_threshold: float = Field(0.02, gt=0.0, le=1.0)  # noise level at which a pixel is done
    adaptive_min_samples: int = Field(0, ge=0)  # 0: Cycles picks
    denoiser: Denoiser = "openimagedenoise"  # OIDN runs on the CPU (and on GPUs where supported)
    denoising_quality: Literal["HIGH", "BALANCED", "FAST"] = "BALANCED"
    max_bounces: int = Field(6, ge=0, le=1024)  # total light bounces
    diffuse_bounces: int = Field(3, ge=0, le=1024)
    glossy_bounces: int = Field(3, ge=0, le=1024)
    transmission_bounces: int = Field(6, ge=0, le=1024)
    transparent_bounces: int = Field(8, ge=0, le=1024)
    clamp_indirect: float = Field(10.0, ge=0.0)  # firefly clamp on indirect light (0 = off)
    filter_width: float = Field(1.5, ge=0.01, le=10.0)  # pixel filter of the beauty image, in pixels
    device: Device = "auto"  # auto = OptiX > CUDA > HIP > CPU; "cpu" forces the CPU
    threads: int = Field(0, ge=0, le=1024)  # CPU render threads; 0 = all cores
    # Khronos PBR Neutral keeps base colours' hue and saturation (product shots) and still rolls off
    # highlights; AgX/Filmic desaturate bright colours more; "Standard" is plain sRGB and clips.
    view_transform: ViewTransform = "Khronos PBR Neutral"
    exposure: float = Field(0.0, ge=-10.0, le=10.0)  # stops
    sky_strength: float = Field(1.0, gt=0.0)  # extra multiplier on the procedural sky's radiance
    hdri_root: str | None = None  # folder that relative ``environment.hdri`` paths are resolved against
    geometry_cache_size: int = Field(256, ge=0)  # imported meshes / primitives kept between images
    persistent_data: bool = True  # keep Cycles' scene/BVH between the two passes and between images
    quiet: bool = True  # keep Cycles' per-tile progress lines out of the worker's stdout


def cycles_settings(
    options: dict[str, Any] | CyclesSettings | None = None, where: str = "cycles"
) -> CyclesSettings:
    """Validate backend options (a config section or CLI keyword arguments) into ``CyclesSettings``."""
    if isinstance(options, CyclesSettings):
        return options
    try:
        return CyclesSettings.model_validate(dict(options or {}))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "<options>"
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(where, f"key '{key}': {msg}") from None
