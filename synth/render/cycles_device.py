"""Pick the Cycles compute device: OptiX > CUDA > HIP > CPU, or exactly what the user asked for.

Blender keeps the device list in the Cycles add-on preferences; a backend type "has" a device only when
``refresh_devices`` lists a non-CPU entry of that type (the CPU is always listed too).
"""

from __future__ import annotations

import logging
import os

import bpy

from synth.errors import ConfigError

log = logging.getLogger("synth.render.cycles")

GPU_ORDER = ("OPTIX", "CUDA", "HIP")


def _gpus_of(prefs, backend: str) -> list:
    try:
        prefs.compute_device_type = backend
    except TypeError:  # this Blender build does not know the backend at all
        return []
    prefs.refresh_devices()
    return [d for d in prefs.devices if d.type == backend]


def select_device(scene, requested: str = "auto") -> str:
    """Configure ``scene`` for the chosen device and return a human-readable description of it.

    ``requested``: "auto", "cpu", "optix", "cuda" or "hip". Asking for a GPU type that is not present
    is an error rather than a silent CPU fallback: a benchmark must not measure the wrong thing.
    """
    prefs = bpy.context.preferences.addons["cycles"].preferences
    wanted = requested.lower()
    order = GPU_ORDER if wanted == "auto" else (() if wanted == "cpu" else (wanted.upper(),))
    for backend in order:
        gpus = _gpus_of(prefs, backend)
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend  # GPUs only: a 2-core CPU would only slow a GPU down
            scene.cycles.device = "GPU"
            desc = f"{backend} ({', '.join(d.name for d in gpus)})"
            log.info("cycles device: %s", desc)
            return desc
        if wanted != "auto":
            raise ConfigError("cycles.device", f"'{requested}' requested but no {backend} device was found")
    prefs.compute_device_type = "NONE"
    scene.cycles.device = "CPU"
    desc = f"CPU ({os.cpu_count()} logical cores)"
    log.info("cycles device: %s", desc)
    return desc
