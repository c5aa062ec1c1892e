"""Helpers for the Cycles tests: random test scenes, and renderer work that runs in a spawned process.

bpy and pyrender never run in the pytest process itself: bpy is a process-global Blender, and a pyrender
EGL context followed by a torchvision import (another test file) segfaults (see ../shared/STACK.md).
Functions below whose name starts with ``w_`` are executed in a worker process via ``Worker``.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from synth.scene import Camera, Environment, Geometry, Light, Material, Scene, SceneObject, TextureSpec

SMALL = (160, 120)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> list[list[float]]:
    """Camera/light pose (OpenGL axes: looks down local -Z) at ``eye`` facing ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = eye - target
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, np.cross(z, x), z, eye
    return m.tolist()


def make_bracket_glb(path: Path) -> Path:
    """An asymmetric, textured GLB (an L-bracket with a post): any axis or handedness mistake in mesh
    import changes its silhouette. The texture has two halves (red / blue) and a yellow stripe.
    A ``.stl`` path writes the same shape untextured (the non-glTF import path)."""
    import trimesh
    from PIL import Image

    parts = []
    for extents, offset in (
        ((0.12, 0.04, 0.03), (0.0, 0.0, 0.0)),
        ((0.04, 0.08, 0.03), (-0.04, 0.06, 0.0)),
        ((0.03, 0.03, 0.07), (0.045, 0.0, 0.05)),
    ):
        b = trimesh.creation.box(extents=extents)
        b.apply_translation(offset)
        parts.append(b)
    mesh = trimesh.util.concatenate(parts)
    xy = mesh.vertices[:, :2]
    uv = (xy - xy.min(0)) / np.ptp(xy, axis=0)
    img = np.zeros((64, 64, 3), np.uint8)
    img[:32] = (200, 30, 30)
    img[32:] = (30, 30, 200)
    img[:, :8] = (250, 250, 0)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(img))
    mesh.export(path)
    return path


def random_scene(seed: int, meshes: str | Path | list, size=SMALL) -> Scene:
    """A table-top scene: a textured support plane and 4-6 boxes, cylinders and mesh files (``meshes``, used
    in turn) in random poses, overlapping and occluding each other, seen by an off-centre camera with
    fx != fy."""
    meshes = meshes if isinstance(meshes, list) else [meshes]
    rng = np.random.default_rng(seed)
    w, h = size
    fx = rng.uniform(0.9, 1.2) * w
    az, el, dist = (
        rng.uniform(0, 2 * math.pi),
        rng.uniform(math.radians(25), math.radians(65)),
        rng.uniform(0.55, 0.9),
    )
    eye = (dist * math.cos(el) * math.cos(az), dist * math.cos(el) * math.sin(az), dist * math.sin(el))
    camera = Camera(
        width=w,
        height=h,
        fx=fx,
        fy=fx * rng.uniform(0.97, 1.03),
        cx=w / 2 + rng.uniform(-5, 5),
        cy=h / 2 + rng.uniform(-5, 5),
        pose=look_at(eye, (rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), 0.03)),
    )
    objects = [
        SceneObject(
            instance_id=1,
            role="support",
            geometry=Geometry(plane=(1.5, 1.5)),
            material=Material(
                base_color=(0.6, 0.6, 0.55, 1.0),
                texture=TextureSpec(procedural="wood", seed=seed, size=128, repeat=2.0),
            ),
        )
    ]
    for k in range(int(rng.integers(4, 7))):
        kind = ("box", "cylinder", "mesh")[k % 3]
        yaw = rng.uniform(0, 2 * math.pi)
        pose = np.eye(4)
        pose[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
        if kind == "box":
            dims = rng.uniform(0.04, 0.12, 3)
            geom, z = Geometry(box=tuple(dims)), dims[2] / 2
        elif kind == "cylinder":
            r, hh = rng.uniform(0.02, 0.045), rng.uniform(0.05, 0.14)
            geom, z = Geometry(cylinder=(r, hh)), hh / 2
        else:
            geom, z = Geometry(mesh=str(meshes[(seed + k // 3) % len(meshes)])), 0.015
        pose[:3, 3] = (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), z)
        iid = k + 2
        material = (
            None
            if kind == "mesh" and rng.random() < 0.5
            else Material(
                base_color=(*rng.uniform(0.1, 0.9, 3), 1.0),
                roughness=rng.uniform(0.2, 0.9),
                metallic=float(rng.random() < 0.3),
                texture=TextureSpec(procedural="checker", seed=iid, size=64) if rng.random() < 0.3 else None,
            )
        )
        objects.append(
            SceneObject(instance_id=iid, category=kind, geometry=geom, pose=pose.tolist(), material=material)
        )
    lights = [
        Light(kind="point", pose=look_at((0.4, -0.3, 1.2), (0, 0, 0)), intensity=60.0),
        Light(kind="area", pose=look_at((-0.5, 0.4, 1.0), (0, 0, 0)), intensity=40.0, size=0.4),
    ]
    return Scene(
        seed=seed,
        index=0,
        camera=camera,
        objects=objects,
        lights=lights,
        environment=Environment(ambient_intensity=0.3),
    )


# ---- running work in a fresh process -------------------------------------------------------------------
class Worker:
    """One spawned process (a clean interpreter: no inherited GL context or Blender state)."""

    def __enter__(self) -> Worker:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        return self

    def call(self, fn, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs).result()

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def w_render(backend: str, scene_jsons: list[str], options: dict | None = None) -> list[dict]:
    """Render scenes with a fresh backend; returns plain arrays and timings per scene."""
    from synth.render import get_backend

    out = []
    with get_backend(backend, **(options or {})) as b:
        for sj in scene_jsons:
            scene = Scene.from_json(sj)
            t = time.perf_counter()
            f = b.render(scene)
            out.append(
                {
                    "rgb": f.rgb,
                    "depth": f.depth,
                    "ids": f.instance_ids,
                    "timings": f.timings,
                    "seconds": time.perf_counter() - t,
                    "device": getattr(b, "device", None),
                }
            )
    return out


def w_cycles_bookkeeping(scene_jsons: list[str], options: dict) -> dict:
    """Render several scenes with one Cycles backend and report Blender datablock counts after each,
    so a test can check that per-image objects, lights and materials do not accumulate."""
    import bpy

    from synth.render.cycles_backend import CyclesBackend

    counts = []
    with CyclesBackend(samples=1, denoiser="none", **options) as b:
        for sj in scene_jsons:
            b.render(Scene.from_json(sj))
            counts.append(
                {
                    "objects": len(bpy.data.objects),
                    "lights": len(bpy.data.lights),
                    "materials": len(bpy.data.materials),
                    "meshes": len(bpy.data.meshes),
                    "images": len(bpy.data.images),
                }
            )
    return {"counts": counts}


def w_cycles_errors(scene_json: str, hdri_root: str) -> dict:
    """Exercise the failure paths in a Blender process; returns each outcome as (type name, message)."""
    import threading

    from synth.render import get_backend
    from synth.render.cycles_backend import CyclesBackend

    def outcome(fn):
        try:
            fn()
        except Exception as e:  # the test inspects the type and message
            return type(e).__name__, str(e)
        return None, ""

    results = {}
    results["bad_option"] = outcome(lambda: get_backend("cycles", samples=0))
    results["unknown_option"] = outcome(lambda: get_backend("cycles", sampels=16))
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", outcome(lambda: CyclesBackend())))
    t.start()
    t.join()
    results["thread"] = box["r"]
    gpu_types = ("optix", "cuda", "hip")
    results["missing_gpu"] = {g: outcome(lambda g=g: CyclesBackend(device=g).close()) for g in gpu_types}
    scene = Scene.from_json(scene_json)
    with CyclesBackend(samples=1, denoiser="none", hdri_root=hdri_root) as b:
        results["second_backend"] = outcome(lambda: CyclesBackend())
        missing_hdri = scene.model_copy(update={"environment": Environment(hdri="does-not-exist.hdr")})
        results["missing_hdri"] = outcome(lambda: b.render(missing_hdri))
        missing_mesh = scene.model_copy(
            update={
                "objects": [
                    SceneObject(
                        instance_id=1,
                        category="x",
                        geometry=Geometry(mesh=os.path.join(hdri_root, "nope.glb")),
                    )
                ]
            }
        )
        results["missing_mesh"] = outcome(lambda: b.render(missing_mesh))
        results["after_errors"] = outcome(lambda: b.render(scene))  # the backend is still usable
    results["closed"] = outcome(lambda: b.render(scene))
    return results
