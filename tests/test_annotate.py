"""synth.annotate: exact modal/amodal masks, visibility, drops, RLE and categories.

Rendered frames come from a spawned child process (tests/render_scenes.RenderService); annotation runs
here, as it does in the writer."""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from render_scenes import RenderService, look_at, make_tiny_catalog, top_down_camera, translation
from scipy import ndimage
from scipy.spatial.transform import Rotation

from synth.annotate import (
    CropMask,
    annotate,
    category_ids,
    object_silhouette,
    rasterize_triangles,
    rle_from_crop,
    truncation,
)
from synth.config import AnnotationConfig
from synth.errors import ConfigError
from synth.geometry import load_geometry, object_to_world
from synth.letterbox import apply_letterbox, photo_rectangle
from synth.scene import Camera, Environment, Frame, Geometry, Letterbox, Scene, SceneObject

SHARED = Path(os.environ.get("SIMREAL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="module")
def service():
    s = RenderService()
    yield s
    s.close()


def plate(iid, x0, x1, y0, y1, z_top, category="plate", thickness=0.001) -> SceneObject:
    return SceneObject(
        instance_id=iid,
        category=category,
        geometry=Geometry(box=(x1 - x0, y1 - y0, thickness)),
        pose=translation((x0 + x1) / 2, (y0 + y1) / 2, z_top - thickness / 2),
    )


def analytic_rect(cam, x0, x1, y0, y1, z) -> np.ndarray:
    d = cam.pose[2][3] - z
    u0, u1 = cam.cx + cam.fx * x0 / d, cam.cx + cam.fx * x1 / d
    v0, v1 = cam.cy - cam.fy * y1 / d, cam.cy - cam.fy * y0 / d
    uc, vc = np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5
    return ((vc[:, None] >= v0) & (vc[:, None] <= v1)) & ((uc[None, :] >= u0) & (uc[None, :] <= u1))


def border_band(ref: np.ndarray) -> np.ndarray:
    edge = ndimage.binary_dilation(ref) & ~ndimage.binary_erosion(ref)
    return ndimage.binary_dilation(edge)


def equal_up_to_border(mask, ref) -> bool:
    return not np.any((mask ^ ref) & ~border_band(ref))


def decode(rle) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


ENV = Environment(ambient_intensity=1.0)
CFG = AnnotationConfig(min_visibility=0.0, min_area_px=1)


def test_masks_match_the_analytic_projection(service):
    """Top-down pinhole camera, axis-aligned plates: modal, amodal and visibility are known in closed form."""
    cam = top_down_camera(width=128, height=96, fx=200.0)
    a = (-0.25, 0.05, -0.15, 0.1, 0.02)  # lower plate
    b = (-0.05, 0.2, -0.05, 0.2, 0.05)  # upper plate, covers a's top-right corner
    c = (0.1, 0.2, -0.2, -0.1, 0.01)  # alone
    objs = [
        SceneObject(instance_id=1, role="support", geometry=Geometry(plane=(3.0, 3.0))),
        plate(2, *a),
        plate(3, *b),
        plate(4, *c),
    ]
    scene = Scene(camera=cam, environment=ENV, objects=objs)
    frame = service.render(scene, antialias="msaa")
    out = annotate(frame, scene, CFG, ["plate"])
    by_id = {r["instance_id"]: r for r in out.annotations}
    assert set(by_id) == {2, 3, 4} and out.dropped == []

    ra, rb, rc = (analytic_rect(cam, *p) for p in (a, b, c))
    expected_modal = {2: ra & ~rb, 3: rb, 4: rc}
    expected_amodal = {2: ra, 3: rb, 4: rc}
    for iid, rec in by_id.items():
        modal, amodal = decode(rec["segmentation"]), decode(rec["amodal_segmentation"])
        assert equal_up_to_border(modal, expected_modal[iid]), f"modal mask of {iid}"
        assert equal_up_to_border(amodal, expected_amodal[iid]), f"amodal mask of {iid}"
        assert np.array_equal(modal, frame.instance_ids == iid), "modal == the id image, exactly"
        assert not np.any(modal & ~amodal), "amodal contains modal"
        assert rec["area"] == modal.sum() and rec["amodal_area"] == amodal.sum()
        assert rec["visibility"] == pytest.approx(modal.sum() / amodal.sum(), abs=1e-6)
        assert rec["iscrowd"] == 0 and rec["category_id"] == 1
        x, y, w, h = rec["bbox"]
        rows, cols = np.nonzero(modal)
        assert [x, y, w, h] == [
            cols.min(),
            rows.min(),
            cols.max() - cols.min() + 1,
            rows.max() - rows.min() + 1,
        ]
    va = (ra & ~rb).sum() / ra.sum()
    assert by_id[2]["visibility"] == pytest.approx(va, abs=0.05) and 0.3 < by_id[2]["visibility"] < 0.95
    assert by_id[3]["visibility"] == 1.0 and by_id[4]["visibility"] == 1.0

    # every id pixel belongs to exactly one object
    stack = np.stack([decode(r["segmentation"]) for r in out.annotations])
    assert stack.sum(axis=0).max() == 1


def test_fully_hidden_object_has_visibility_zero_and_no_annotation(service):
    cam = top_down_camera()
    scene = Scene(
        camera=cam,
        environment=ENV,
        objects=[
            plate(2, -0.05, 0.05, -0.05, 0.05, 0.01, category="hidden"),
            plate(3, -0.2, 0.2, -0.15, 0.15, 0.05, category="cover"),
        ],
    )
    frame = service.render(scene, antialias="none")
    assert not np.any(frame.instance_ids == 2)
    out = annotate(frame, scene, CFG, ["cover", "hidden"])
    assert [r["instance_id"] for r in out.annotations] == [3]
    assert out.annotations[0]["category_id"] == 1
    assert out.dropped == [
        {"instance_id": 2, "category": "hidden", "reason": "hidden", "visibility": 0.0, "area": 0}
    ]


def test_thresholds_drop_and_say_why(service):
    cam = top_down_camera()
    scene = Scene(
        camera=cam,
        environment=ENV,
        objects=[
            plate(2, -0.2, 0.0, -0.1, 0.1, 0.01),  # mostly covered by 3
            plate(3, -0.18, 0.1, -0.12, 0.12, 0.05),
            plate(4, 0.15, 0.16, 0.15, 0.16, 0.01),  # about one pixel
            plate(5, 5.0, 5.1, 0.0, 0.1, 0.01),
        ],
    )  # outside the image
    frame = service.render(scene, antialias="none")
    out = annotate(frame, scene, AnnotationConfig(min_visibility=0.25, min_area_px=16), ["plate"])
    reasons = {d["instance_id"]: d["reason"] for d in out.dropped}
    assert reasons == {2: "low_visibility", 4: "small_area", 5: "outside_image"}
    assert [r["instance_id"] for r in out.annotations] == [3]
    assert "amodal_segmentation" in out.annotations[0]
    no_amodal = annotate(frame, scene, AnnotationConfig(amodal=False, min_visibility=0.25), ["plate"])
    assert "amodal_segmentation" not in no_amodal.annotations[0]


def test_objects_cut_by_the_image_border_are_dropped_above_max_truncation(service):
    """Truncation is the share of the projected box outside the frame; only above the limit is a target
    left unlabelled, and nothing else about the annotations changes."""
    cam = top_down_camera()  # 128 x 96 px, about 100 px a metre on the ground
    inside = plate(2, -0.2, 0.0, -0.1, 0.1, 0.01)
    cut = plate(3, 0.44, 0.84, -0.1, 0.1, 0.01)  # u from about 108 to 148 on a 128 px wide image
    straddling = plate(4, -0.1, 0.1, -0.1, 0.1, 2.5, thickness=1.0)  # reaches behind the camera
    assert truncation(inside, cam) == 0.0
    d_top = cam.pose[2][3] - 0.01
    u0, u1 = cam.cx + cam.fx * 0.44 / (d_top + 0.001), cam.cx + cam.fx * 0.84 / d_top
    assert truncation(cut, cam) == pytest.approx(1 - (cam.width - u0) / (u1 - u0), abs=1e-9)
    assert 0.45 < truncation(cut, cam) < 0.55
    assert truncation(straddling, cam) == 1.0

    scene = Scene(camera=cam, environment=ENV, objects=[inside, cut])
    frame = service.render(scene, antialias="none")
    keep_all = annotate(frame, scene, CFG, ["plate"])
    lenient = annotate(frame, scene, CFG.model_copy(update={"max_truncation": 0.6}), ["plate"])
    strict = annotate(frame, scene, CFG.model_copy(update={"max_truncation": 0.4}), ["plate"])
    assert [r["instance_id"] for r in keep_all.annotations] == [2, 3]
    assert lenient.annotations == keep_all.annotations
    assert strict.annotations == keep_all.annotations[:1]
    assert [(d["instance_id"], d["reason"]) for d in strict.dropped] == [(3, "truncated")]


def test_rendered_silhouettes_equal_geometry_silhouettes(service, tmp_path):
    """Each object rendered alone: its id mask is its amodal silhouette (up to GL tie-breaking)."""
    catalog = make_tiny_catalog(tmp_path / "catalog")
    cam = Camera.from_fov(160, 120, 50.0, pose=look_at((0.2, -0.35, 0.3), (0, 0, 0.02)), znear=0.05)
    rng = np.random.default_rng(4)
    geoms = [
        Geometry(box=(0.08, 0.05, 0.03)),
        Geometry(cylinder=(0.03, 0.08)),
        Geometry(mesh=str(catalog.mesh_path(catalog.get("widget-capsule")))),
        Geometry(mesh=str(catalog.mesh_path(catalog.get("widget-box")))),
    ]
    for k, g in enumerate(geoms):
        pose = np.eye(4)
        pose[:3, :3] = Rotation.random(random_state=k).as_matrix()
        pose[:3, 3] = (*rng.uniform(-0.05, 0.05, 2), 0.03)
        obj = SceneObject(instance_id=1, category="x", geometry=g, pose=pose.tolist())
        frame = service.render(Scene(camera=cam, environment=ENV, objects=[obj]), antialias="none")
        rendered = frame.instance_ids == 1
        sil = object_silhouette(obj, cam).to_full(cam.height, cam.width)
        assert rendered.sum() > 100
        assert np.count_nonzero(rendered ^ sil) <= max(2, rendered.sum() // 500), g.kind()


def _reference_silhouette(obj, cam) -> np.ndarray:
    """Every triangle rasterised on its own (no outline trick), projected directly."""
    geom = load_geometry(obj.geometry)
    m = np.linalg.inv(np.asarray(cam.pose)) @ object_to_world(obj)
    v = geom.vertices @ m[:3, :3].T + m[:3, 3]
    uv = np.stack([cam.cx + cam.fx * v[:, 0] / -v[:, 2], cam.cy - cam.fy * v[:, 1] / -v[:, 2]], axis=1)
    return rasterize_triangles(uv[geom.faces], cam.height, cam.width).to_full(cam.height, cam.width)


def _silhouette_meshes(tmp_path) -> list[Geometry]:
    catalog = make_tiny_catalog(tmp_path / "catalog")
    geoms = [
        Geometry(box=(0.1, 0.06, 0.04)),
        Geometry(cylinder=(0.04, 0.1)),
        Geometry(plane=(0.1, 0.08)),
        Geometry(mesh=str(catalog.mesh_path(catalog.get("widget-capsule")))),
    ]
    ycb = sorted(glob.glob(str(SHARED / "meshes" / "ycb" / "*.gltf")))
    return geoms + [Geometry(mesh=p) for p in ycb[:3]]  # closed and open / non-manifold scans


def test_outline_fill_equals_triangle_rasterisation(tmp_path):
    """The fast path (fill from front/back outline edges) gives exactly the union of all triangles."""
    cam = Camera.from_fov(320, 240, 55.0, pose=look_at((0.0, -0.5, 0.35), (0, 0, 0)), znear=0.05)
    for g in _silhouette_meshes(tmp_path):
        for k in range(3):
            pose = np.eye(4)
            pose[:3, :3] = Rotation.random(random_state=10 + k).as_matrix()
            pose[:3, 3] = (0.03 * k, -0.02, 0.01)
            obj = SceneObject(instance_id=1, category="x", geometry=g, pose=pose.tolist())
            fast = object_silhouette(obj, cam).to_full(cam.height, cam.width)
            assert np.array_equal(fast, _reference_silhouette(obj, cam)), (g.kind(), g.mesh, k)


def test_object_crossing_the_near_plane_is_clipped_not_wrapped():
    cam = Camera.from_fov(128, 96, 60.0, pose=look_at((0, -0.3, 0.1), (0, 0, 0.1)), znear=0.05)
    # a long box from in front of the camera to behind it
    obj = SceneObject(
        instance_id=1,
        category="x",
        geometry=Geometry(box=(0.3, 1.0, 0.05)),
        pose=translation(0.0, -0.3, 0.05),
    )
    sil = object_silhouette(obj, cam)
    full = sil.to_full(96, 128)
    # the box lies below the eye: it fills the lower part of the image, never the top rows
    assert full[-1].sum() > 60 and full[:20].sum() == 0
    behind = SceneObject(
        instance_id=2, category="x", geometry=Geometry(box=(0.1, 0.1, 0.1)), pose=translation(0.0, -0.8, 0.1)
    )
    assert object_silhouette(behind, cam) is None


def test_backend_amodal_masks_are_used_and_ored_with_modal():
    cam = top_down_camera(width=32, height=24)
    ids = np.zeros((24, 32), np.uint16)
    ids[5:10, 5:12] = 3
    amodal = np.zeros((24, 32), bool)
    amodal[4:12, 6:14] = True  # deliberately not a superset of the modal mask
    obj = SceneObject(
        instance_id=3, category="a", geometry=Geometry(box=(0.01, 0.01, 0.01)), pose=translation(5, 5, 0)
    )  # far outside: geometry would give no silhouette
    frame = Frame(
        rgb=np.zeros((24, 32, 3), np.uint8),
        depth=np.zeros((24, 32), np.float32),
        instance_ids=ids,
        amodal={3: amodal},
    )
    out = annotate(frame, Scene(camera=cam, objects=[obj]), CFG, ["a"])
    rec = out.annotations[0]
    assert np.array_equal(decode(rec["amodal_segmentation"]), amodal | (ids == 3))
    assert rec["visibility"] == pytest.approx(35 / np.count_nonzero(amodal | (ids == 3)))


@pytest.mark.parametrize("shape", [(7, 5), (96, 128), (1, 1)])
def test_crop_rle_equals_pycocotools_full_image_rle(shape):
    h, w = shape
    rng = np.random.default_rng(h * w)
    for _ in range(25):
        full = np.zeros((h, w), bool)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(y0, h) + 1, rng.integers(x0, w) + 1
        full[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.6
        if not full.any():
            continue
        rows, cols = np.nonzero(full)
        crop = CropMask(
            full[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], int(rows.min()), int(cols.min())
        )
        ours = rle_from_crop(crop, h, w)
        ref = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
        assert isinstance(ours["counts"], str)
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == [h, w]


def test_categories_start_at_one_and_unknown_ones_fail():
    assert category_ids(["b", "a"]) == {"b": 1, "a": 2}
    with pytest.raises(ConfigError, match="0 is reserved"):
        category_ids({"a": 0})
    with pytest.raises(ConfigError, match="unique"):
        category_ids(["a", "a"])
    cam = top_down_camera(width=16, height=16)
    frame = Frame(
        rgb=np.zeros((16, 16, 3), np.uint8),
        depth=np.zeros((16, 16), np.float32),
        instance_ids=np.zeros((16, 16), np.uint16),
    )
    scene = Scene(camera=cam, objects=[plate(1, 0, 0.1, 0, 0.1, 0.01, category="mystery")])
    with pytest.raises(ConfigError, match="'mystery' is not in the category list"):
        annotate(frame, scene, CFG, ["plate"])
    with pytest.raises(ConfigError, match="camera is 16x16"):
        annotate(Frame(frame.rgb, frame.depth, np.zeros((8, 8), np.uint16)), scene, CFG, ["mystery"])


def test_rasterizer_samples_pixel_centres():
    # a triangle covering exactly the lower-left half of a 4x4 pixel square at (2, 2)
    tri = np.array([[[2.0, 2.0], [6.0, 6.0], [2.0, 6.0]]])
    m = rasterize_triangles(tri, 10, 10).to_full(10, 10)
    uc = np.arange(10) + 0.5
    inside = (uc[None, :] >= 2) & (uc[:, None] <= 6) & (uc[None, :] <= uc[:, None])
    assert np.array_equal(m, inside)
    assert rasterize_triangles(np.array([[[20.0, 20.0], [30, 20], [20, 30]]]), 10, 10) is None
    assert math.isclose(m.sum(), 10)


def test_letterbox_bars_are_the_photo_border(service):
    """A letterboxed photo: the bars carry the fill colour, no depth and no instance; an object cut by a
    bar is cut as by the image border (fully visible, clipped mask, truncation measured to the bar), and
    one wholly under a bar is outside the image."""
    cam = top_down_camera()  # 128 x 96 px, 100 px a metre on the ground
    x0, y0, x1, y1 = photo_rectangle(128, 96, 0.75, portrait=True)
    box = Letterbox(x0=x0, y0=y0, x1=x1, y1=y1)
    assert (box.x0, box.y0, box.x1, box.y1) == (28, 0, 100, 96)  # a 3:4 upright photo, 72 px wide
    inside = plate(2, -0.2, 0.0, -0.1, 0.1, 0.01)  # u 44..64
    cut = plate(3, 0.2, 0.6, -0.1, 0.1, 0.01)  # u 84..124: the right bar starts at 100
    hidden = plate(4, -0.6, -0.45, -0.1, 0.1, 0.01)  # u 4..19, under the left bar
    scene = Scene(camera=cam, environment=ENV, objects=[inside, cut, hidden], letterbox=box)
    rendered = service.render(scene, antialias="none")
    frame = apply_letterbox(rendered, scene.letterbox)
    bars = np.ones((96, 128), dtype=bool)
    bars[:, 28:100] = False
    assert (
        (frame.rgb[bars] == 128).all()
        and (frame.instance_ids[bars] == 0).all()
        and (frame.depth[bars] == 0).all()
    )
    assert np.array_equal(frame.rgb[~bars], rendered.rgb[~bars])
    assert (rendered.instance_ids == 3).sum() > (frame.instance_ids == 3).sum() > 0

    out = annotate(frame, scene, AnnotationConfig(min_visibility=0.9, min_area_px=1), ["plate"])
    assert [r["instance_id"] for r in out.annotations] == [2, 3]
    assert [(d["instance_id"], d["reason"]) for d in out.dropped] == [(4, "outside_image")]
    record = out.annotations[1]
    assert record["visibility"] == 1.0  # the bar is the border, not an occluder
    x, y, w, h = record["bbox"]
    assert x + w == 100
    ref = analytic_rect(cam, 0.2, 0.6, -0.1, 0.1, 0.01) & ~bars
    assert equal_up_to_border(decode(record["segmentation"]), ref)
    assert np.array_equal(decode(record["amodal_segmentation"]), decode(record["segmentation"]))

    world_to_cam = np.linalg.inv(np.asarray(cam.pose))
    assert truncation(cut, cam, world_to_cam) == 0.0
    assert truncation(cut, cam, world_to_cam, box) == pytest.approx(0.6, abs=0.02)  # 24 of its 40 px
    strict = annotate(frame, scene, CFG.model_copy(update={"max_truncation": 0.5}), ["plate"])
    assert [r["instance_id"] for r in strict.annotations] == [2]
