"""Small hand-built scenes and a tiny catalog for the render data-path tests (textures, pyrender backend,
annotation, writer). Module-level functions so spawned writer workers can unpickle them by reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh
from pydantic import BaseModel, ConfigDict, Field

from synth.catalog import Catalog, SkuRecord, Source
from synth.config import AnnotationConfig, CatalogSelection, ImageConfig, OutputConfig
from synth.scene import (
    Camera,
    Environment,
    Geometry,
    Light,
    Material,
    Scene,
    SceneObject,
    TextureSpec,
    identity,
)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> list[list[float]]:
    """Camera-to-world pose (OpenGL axes: looks down -Z) from an eye point and a target."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-9:
        r = np.cross(f, (0.0, 1.0, 0.0))
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, -f, eye
    return m.tolist()


def translation(x, y, z, yaw=0.0) -> list[list[float]]:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = (x, y, z)
    return m.tolist()


def top_down_camera(width=128, height=96, height_m=2.0, fx=200.0, fy=None, cx=None, cy=None) -> Camera:
    """Looking straight down -Z from (0, 0, height_m); image +x = world +x, image up = world +y."""
    pose = np.eye(4)
    pose[2, 3] = height_m
    return Camera(
        width=width,
        height=height,
        fx=fx,
        fy=fy or fx,
        cx=width / 2 if cx is None else cx,
        cy=height / 2 if cy is None else cy,
        znear=0.05,
        zfar=10.0,
        pose=pose.tolist(),
    )


class TinyRenderConfig(BaseModel):
    """The sections the writer needs, plus how many objects the test builder places."""

    model_config = ConfigDict(extra="forbid")
    image: ImageConfig = Field(default_factory=lambda: ImageConfig(width=128, height=96))
    output: OutputConfig = Field(default_factory=lambda: OutputConfig(shard_size=3))
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    catalog: CatalogSelection = Field(default_factory=CatalogSelection)
    objects: int = Field(6, ge=1, le=50)


CATEGORIES = ["block", "can", "widget"]


def build_tiny_scene(cfg: TinyRenderConfig, catalog: Catalog, seed: int, index: int) -> Scene:
    """A seeded table-top: textured floor, boxes / cylinders / catalog meshes, occluding each other."""
    rng = np.random.default_rng([seed, index])
    w, h = cfg.image.width, cfg.image.height
    eye = (rng.uniform(-0.2, 0.2), -0.55 + rng.uniform(-0.05, 0.05), 0.55)
    cam = Camera.from_fov(w, h, 45.0, pose=look_at(eye, (0.0, 0.0, 0.05)), znear=0.05, zfar=10.0)
    objects = [
        SceneObject(
            instance_id=1,
            role="support",
            geometry=Geometry(plane=(3.0, 3.0)),
            material=Material(
                base_color=(1, 1, 1, 1),
                texture=TextureSpec(procedural="wood", seed=int(rng.integers(100)), size=128, repeat=2.0),
            ),
        )
    ]
    mesh_ids = catalog.ids() if catalog.root.is_dir() else []
    for k in range(cfg.objects):
        iid = k + 2
        x, y = rng.uniform(-0.18, 0.18, 2)
        kind = int(rng.integers(3))
        if kind == 0:
            size = tuple(float(v) for v in rng.uniform(0.05, 0.15, 3))
            geom, z, cat = Geometry(box=size), size[2] / 2, "block"
            mat = Material(
                base_color=(1, 1, 1, 1),
                texture=TextureSpec(
                    procedural=str(rng.choice(["flying", "checker", "stripes"])),
                    seed=int(rng.integers(50)),
                    size=64,
                ),
            )
        elif kind == 1:
            r, hh = float(rng.uniform(0.03, 0.05)), float(rng.uniform(0.06, 0.14))
            geom, z, cat = Geometry(cylinder=(r, hh)), hh / 2, "can"
            mat = Material(
                base_color=tuple(float(c) for c in rng.uniform(0.1, 0.9, 3)) + (1.0,), roughness=0.4
            )
        else:
            if mesh_ids:
                rec = catalog.get(mesh_ids[int(rng.integers(len(mesh_ids)))])
                geom, z, cat = (
                    Geometry(mesh=str(catalog.mesh_path(rec).resolve())),
                    rec.size_m[2] / 2,
                    "widget",
                )
            else:
                geom, z, cat = Geometry(box=(0.08, 0.08, 0.08)), 0.04, "widget"
            mat = None
        objects.append(
            SceneObject(
                instance_id=iid,
                category=cat,
                sku_id=f"sku-{cat}",
                geometry=geom,
                pose=translation(float(x), float(y), z, float(rng.uniform(0, math.pi))),
                material=mat,
            )
        )
    # several lights of a kind: the shader sums them, in an order that must not depend on the worker
    lights = [
        Light(
            kind=kind,
            pose=look_at((*rng.uniform(-1.0, 1.0, 2), 1.5), (0.0, 0.0, 0.0)),
            intensity=float(rng.uniform(30, 90)),
            color=tuple(float(c) for c in rng.uniform(0.7, 1.0, 3)),
        )
        for kind in ("point", "point", "point", "point", "spot", "area")
    ] + [Light(kind="directional", pose=look_at((1, 1, 2), (0, 0, 0)), intensity=1.5)]
    env = Environment(
        background_color=tuple(float(c) for c in rng.uniform(0.2, 0.6, 3)), ambient_intensity=0.3
    )
    return Scene(seed=seed, index=index, camera=cam, lights=lights, objects=objects, environment=env)


def make_tiny_catalog(root: Path) -> Catalog:
    """Two catalog entries with real GLB meshes: a bevelled-looking box (12 tris) and a capsule."""
    catalog = Catalog(root)
    meshes = {
        "widget-box": trimesh.creation.box((0.07, 0.05, 0.09)),
        "widget-capsule": trimesh.creation.capsule(height=0.06, radius=0.03, count=(12, 12)),
    }
    for sku_id, mesh in meshes.items():
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
        size = tuple(float(v) for v in mesh.extents)
        record = SkuRecord(
            id=sku_id,
            name=sku_id,
            category="widget",
            supercategory="industrial",
            size_m=size,
            thumbnail=None,
            source=Source(kind="procedural", generator="test"),
        )

        def write(tmp: Path, mesh=mesh) -> None:
            mesh.export(tmp / "mesh.glb")

        catalog.add(record, write)
    return catalog


__all__ = [
    "CATEGORIES",
    "RenderService",
    "TinyRenderConfig",
    "build_tiny_scene",
    "identity",
    "look_at",
    "make_tiny_catalog",
    "top_down_camera",
    "translation",
]


# ---- rendering in a spawned process ---------------------------------------------------------------------
# Tests never create a GL context in the pytest process: STACK.md, a Mesa EGL context followed by a
# torchvision import (other test modules) segfaults. A one-process spawn pool renders for them instead.
_BACKENDS: dict = {}


def render_in_worker(scene_json: str, opts_json: str):
    """Runs in the spawned worker: one backend per option set, kept for the worker's life."""
    import json

    from synth.render import get_backend

    backend = _BACKENDS.get(opts_json)
    if backend is None:
        backend = _BACKENDS[opts_json] = get_backend("pyrender", **json.loads(opts_json))
    frame = backend.render(Scene.from_json(scene_json))
    frame.timings = dict(frame.timings)
    return frame


def uploaded_texels(png: bytes) -> list[np.ndarray]:
    """Runs in the spawned worker: a mesh file's PNG uploaded the way the backend uploads it, then the same
    pixels as pyrender's own RGBA texture, each read back from GL: levels 0 and 1 of each, (H, W, 4) uint8
    with the top row first."""
    import io

    import pyrender
    from OpenGL.GL import (
        GL_PACK_ALIGNMENT,
        GL_RGBA,
        GL_TEXTURE_2D,
        GL_UNSIGNED_BYTE,
        glBindTexture,
        glGetTexImage,
        glPixelStorei,
    )
    from PIL import Image

    from synth.render import get_backend
    from synth.render.pyrender_backend import gl_texture, opaque_rgba

    backend = _BACKENDS.get("{}")
    if backend is None:
        backend = _BACKENDS["{}"] = get_backend("pyrender")
    backend._ensure_renderer(8, 8)._platform.make_current()
    ours = gl_texture(Image.open(io.BytesIO(png)))
    rgba = opaque_rgba(Image.open(io.BytesIO(png)).convert("RGB"))
    plain = pyrender.Texture(source=rgba, source_channels="RGBA")
    h, w = rgba.shape[:2]
    out = []
    glPixelStorei(GL_PACK_ALIGNMENT, 1)
    for tex in (ours, plain):
        tex._add_to_context()
        glBindTexture(GL_TEXTURE_2D, tex._texid)
        for level, (lh, lw) in enumerate([(h, w), (max(1, h // 2), max(1, w // 2))]):
            data = glGetTexImage(GL_TEXTURE_2D, level, GL_RGBA, GL_UNSIGNED_BYTE)
            out.append(np.frombuffer(data, np.uint8).reshape(lh, lw, 4)[::-1].copy())
        glBindTexture(GL_TEXTURE_2D, 0)
        tex._remove_from_context()
    return out


class RenderService:
    """``service.render(scene, antialias="edge")`` -> Frame, rendered in a child process."""

    def __init__(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def render(self, scene: Scene, **opts):
        import json

        return self._pool.submit(render_in_worker, scene.to_json(), json.dumps(opts, sort_keys=True)).result()

    def call(self, fn, *args):
        return self._pool.submit(fn, *args).result()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)
