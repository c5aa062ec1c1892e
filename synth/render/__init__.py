"""Render backends: turn a ``Scene`` into a ``Frame`` (colour, depth, exact instance ids).

A backend is a small object that owns its GL context / Blender state for the life of one worker
process (see ../shared/STACK.md: one renderer per process, never threads)::

    with get_backend("pyrender") as backend:
        frame = backend.render(scene)

Backends are imported lazily by name so that importing this package never creates a GL context or
loads bpy. Adding a backend = one module under ``synth/render/``, one line in ``BACKENDS`` and one in
``OPTIONS`` (a validator of its options that imports neither GL nor bpy, so the orchestrating process
can refuse bad options before any worker starts: ``check_backend_options``).

The contract every backend keeps (so annotation, written once above the backends, is identical):
  * ``Frame.rgb`` HxWx3 uint8, ``Frame.depth`` HxW float32 metres along the camera axis (0 = no hit),
    ``Frame.instance_ids`` HxW uint16 with the ``SceneObject.instance_id`` covering each pixel centre
    (never blended at edges; 0 = background), optionally ``Frame.amodal`` full silhouettes.
  * Camera and pose conventions are those of ``synth.scene``; primitive and mesh triangles come from
    ``synth.geometry`` and procedural textures from ``synth.textures``.
  * Scene colours (``Material.base_color``, ``Environment.*_color``) are linear RGB; a texture is
    multiplied by ``base_color`` (glTF ``baseColorFactor`` semantics); ``TextureSpec.repeat`` tiles
    the texture that many times per UV unit. ``Environment.background_texture`` is a screen-space
    backdrop: the (tiled) texture scaled to cover the image and centre-cropped, with no instance id.
  * ``Frame.timings`` holds seconds per internal stage (e.g. "render_color", "render_ids").
"""

from __future__ import annotations

import importlib
import inspect
from typing import Protocol, runtime_checkable

from synth.errors import ConfigError
from synth.scene import Frame, Scene

# name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "pyrender": ("synth.render.pyrender_backend", "PyrenderBackend"),
    "cycles": ("synth.render.cycles_backend", "CyclesBackend"),
}

# name -> (module, function(options, where)) validating the backend's options, light to import
OPTIONS: dict[str, tuple[str, str]] = {
    "pyrender": ("synth.render.pyrender_settings", "pyrender_settings"),
    "cycles": ("synth.render.cycles_settings", "cycles_settings"),
}


@runtime_checkable
class Backend(Protocol):
    """What the writer needs from a renderer. Construct with keyword options only."""

    name: str

    def render(self, scene: Scene) -> Frame:
        """Render one scene. Must not sample randomness: everything random is in the scene."""
        ...

    def close(self) -> None:
        """Release the GL context / renderer state. Safe to call twice."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def _check_name(name: str) -> None:
    if name not in BACKENDS:
        raise ConfigError("backend", f"unknown backend '{name}' (choose from {', '.join(backend_names())})")


def check_backend_options(name: str, opts: dict) -> dict:
    """Refuse an unknown backend, or unknown or out-of-range options, in the calling process without
    importing the backend (no GL context, no bpy): one line naming the key. Returns every option with its
    default filled in, so a run records what it rendered with even after a default changes."""
    _check_name(name)
    module_name, function = OPTIONS[name]
    settings = getattr(importlib.import_module(module_name), function)(opts, where=f"backend {name}")
    return settings.model_dump(mode="json")


def get_backend(name: str, **opts) -> Backend:
    """Instantiate the backend called ``name`` with keyword options ``opts``."""
    _check_name(name)
    module_name, class_name = BACKENDS[name]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(opts) - set(params))
        if unknown:
            raise ConfigError(
                f"backend {name}",
                f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(params)) or 'none'})",
            )
    return cls(**opts)
