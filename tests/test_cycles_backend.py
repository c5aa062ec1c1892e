"""The Cycles backend: exact camera and depth, exact instance ids, a plausible photoreal image, materials,
textures and environments, resource bookkeeping and one-line errors.

Blender runs in one spawned worker process shared by this module (see ``cycles_helpers``); images are
160x120 at a few samples so the whole file takes well under a minute of CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from cycles_helpers import (
    SMALL,
    Worker,
    look_at,
    make_bracket_glb,
    random_scene,
    w_cycles_bookkeeping,
    w_cycles_errors,
    w_render,
)

from synth.errors import ConfigError
from synth.render.cycles_camera import blender_camera_params, intrinsics_from_params
from synth.render.cycles_settings import CyclesSettings, cycles_settings
from synth.scene import Camera, Environment, Geometry, Light, Material, Scene, SceneObject, TextureSpec

FAST = {"samples": 4, "denoiser": "none"}


@pytest.fixture(scope="module")
def worker():
    with Worker() as w:
        yield w


@pytest.fixture(scope="module")
def bracket(tmp_path_factory):
    return make_bracket_glb(tmp_path_factory.mktemp("mesh") / "bracket.glb")


def render_one(worker, scene: Scene, **options) -> dict:
    return worker.call(w_render, "cycles", [scene.to_json()], {**FAST, **options})[0]


def project(cam: Camera, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pixel coordinates and camera-axis depth of world points, by the scene.py conventions."""
    w2c = np.linalg.inv(np.asarray(cam.pose))
    pc = points_world @ w2c[:3, :3].T + w2c[:3, 3]
    z = -pc[:, 2]
    return np.stack([cam.cx + cam.fx * pc[:, 0] / z, cam.cy - cam.fy * pc[:, 1] / z], 1), z


# ---- pure parts (no Blender) ---------------------------------------------------------------------------
def test_camera_params_reproduce_intrinsics():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = int(rng.integers(16, 2000)), int(rng.integers(16, 2000))
        fx = rng.uniform(0.3, 3) * w
        cam = Camera(
            width=w,
            height=h,
            fx=fx,
            fy=fx * rng.uniform(0.8, 1.25),
            cx=w / 2 + rng.uniform(-0.2, 0.2) * w,
            cy=h / 2 + rng.uniform(-0.2, 0.2) * h,
        )
        p = blender_camera_params(cam)
        assert p.pixel_aspect_x >= 1 and p.pixel_aspect_y >= 1  # Blender's allowed range
        assert min(p.pixel_aspect_x, p.pixel_aspect_y) == 1.0
        np.testing.assert_allclose(intrinsics_from_params(p), (cam.fx, cam.fy, cam.cx, cam.cy), rtol=1e-12)


def test_settings_validate_with_one_line_errors():
    assert cycles_settings({}) == CyclesSettings()
    assert cycles_settings({"samples": 16, "device": "cpu"}).samples == 16
    with pytest.raises(ConfigError, match=r"key 'samples'"):
        cycles_settings({"samples": 0})
    with pytest.raises(ConfigError, match=r"key 'sampels': unknown option"):
        cycles_settings({"sampels": 8})
    with pytest.raises(ConfigError, match=r"key 'denoiser'"):
        cycles_settings({"denoiser": "magic"})


# ---- geometry: camera, ids, depth ----------------------------------------------------------------------
def test_silhouette_and_depth_match_the_pinhole_model_exactly(worker):
    """A box seen by an off-centre, non-square-pixel camera covers exactly the pixel centres inside the
    projection of its corners; a fronto-parallel plane has depth = its distance along the camera axis
    (not the ray length) in every pixel, including off-axis ones."""
    w, h = SMALL
    pose = look_at((0.35, -0.7, 0.5), (0.0, 0.0, 0.05))
    cam = Camera(width=w, height=h, fx=150.0, fy=171.0, cx=70.3, cy=66.8, pose=pose)
    box_pose = np.eye(4)
    box_pose[:3, :3] = np.array(
        [[math.cos(0.4), -math.sin(0.4), 0], [math.sin(0.4), math.cos(0.4), 0], [0, 0, 1]]
    )
    box_pose[:3, 3] = (0.03, 0.02, 0.06)
    dims = np.array([0.1, 0.15, 0.12])
    backdrop_distance = 1.6
    backdrop = np.asarray(pose) @ np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -backdrop_distance], [0, 0, 0, 1]], dtype=float
    )
    scene = Scene(
        camera=cam,
        lights=[Light(kind="point", pose=look_at((0.5, -0.5, 1.5), (0, 0, 0)), intensity=100.0)],
        objects=[
            SceneObject(
                instance_id=7, category="box", geometry=Geometry(box=tuple(dims)), pose=box_pose.tolist()
            ),
            SceneObject(
                instance_id=9, role="support", geometry=Geometry(plane=(1.2, 0.9)), pose=backdrop.tolist()
            ),
        ],
    )
    f = render_one(worker, scene)
    ids, depth = f["ids"], f["depth"]
    assert ids.shape == (h, w) and ids.dtype == np.uint16 and depth.dtype == np.float32

    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * dims / 2
    uv, _ = project(cam, corners @ box_pose[:3, :3].T + box_pose[:3, 3])
    hull = shapely.MultiPoint(uv).convex_hull
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = xs.ravel() + 0.5, ys.ravel() + 0.5  # pixel centres
    inside = shapely.contains_xy(hull, px, py)
    margin = shapely.distance(hull.boundary, shapely.points(px, py)) > 0.02  # off the exact edge
    in_mask = ids.ravel() == 7
    assert in_mask.sum() > 300
    assert np.array_equal(in_mask[margin], inside[margin]), "box silhouette differs from the projection"

    plane = ids == 9
    assert plane.sum() > 1000 and (ids == 0).sum() > 100  # backdrop, box and empty corners all visible
    np.testing.assert_allclose(depth[plane], backdrop_distance, atol=2e-4)
    assert np.all(depth[ids == 0] == 0)
    # box depth lies between its nearest and farthest corner depths
    _, zc = project(cam, corners @ box_pose[:3, :3].T + box_pose[:3, 3])
    assert zc.min() - 1e-4 <= depth[ids == 7].min() and depth[ids == 7].max() <= zc.max() + 1e-4


def test_instance_ids_are_exact_with_many_edges_and_large_ids(worker):
    """Forty small objects with ids up to 65535 (beyond float16's exact integers): every pixel holds 0 or
    one of the scene's ids, never a value blended at an edge."""
    w, h = SMALL
    rng = np.random.default_rng(3)
    ids = [65535, 2049, 40001] + [int(i) for i in rng.choice(np.arange(3, 65000), 37, replace=False)]
    objects = []
    for k, iid in enumerate(ids):
        pose = np.eye(4)
        pose[:3, 3] = ((k % 8 - 3.5) * 0.05, (k // 8 - 2) * 0.05, rng.uniform(0, 0.05))
        geom = Geometry(cylinder=(0.015, 0.04)) if k % 2 else Geometry(box=(0.03, 0.03, 0.03))
        objects.append(SceneObject(instance_id=iid, category="p", geometry=geom, pose=pose.tolist()))
    scene = Scene(
        camera=Camera.from_fov(w, h, 50, pose=look_at((0.0, -0.35, 0.35), (0, 0, 0))), objects=objects
    )
    out = render_one(worker, scene)["ids"]
    present = set(np.unique(out).tolist())
    assert present <= {0, *ids}
    assert len(present - {0}) >= 35  # nearly all visible (a few may hide behind others)


# ---- the photoreal image -------------------------------------------------------------------------------
def _coloured_scene(bracket) -> Scene:
    w, h = SMALL
    box = np.eye(4)
    box[:3, 3] = (-0.08, 0.0, 0.05)
    cyl = np.eye(4)
    cyl[:3, 3] = (0.08, 0.02, 0.06)
    brk = np.eye(4)
    brk[:3, 3] = (0.0, -0.12, 0.015)
    return Scene(
        camera=Camera.from_fov(w, h, 45, pose=look_at((0.1, -0.6, 0.4), (0, -0.02, 0.04))),
        lights=[
            Light(kind="area", pose=look_at((0.3, -0.4, 1.0), (0, 0, 0)), intensity=6.0, size=0.5),
            Light(kind="directional", pose=look_at((-1, -0.5, 2), (0, 0, 0)), intensity=1.0),
        ],
        objects=[
            SceneObject(
                instance_id=1,
                category="red",
                geometry=Geometry(box=(0.1, 0.1, 0.1)),
                pose=box.tolist(),
                material=Material(base_color=(0.8, 0.05, 0.05, 1.0), roughness=0.6),
            ),
            SceneObject(
                instance_id=2,
                category="blue",
                geometry=Geometry(cylinder=(0.04, 0.12)),
                pose=cyl.tolist(),
                material=Material(base_color=(0.05, 0.1, 0.8, 1.0), roughness=0.4),
            ),
            SceneObject(
                instance_id=3, category="bracket", geometry=Geometry(mesh=str(bracket)), pose=brk.tolist()
            ),
            SceneObject(
                instance_id=4,
                role="support",
                geometry=Geometry(plane=(2.0, 2.0)),
                material=Material(base_color=(0.5, 0.5, 0.5, 1.0), roughness=0.8),
            ),
        ],
        environment=Environment(background_color=(0.3, 0.3, 0.3), ambient_intensity=0.3),
    )


def test_image_is_lit_unsaturated_and_labels_line_up(worker, bracket, tmp_path):
    from PIL import Image

    scene = _coloured_scene(bracket)
    f = render_one(worker, scene, samples=16, denoiser="openimagedenoise")
    rgb, ids = f["rgb"], f["ids"].astype(int)
    Image.fromarray(rgb).save(tmp_path / "cycles.png")
    assert rgb.shape == (*SMALL[::-1], 3) and rgb.dtype == np.uint8
    assert 40 < rgb.mean() < 220, "image is black or washed out"
    assert (rgb.max(axis=2) >= 254).mean() < 0.02, "more than 2% of the pixels are clipped"
    floor = rgb[ids == 4].mean(axis=0)
    red, blue = rgb[ids == 1].mean(axis=0), rgb[ids == 2].mean(axis=0)
    assert red[0] > red[1] + 40 and red[0] > red[2] + 40, red
    assert blue[2] > blue[0] + 40 and blue[2] > blue[1] + 20, blue
    for iid in (1, 2, 3):  # every object stands out from the floor around it
        assert np.abs(rgb[ids == iid].mean(axis=0) - floor).sum() > 40
    # the bracket keeps its own texture: red, blue and yellow texels all show up
    texels = rgb[ids == 3].astype(int)
    assert (texels[:, 0] > texels[:, 2] + 40).sum() > 5 and (texels[:, 2] > texels[:, 0] + 40).sum() > 5


def test_material_overrides_and_procedural_textures(worker, bracket):
    scene = _coloured_scene(bracket)
    objs = list(scene.objects)
    green = Material(base_color=(0.05, 0.7, 0.05, 1.0), use_mesh_texture=False)
    checker = Material(
        base_color=(1, 1, 1, 1),
        texture=TextureSpec(procedural="checker", size=64, colors=[(0, 0, 0), (1, 1, 1)]),
    )
    objs[2] = objs[2].model_copy(update={"material": green})  # replaces the bracket's own label texture
    objs[3] = objs[3].model_copy(update={"material": checker})
    f = render_one(worker, scene.model_copy(update={"objects": objs}), samples=8)
    rgb, ids = f["rgb"].astype(int), f["ids"]
    brk = rgb[ids == 3].mean(axis=0)
    assert brk[1] > brk[0] + 30 and brk[1] > brk[2] + 30, brk
    floor = rgb[ids == 4].mean(axis=1)
    assert floor.std() > 40, "the checker texture did not reach the floor"


def test_environments_sky_hdri_and_backdrop(worker, bracket, tmp_path):
    """Sky and HDRI light the scene; the backdrop texture covers the frame like pyrender's does."""
    import cv2

    hdri = np.ones((32, 64, 3), np.float32) * np.array([0.5, 0.7, 1.0], np.float32)
    hdri[16:] = (0.3, 0.25, 0.2)
    hdri[5:9, 20:24] = 80.0  # a small bright "sun"
    cv2.imwrite(str(tmp_path / "studio.hdr"), np.ascontiguousarray(hdri[..., ::-1]))
    base = _coloured_scene(bracket)
    sun = [light for light in base.lights if light.kind == "directional"]
    backdrop = Environment(background_texture=TextureSpec(procedural="stripes", seed=2, size=128, repeat=2.0))
    scenes = [
        base.model_copy(update={"environment": Environment(sky=True, ambient_intensity=1.0), "lights": sun}),
        base.model_copy(
            update={"environment": Environment(hdri="studio.hdr", ambient_intensity=1.0), "lights": []}
        ),
        base.model_copy(
            update={
                "environment": backdrop,
                "camera": base.camera.model_copy(update={"cx": 75.0, "fy": 150.0}),
            }
        ),
    ]
    cyc = worker.call(
        w_render,
        "cycles",
        [s.to_json() for s in scenes],
        {**FAST, "samples": 8, "hdri_root": str(tmp_path), "view_transform": "Standard"},
    )
    for f in cyc[:2]:
        assert 25 < f["rgb"].mean() < 230
        obj = f["rgb"][f["ids"] == 1].mean(axis=0)
        assert obj[0] > obj[2] + 20  # the red box is lit and still red
    with Worker() as gl:
        pyr = gl.call(w_render, "pyrender", [scenes[2].to_json()])[0]
    bg = (cyc[2]["ids"] == 0) & (pyr["ids"] == 0)
    assert bg.sum() > 1000
    diff = np.abs(cyc[2]["rgb"].astype(int) - pyr["rgb"].astype(int))[bg].max(axis=1)
    assert np.median(diff) <= 6, "backdrop mapping differs from pyrender's"


# ---- engineering ---------------------------------------------------------------------------------------
def test_deterministic_and_nothing_accumulates_between_images(worker, bracket):
    scenes = [random_scene(s, bracket).to_json() for s in (0, 1, 0)]
    first, _, again = worker.call(w_render, "cycles", scenes, {"samples": 8})
    assert np.array_equal(first["rgb"], again["rgb"]) and np.array_equal(first["ids"], again["ids"])

    scenes = [random_scene(s, bracket) for s in range(5)]  # new primitive sizes in every scene
    counts = worker.call(w_cycles_bookkeeping, [s.to_json() for s in scenes], {"geometry_cache_size": 2})
    for scene, c in zip(scenes, counts["counts"], strict=True):
        geometries = len({o.geometry.model_dump_json() for o in scene.objects})
        assert c["meshes"] <= geometries + 2, c  # this image's geometries + the cache's 2 spare
        assert c["objects"] == len(scene.objects) + len(scene.lights) + 1  # + camera; no leftovers
        assert c["lights"] == len(scene.lights)
        assert c["materials"] <= len(scene.objects) + 2 * 2, c  # this image's + those of cached meshes


def test_errors_are_one_line_and_leave_the_backend_usable(worker, bracket, tmp_path):
    r = worker.call(w_cycles_errors, random_scene(0, bracket).to_json(), str(tmp_path))
    assert r["bad_option"][0] == "ConfigError" and "samples" in r["bad_option"][1]
    assert r["unknown_option"][0] == "ConfigError" and "sampels" in r["unknown_option"][1]
    assert r["thread"][0] == "SimrealError" and "thread" in r["thread"][1]
    assert r["second_backend"][0] == "SimrealError"
    for kind in ("missing_hdri", "missing_mesh"):
        assert r[kind][0] == "AssetError" and "\n" not in r[kind][1] and "not found" in r[kind][1], r[kind]
    assert r["after_errors"] == (None, "")
    assert r["closed"][0] == "SimrealError"
    for gpu, (err, msg) in r["missing_gpu"].items():  # this machine may or may not have that GPU
        assert err is None or (err == "ConfigError" and gpu in msg), (gpu, err, msg)
