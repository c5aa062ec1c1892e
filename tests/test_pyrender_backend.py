"""The pyrender backend: camera convention, exact ids, depth, anti-aliasing, textures, meshes, reuse.

Rendering happens in a spawned child process (tests/render_scenes.RenderService), never in pytest's
own process (STACK.md: EGL context + later torchvision import = segfault)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from render_scenes import RenderService, make_tiny_catalog, render_in_worker, top_down_camera, translation

from synth.errors import ConfigError
from synth.render import backend_names, get_backend
from synth.scene import Environment, Geometry, Light, Material, Scene, SceneObject, TextureSpec


@pytest.fixture(scope="module")
def service():
    s = RenderService()
    yield s
    s.close()


def flat_env(**kw) -> Environment:
    """No lights, white ambient: a surface shows exactly its base colour (gamma-encoded)."""
    return Environment(
        background_color=(0.0, 0.0, 0.0), ambient_color=(1.0, 1.0, 1.0), ambient_intensity=1.0, **kw
    )


def plate(iid, x0, x1, y0, y1, z_top, thickness=0.001, **kw) -> SceneObject:
    """An axis-aligned thin box whose top face spans [x0,x1] x [y0,y1] at height z_top."""
    return SceneObject(
        instance_id=iid,
        category="plate",
        geometry=Geometry(box=(x1 - x0, y1 - y0, thickness)),
        pose=translation((x0 + x1) / 2, (y0 + y1) / 2, z_top - thickness / 2),
        **kw,
    )


def analytic_rect(cam, x0, x1, y0, y1, z) -> np.ndarray:
    """Pixels whose centre falls inside the projection of a horizontal rectangle at height z
    (scene.py: u = cx + fx * x / d, v = cy - fy * y / d for a camera looking straight down from height h)."""
    d = cam.pose[2][3] - z
    u0, u1 = cam.cx + cam.fx * x0 / d, cam.cx + cam.fx * x1 / d
    v0, v1 = cam.cy - cam.fy * y1 / d, cam.cy - cam.fy * y0 / d
    uc = np.arange(cam.width) + 0.5
    vc = np.arange(cam.height) + 0.5
    return ((vc[:, None] >= v0) & (vc[:, None] <= v1)) & ((uc[None, :] >= u0) & (uc[None, :] <= u1))


def within_one_pixel_border(mask: np.ndarray, reference: np.ndarray) -> bool:
    """Every differing pixel lies within 1 px of the reference's boundary."""
    from scipy import ndimage

    band = ndimage.binary_dilation(reference) & ~ndimage.binary_erosion(reference)
    band = ndimage.binary_dilation(band)
    return not np.any((mask ^ reference) & ~band)


@pytest.mark.parametrize("cx,cy", [(64.0, 48.0), (50.3, 40.7)])
def test_camera_intrinsics_follow_the_scene_convention(service, cx, cy):
    cam = top_down_camera(cx=cx, cy=cy)
    scene = Scene(camera=cam, environment=flat_env(), objects=[plate(7, 0.0, 0.2, 0.0, 0.1, 0.001)])
    frame = service.render(scene, antialias="none")
    mask = frame.instance_ids == 7
    ref = analytic_rect(cam, 0.0, 0.2, 0.0, 0.1, 0.001)
    assert mask.sum() > 150
    assert within_one_pixel_border(mask, ref), "projection differs from u = cx + fx x/d, v = cy - fy y/d"
    # +x right and +y up in the image: the plate sits right of and above the principal point
    rows, cols = np.nonzero(mask)
    assert cols.min() >= math.floor(cx) - 1 and rows.max() <= math.ceil(cy) + 1


def test_ids_are_exact_never_blended_and_depth_matches(service):
    cam = top_down_camera()
    objs = [
        SceneObject(instance_id=1, role="support", geometry=Geometry(plane=(2.0, 2.0))),
        plate(255, -0.15, 0.05, -0.1, 0.05, 0.02, thickness=0.02),
        plate(257, -0.05, 0.15, -0.05, 0.1, 0.05, thickness=0.02),
    ]
    frame = service.render(Scene(camera=cam, environment=flat_env(), objects=objs), antialias="msaa")
    ids = frame.instance_ids
    assert ids.dtype == np.uint16 and ids.shape == (96, 128)
    # 255 and 257 overlap and touch the plane: a blended id (e.g. 256, 128) would show up here
    assert set(np.unique(ids)) == {1, 255, 257}
    top = ids == 257
    assert np.allclose(frame.depth[top], 2.0 - 0.05, atol=2e-3)
    assert np.allclose(frame.depth[ids == 1], 2.0, atol=2e-3)
    assert frame.depth.dtype == np.float32
    # 257 is above 255: where their projections overlap, 257 wins
    overlap = analytic_rect(cam, -0.05, 0.05, -0.05, 0.05, 0.05)
    assert np.all(ids[overlap & ~within_band(overlap)] == 257)
    assert {"render_color", "render_ids"} <= set(frame.timings)


def within_band(mask):
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask)


def test_background_is_zero_depth_and_zero_id(service):
    cam = top_down_camera()
    frame = service.render(
        Scene(camera=cam, environment=flat_env(), objects=[plate(3, 0, 0.1, 0, 0.1, 0.01)])
    )
    assert np.all(frame.depth[frame.instance_ids == 0] == 0.0)
    assert np.all(frame.depth[frame.instance_ids != 0] > 0.0)


@pytest.mark.parametrize("mode,expect_soft_edges", [("msaa", True), ("edge", True), ("none", False)])
def test_antialiasing_softens_only_object_edges(service, mode, expect_soft_edges):
    cam = top_down_camera()
    white = Material(base_color=(1, 1, 1, 1))
    scene = Scene(
        camera=cam,
        environment=flat_env(),
        objects=[
            SceneObject(
                instance_id=2,
                category="x",
                geometry=Geometry(box=(0.2, 0.2, 0.01)),
                pose=translation(0.01, -0.02, 0.005, yaw=0.4),
                material=white,
            )
        ],
    )
    frame = service.render(scene, antialias=mode)
    grey = frame.rgb[..., 0]
    soft = (grey > 8) & (grey < 247)
    if expect_soft_edges:
        assert soft.sum() > 20, "anti-aliased edges have intermediate values"
    else:
        assert soft.sum() == 0
    interior = frame.instance_ids == 2
    from scipy import ndimage

    core = ndimage.binary_erosion(interior, iterations=2)
    assert grey[core].min() >= 250 and grey[~ndimage.binary_dilation(interior, iterations=2)].max() <= 5


def test_texture_spec_and_background_texture(service):
    cam = top_down_camera()
    tex = TextureSpec(procedural="checker", seed=0, size=64, colors=[(1, 0, 0), (0, 0, 1)], scale=0.5)
    bg = TextureSpec(procedural="noise", seed=3, size=128)
    scene = Scene(
        camera=cam,
        environment=flat_env(background_texture=bg),
        objects=[
            SceneObject(
                instance_id=4,
                category="x",
                geometry=Geometry(box=(0.3, 0.3, 0.01)),
                pose=translation(0, 0, 0.005),
                material=Material(base_color=(1, 1, 1, 1), texture=tex),
            )
        ],
    )
    frame = service.render(scene, antialias="none")
    box = frame.instance_ids == 4
    px = frame.rgb[box].astype(int)
    reds = np.sum((px[:, 0] > 200) & (px[:, 2] < 50))
    blues = np.sum((px[:, 2] > 200) & (px[:, 0] < 50))
    assert reds > 50 and blues > 50, "the checker texture is mapped onto the box"
    from synth.textures import make_texture

    expected = make_texture(bg)[16:112, :]  # 128^2 texture covering 128x96: centre crop, no resampling
    background = frame.instance_ids == 0
    assert np.array_equal(frame.rgb[background], expected[background])


def test_catalog_mesh_renders_at_its_metric_size(service, tmp_path):
    catalog = make_tiny_catalog(tmp_path / "catalog")
    rec = catalog.get("widget-box")  # 0.07 x 0.05 x 0.09 m
    cam = top_down_camera(fx=400.0, fy=400.0)
    obj = SceneObject(
        instance_id=9,
        category="widget",
        geometry=Geometry(mesh=str(catalog.mesh_path(rec))),
        pose=translation(0, 0, rec.size_m[2] / 2),
    )
    frame = service.render(Scene(camera=cam, environment=flat_env(), objects=[obj]), antialias="none")
    rows, cols = np.nonzero(frame.instance_ids == 9)
    d = 2.0 - rec.size_m[2]
    assert abs((cols.max() - cols.min() + 1) - 400 * rec.size_m[0] / d) <= 1.0
    assert abs((rows.max() - rows.min() + 1) - 400 * rec.size_m[1] / d) <= 1.0


def test_rendering_does_not_depend_on_what_was_rendered_before(service, tmp_path):
    """Workers reuse GL nodes between images: an image must not depend on the worker's history."""
    catalog = make_tiny_catalog(tmp_path / "catalog")
    mesh = str(catalog.mesh_path(catalog.get("widget-capsule")))
    cam = top_down_camera()
    light = Light(kind="point", pose=translation(0.3, -0.3, 1.5), intensity=80.0)

    def scene(n, seed):
        rng = np.random.default_rng(seed)
        objs = [
            SceneObject(
                instance_id=k + 1,
                category="w",
                geometry=Geometry(mesh=mesh),
                pose=translation(*rng.uniform(-0.2, 0.2, 2), 0.03),
                material=Material(base_color=(*rng.uniform(0, 1, 3), 1.0)) if k % 2 else None,
            )
            for k in range(n)
        ]
        return Scene(camera=cam, lights=[light], objects=objs)

    a, b = scene(3, 1), scene(6, 2)
    for mode in ("edge", "msaa", "none"):
        # exposure 0.999 makes a fresh backend in the worker: its very first image is checked too
        first = service.render(a, antialias=mode, exposure=0.999)
        service.render(b, antialias=mode, exposure=0.999)
        again = service.render(a, antialias=mode, exposure=0.999)
        assert np.array_equal(first.rgb, again.rgb), mode
        assert np.array_equal(first.instance_ids, again.instance_ids)
        assert np.array_equal(first.depth, again.depth)


def _drawing_orders(scenes_json: list[str]) -> list[tuple[list[int], list[int]]]:
    """In the worker, for each scene synced into one backend: the positions (in the scene) of the lights
    in the order pyrender's renderer sums them, and of the meshes in the order it visits them."""
    import gc

    from synth.render.pyrender_backend import PyrenderBackend

    backend, ballast, orders = PyrenderBackend(), [], []
    for k, text in enumerate(scenes_json):
        ballast.append([object() for _ in range(7 * k + 1)])  # nodes land at other addresses each time
        gc.collect()
        scene = Scene.from_json(text)
        seg_map = backend.sync(scene)
        light_of = {node: i for i, node in enumerate(backend._light_nodes)}
        object_of = {node: i for i, node in enumerate(seg_map)}
        lights = [light_of[n] for n in backend._scene.light_nodes]
        meshes = [object_of[n] for n in backend._scene.mesh_nodes if n.mesh.is_visible]
        orders.append((lights, meshes))
    backend.close()
    return orders


def test_lights_and_meshes_are_visited_in_an_order_set_by_the_scene(service):
    """pyrender sums lights and breaks draw-order ties in set order (memory addresses, i.e. the worker's
    history): the backend must impose the scene's order, whatever the heap looks like."""
    rng = np.random.default_rng(5)
    scenes = []
    for _ in range(12):
        lights = [
            Light(
                kind=str(kind),
                pose=translation(*rng.uniform(-1, 1, 2), 2.0),
                intensity=float(rng.uniform(1, 9)),
            )
            for kind in rng.choice(["point", "spot", "area", "directional"], size=int(rng.integers(2, 13)))
        ]
        objects = [
            plate(i + 1, -0.1, 0.1, -0.1, 0.1, float(rng.uniform(0, 0.5)))
            for i in range(int(rng.integers(2, 9)))
        ]
        scenes.append(Scene(camera=top_down_camera(), lights=lights, objects=objects))
    orders = service.call(_drawing_orders, [sc.to_json() for sc in scenes])
    for scene, (lights, meshes) in zip(scenes, orders, strict=True):
        canonical = sorted(range(len(scene.lights)), key=lambda k: scene.lights[k].model_dump_json())
        assert lights == canonical
        assert meshes == list(range(len(scene.objects)))


def _draw_sorts(seed: int) -> tuple[list[int], list[int]]:
    """(pyrender's draw order with hidden nodes dropped afterwards, the backend's), as node names."""
    import pyrender
    import trimesh
    from pyrender.renderer import Renderer

    from synth.render.pyrender_state import SingleSampleRenderer

    rng = np.random.default_rng(seed)
    scene = pyrender.Scene()
    scene.add(pyrender.PerspectiveCamera(yfov=1.0), pose=np.eye(4))
    box = trimesh.creation.box()
    for i in range(40):
        see_through = rng.random() < 0.3
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1, 1, 1, 0.5 if see_through else 1.0],
            alphaMode="BLEND" if see_through else "OPAQUE",
        )
        mesh = pyrender.Mesh.from_trimesh(box, material=material)
        mesh.is_visible = bool(rng.random() < 0.5)
        pose = np.eye(4)
        pose[:3, 3] = rng.integers(-3, 4, 3)  # equal distances: ties keep the scene's node order
        scene.add(mesh, name=str(i), pose=pose)
    assert any(n.mesh.is_transparent for n in scene.mesh_nodes)
    theirs = [int(n.name) for n in Renderer._sorted_mesh_nodes(None, scene) if n.mesh.is_visible]
    ours = [int(n.name) for n in SingleSampleRenderer._sorted_mesh_nodes(None, scene)]
    return theirs, ours


def test_the_draw_sort_skips_hidden_nodes_and_keeps_pyrenders_order(service):
    for seed in range(3):
        theirs, ours = service.call(_draw_sorts, seed)
        assert ours == theirs and len(ours) > 5


def _option_error(opts: dict) -> str:
    try:
        get_backend("pyrender", **opts)
    except ConfigError as e:
        return str(e)
    return ""


def test_backend_registry_errors(service):
    assert {"pyrender", "cycles"} <= set(backend_names())
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        get_backend("nope")
    assert "key 'bogus': unknown key" in service.call(_option_error, {"bogus": 1})
    assert "antialias" in service.call(_option_error, {"antialias": "fxaa"})


def test_objects_wholly_outside_the_view_change_no_pixel(service):
    """The backend skips objects that cannot reach the image (a shelf's other bays); whatever else is in the
    scene, the frame is the one of the objects in view alone."""
    cam = top_down_camera(cx=50.0)  # off-centre: the test must use the real image edges
    light = Light(kind="point", pose=translation(0.3, -0.3, 1.5), intensity=80.0)
    near = [plate(k + 1, -0.2 + 0.15 * k, -0.1 + 0.15 * k, -0.1, 0.1, 0.05) for k in range(3)]
    near.append(plate(4, 0.27, 0.5, -0.05, 0.05, 0.05))  # straddles the right edge: kept, partly drawn
    far = [
        plate(10, 2.0, 2.2, -0.1, 0.1, 0.05),  # beyond the right edge
        plate(11, -0.1, 0.1, 1.5, 1.7, 0.05),  # beyond the top edge
        plate(12, -0.1, 0.1, -0.1, 0.1, 2.5),  # behind the camera
    ]
    alone = service.render(Scene(camera=cam, lights=[light], objects=near), antialias="edge")
    crowded = service.render(Scene(camera=cam, lights=[light], objects=near + far), antialias="edge")
    assert 4 in alone.instance_ids and not np.isin(alone.instance_ids, [10, 11, 12]).any()
    assert np.array_equal(alone.rgb, crowded.rgb)
    assert np.array_equal(alone.instance_ids, crowded.instance_ids)
    assert np.array_equal(alone.depth, crowded.depth)


def _seeds_of_textures_made(scene_json: str) -> list[int]:
    import synth.render.pyrender_backend as backend_module

    made, make = [], backend_module.tiled_texture
    backend_module.tiled_texture = lambda spec: (made.append(spec.seed), make(spec))[1]
    try:
        # a backend of its own (nothing resident yet), kept by the worker: closing a second GL context
        # would end the EGL display under the worker's other backends
        render_in_worker(scene_json, '{"antialias": "edge", "exposure": 0.997}')
    finally:
        backend_module.tiled_texture = make
    return made


def test_no_texture_is_made_for_an_object_outside_the_view(service):
    """Randomized textures cost milliseconds each, and most of a shelf's objects are out of view."""

    def textured(obj: SceneObject, seed: int) -> SceneObject:
        texture = TextureSpec(procedural="noise", seed=seed, size=32)
        return obj.model_copy(update={"material": Material(texture=texture)})

    objects = [
        textured(plate(1, -0.1, 0.1, -0.1, 0.1, 0.05), 101),
        textured(plate(2, 2.0, 2.2, -0.1, 0.1, 0.05), 202),
    ]
    scene = Scene(camera=top_down_camera(), lights=[], environment=flat_env(), objects=objects)
    assert service.call(_seeds_of_textures_made, scene.to_json()) == [101]


def test_the_view_test_never_drops_what_projects_into_the_image():
    """Against brute force: points on each sphere projected with the camera's own intrinsics."""
    from synth.geometry import ViewTest

    rng = np.random.default_rng(0)
    cam = top_down_camera(width=160, height=90, fx=150.0, fy=140.0, cx=60.0, cy=50.0)
    test = ViewTest(cam)
    dirs = rng.normal(size=(400, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    kept = dropped = 0
    for _ in range(400):
        centre, radius = rng.uniform([-2, -2, -1], [2, 2, 3]), float(rng.uniform(0.01, 0.5))
        pose = np.eye(4)
        pose[:3, 3] = centre
        inside = test((np.zeros(3), radius), pose)
        pts = centre + radius * dirs
        z = cam.pose[2][3] - pts[:, 2]  # distance in front of the top-down camera
        u = cam.cx + cam.fx * pts[:, 0] / np.maximum(z, 1e-9)
        v = cam.cy - cam.fy * pts[:, 1] / np.maximum(z, 1e-9)
        seen = (z > cam.znear) & (u >= 0) & (u <= cam.width) & (v >= 0) & (v <= cam.height)
        if seen.any():
            assert inside, (centre, radius)
        kept += inside
        dropped += not inside
    assert kept > 20 and dropped > 200  # the test does drop most of what is out of view


def test_textures_upload_as_opaque_rgba_without_extra_copies():
    from PIL import Image

    from synth.render.pyrender_backend import _decoded_png_bgr, gl_texture
    from synth.render.pyrender_state import OpaqueTexture

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)  # 7 * 3 bytes a row: not 4-byte aligned
    rgba[..., 3] = 0
    for image in (Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba[..., :3], "RGB"), rgba, rgba[..., :3]):
        src = gl_texture(image).source
        assert src.dtype == np.uint8 and src.shape == (5, 7, 4)
        assert np.array_equal(src[..., :3], rgba[..., :3]) and (src[..., 3] == 255).all()
    palette = Image.fromarray(rgba[..., :3], "RGB").convert("P")
    assert np.array_equal(gl_texture(palette).source[..., :3], np.asarray(palette.convert("RGB")))
    # a mesh file's PNG, opened but not decoded (as trimesh holds it): OpenCV decodes 8-bit RGB(A) ones
    for mode, pixels in (("RGB", rgba[..., :3]), ("RGBA", rgba), ("P", rgba[..., :3]), ("L", rgba[..., 0])):
        png = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(png, format="PNG")
        fresh = [Image.open(io.BytesIO(png.getvalue())) for _ in range(3)]
        assert (_decoded_png_bgr(fresh[0]) is not None) == (mode in ("RGB", "RGBA")), mode
        src = gl_texture(fresh[1]).source
        assert np.array_equal(src, np.asarray(fresh[2].convert("RGB").convert("RGBA"))), mode
    ready = np.full((4, 4, 4), 255, dtype=np.uint8)
    assert OpaqueTexture(source=ready, source_channels="RGBA").source is ready  # kept, not copied
    floats = OpaqueTexture(source=np.ones((4, 4, 3)), source_channels="RGB").source  # pyrender's conversion
    assert floats.dtype == np.uint8 and (floats == 255).all()


def test_a_mesh_files_png_reaches_gl_as_the_texels_pyrender_would_upload(service):
    """The PNG goes to GL as OpenCV's BGR bytes (no RGBA copy): read back, level 0 and its mipmap level 1
    are byte for byte those of pyrender's own RGBA upload, on an odd, unaligned width, alpha 255."""
    from PIL import Image
    from render_scenes import uploaded_texels

    from synth.render.pyrender_backend import gl_texture

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # 53 * 3 bytes a row: not 4-byte aligned
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    assert gl_texture(Image.open(io.BytesIO(png.getvalue())))._bgr is not None  # the BGR path is taken
    ours0, ours1, plain0, plain1 = service.call(uploaded_texels, png.getvalue())
    assert np.array_equal(ours0[..., :3], pixels) and (ours0[..., 3] == 255).all()
    assert np.array_equal(ours0, plain0) and np.array_equal(ours1, plain1)
    assert ours1.shape == (18, 26, 4)
