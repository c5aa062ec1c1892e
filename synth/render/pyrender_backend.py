"""Fast rasterising backend: pyrender on a headless EGL (Mesa llvmpipe or GPU) context.

Two GL passes per image, both into pyrender's offscreen framebuffer:
  1. colour with optional shadow maps, anti-aliased one of two ways (option ``antialias``):
     "edge" (default): single-sample shading, then every pixel on an instance-id boundary is replaced
     by a 3x3 Gaussian of its neighbourhood (post-process AA driven by the exact id image; silhouettes
     look like MSAA's, creases inside an object stay aliased),
     "msaa": pyrender's 4x multisampling (best edges; on Mesa llvmpipe the colour pass costs 4-5x,
     the whole image about 1.7x), or "none";
  2. instance ids with ``RenderFlags.SEG``: pyrender disables GL_MULTISAMPLE for this pass, so every
     sample of a pixel gets the flat colour of the one triangle covering the pixel centre and the
     resolve cannot blend ids. The id is packed as (id & 255, id >> 8, 0). Depth is read from this same
     pass, so depth and ids agree pixel for pixel.

Everything GL-side is kept alive between images of a worker: one persistent ``pyrender.Scene`` holds a
pool of mesh nodes per geometry (a node per simultaneous use), reused with new poses and materials and
hidden when unused, so vertex buffers and textures are uploaded once per worker, not once per image;
primitives of any size share one unit mesh per kind (``synth.geometry.shared_geometry``). pyrender's
fragment shader is compiled per light-count signature with constant loop bounds
(``_ConstantLoopPrograms``: identical pixels, half the colour-pass time on llvmpipe). pyrender shades at
most 4 lights per type.

An image depends on its scene only, never on what the worker rendered before: meshes are drawn in the
scene's order and lights summed in a canonical one (``_OrderedScene``; pyrender's own order follows
memory addresses), and no shader or other state comes from files another worker may be writing.

Mapping of scene quantities (pyrender has no units; these keep brightness close to a physical renderer):
  point / spot light of P watts -> radiant intensity P / (4 pi) W/sr; directional E W/m^2 -> E;
  area light of P watts -> a 180-degree spot light of on-axis intensity P / pi (a Lambertian emitter);
  ambient = ambient_color * ambient_intensity; every light and the ambient are scaled by ``exposure``.
  ``Material.specular`` has no pyrender equivalent and is ignored. Colours are linear; the background
  colour is converted to sRGB because it is written to the framebuffer directly.

STACK.md traps: create at most one backend per process, use it from one thread only, and never import
torchvision in a process after this has created its EGL context.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from synth.errors import ConfigError
from synth.geometry import LoadedGeometry, ViewTest, bounding_sphere, placed_geometry
from synth.mesh import linear_to_srgb
from synth.render.pyrender_settings import pyrender_settings
from synth.scene import Frame, Light, Material, Scene, TextureSpec, pose_matrix
from synth.textures import make_texture

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import pyrender  # noqa: E402  (after PYOPENGL_PLATFORM is set)
import pyrender.renderer as _pyrender_renderer  # noqa: E402
import trimesh  # noqa: E402
from OpenGL.GL import GL_MULTISAMPLE  # noqa: E402
from PIL import Image  # noqa: E402
from pyrender.constants import MAX_N_LIGHTS, RenderFlags  # noqa: E402
from pyrender.shader_program import ShaderProgramCache  # noqa: E402

from synth.render.pyrender_state import (  # noqa: E402  (imports OpenGL)
    OpaqueTexture,
    ResidentTexture,
    make_single_sample_capable,
    make_sticky,
)

log = logging.getLogger(__name__)


class _MultisampleSwitch:
    """pyrender enables GL_MULTISAMPLE for every colour pass and has no option to turn it off; this
    wrapper around the ``glEnable`` its renderer module calls lets a backend skip that one enable."""

    def __init__(self, gl_enable):
        self.gl_enable = gl_enable
        self.allow_multisample = True

    def __call__(self, cap):
        if cap == GL_MULTISAMPLE and not self.allow_multisample:
            # disable explicitly: multisampling is ON in a fresh GL context, so skipping the enable
            # alone would leave a worker's first image anti-aliased differently from the rest
            from OpenGL.GL import glDisable

            return glDisable(GL_MULTISAMPLE)
        return self.gl_enable(cap)


class _ConstantLoopPrograms(ShaderProgramCache):
    """pyrender's PBR fragment shader loops over uniform light arrays with bounds set at run time
    (``i < n_point_lights``). On llvmpipe that costs about as much as all the other shading together,
    whatever the number of lights. This program cache compiles ``mesh.frag`` per light-count signature
    ``counts`` (directional, spot, point; set before each frame) with those three bounds as constants:
    the same pixels, about half the colour-pass time. It uses pyrender's own mechanism (a program's
    ``defines`` are substituted into its text, and are part of the cache key), so nothing is written to
    disk and nothing depends on what another worker did first. If pyrender's shader text is not as
    expected, every program is pyrender's own, for every image alike."""

    LOOPS = ("n_directional_lights", "n_spot_lights", "n_point_lights")

    def __init__(self, constant_loops: bool = True):
        super().__init__()
        with open(os.path.join(self.shader_dir, "mesh.frag")) as f:
            text = f.read()
        self.enabled = constant_loops and all(text.count(_light_loop(v)) == 1 for v in self.LOOPS)
        if constant_loops and not self.enabled:
            log.warning("pyrender's mesh.frag is not the expected version; using it unmodified (slower)")
        self.counts = (0, 0, 0)

    def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        if self.enabled and fragment_shader == "mesh.frag":
            bounds = {_light_loop(v): _light_loop(n) for v, n in zip(self.LOOPS, self.counts, strict=True)}
            defines = {**(defines or {}), **bounds}
        # programs remember the uniforms they were sent (synth.render.pyrender_state)
        return make_sticky(super().get_program(vertex_shader, fragment_shader, geometry_shader, defines))


def _light_loop(bound) -> str:
    return f"for (int i = 0; i < {bound}; i++)"


class _OrderedScene(pyrender.Scene):
    """pyrender keeps mesh and light nodes in sets, and its renderer iterates them: light uniforms are
    filled, and ties of its back-to-front draw sort are broken, in set order, which follows the nodes'
    memory addresses, i.e. the worker's history. The shader sums the lights in that order, so another
    order rounds a few pixels one level differently (then a whole JPEG block differs). Here nodes come
    in ``rank`` order, set every frame from the scene: meshes in the order of its objects, lights in a
    canonical order of their parameters. Unranked nodes are hidden ones, which are never drawn."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.rank: dict[pyrender.Node, int] = {}

    def _ordered(self, nodes) -> list[pyrender.Node]:
        return sorted(nodes, key=lambda n: self.rank.get(n, math.inf))

    @property
    def mesh_nodes(self) -> list[pyrender.Node]:
        return self._ordered(self._mesh_nodes)

    @property
    def light_nodes(self) -> list[pyrender.Node]:
        return self._ordered(self._point_light_nodes | self._spot_light_nodes | self._directional_light_nodes)


if not isinstance(_pyrender_renderer.glEnable, _MultisampleSwitch):
    _pyrender_renderer.glEnable = _MultisampleSwitch(_pyrender_renderer.glEnable)
_MULTISAMPLE = _pyrender_renderer.glEnable

_DEFAULT_MATERIAL = Material()
MAX_RESIDENT_TEXTURES = 64  # randomized textures kept in GL between images (a 512^2 one: ~1.4 MB)
MAX_BACKGROUNDS = 16  # background images kept at output size (640x480: 0.9 MB each)


def gl_texture(image: np.ndarray | Image.Image, cls: type[OpaqueTexture] = OpaqueTexture) -> OpaqueTexture:
    """Upload as opaque RGBA: 4-byte pixels keep every row 4-byte aligned (GL's default unpack alignment),
    so textures whose width * 3 is not a multiple of 4 are not sheared. Any alpha is dropped (255). A mesh
    file's not yet decoded 8-bit PNG goes to GL as OpenCV's BGR bytes (``OpaqueTexture.from_bgr``)."""
    if isinstance(image, Image.Image):
        bgr = _decoded_png_bgr(image)
        if bgr is not None:
            return cls.from_bgr(bgr)
    return cls(source=opaque_rgba(image), source_channels="RGBA")


def opaque_rgba(image: np.ndarray | Image.Image) -> np.ndarray:
    """(H, W, 4) uint8 with alpha 255. A PIL image that is not a not-yet-decoded PNG (``gl_texture``
    hands those to OpenCV) is decoded and converted by PIL without the RGB array in between."""
    import cv2

    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image.convert("RGBA"))
    rgb = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)


def _decoded_png_bgr(image: Image.Image) -> np.ndarray | None:
    """An opened but not yet decoded 8-bit RGB/RGBA PNG held in memory (how trimesh opens a mesh file's
    textures) decoded by OpenCV as BGR (alpha dropped); None for anything else, or if OpenCV disagrees on
    its size. PIL has read the header and bounded the size already; both decoders ignore gamma and colour
    profiles and drop alpha alike, so the pixels are PIL's."""
    import io

    import cv2

    fp, tile = getattr(image, "fp", None), getattr(image, "tile", None)
    if image.format != "PNG" or image.mode not in ("RGB", "RGBA") or not isinstance(fp, io.BytesIO):
        return None
    if not tile or len(tile) != 1 or tile[0][3] not in ("RGB", "RGBA"):  # 8 bits a channel, one stream
        return None
    bgr = cv2.imdecode(np.frombuffer(fp.getbuffer(), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (image.height, image.width):
        return None
    return bgr


def tiled_texture(spec: TextureSpec) -> np.ndarray:
    """The texture image with ``spec.repeat`` tiles per UV unit baked in (UVs stay 0..1), at the
    texture's own resolution: the pattern is shrunk by ``repeat`` and tiled, so a 512 px texture
    repeated 12 times stays a 512 px upload instead of a 6144 px one (texel density drops instead)."""
    img = make_texture(spec)
    r = spec.repeat
    if r <= 0 or not math.isfinite(r):
        raise ConfigError("texture.repeat", f"{r} must be a positive number")
    if abs(r - 1.0) < 1e-9:
        return img
    import cv2

    h, w = img.shape[:2]
    if r < 1.0:  # less than one tile per UV unit: stretch a part of the pattern
        part = np.ascontiguousarray(img[: max(1, round(h * r)), : max(1, round(w * r))])
        return cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)
    th, tw = max(2, round(h / r)), max(2, round(w / r))
    tile = cv2.resize(np.ascontiguousarray(img), (tw, th), interpolation=cv2.INTER_AREA)
    k = math.ceil(max(h / th, w / tw))
    return np.ascontiguousarray(np.tile(tile, (k, k, 1))[:h, :w])


@dataclass
class _Slot:
    """One pyrender node of a pooled geometry: reused by one scene object per frame."""

    node: pyrender.Node
    default_materials: list
    last_used: int = -1


@dataclass
class _GeometryPool:
    """Every node of one geometry. ``parts`` and ``default_materials`` are built once and shared by the
    slots, so a mesh's own (often 2048^2) texture is uploaded once however many copies are in view."""

    geometry: LoadedGeometry
    parts: list
    default_materials: list
    slots: list[_Slot] = field(default_factory=list)
    template: pyrender.Mesh | None = None  # the first slot's mesh: later slots copy its arrays


class PyrenderBackend:
    """Renders ``Scene`` objects with pyrender. One instance per worker process.

    Options (``synth.render.pyrender_settings``): ``antialias`` ("msaa", "edge" or "none", see the
    module docstring), ``shadows`` (shadow maps for directional and spot lights; one more pass per
    light), ``exposure`` (multiplies every light), ``max_pooled_nodes`` (GPU-resident mesh nodes kept
    between images before the least recently used are freed).
    """

    name = "pyrender"

    def __init__(self, **options):
        settings = pyrender_settings(options)
        self.antialias = settings.antialias
        self.shadows = settings.shadows
        self.exposure = settings.exposure
        self.max_pooled_nodes = settings.max_pooled_nodes
        self._check_platform()
        self._renderer: pyrender.OffscreenRenderer | None = None
        self._scene = _OrderedScene(bg_color=np.zeros(4), ambient_light=np.zeros(3))
        self._pools: dict[str, _GeometryPool] = {}
        self._textures: OrderedDict[str, ResidentTexture] = OrderedDict()
        self._light_nodes: list[pyrender.Node] = []
        self._camera_node: pyrender.Node | None = None
        self._backgrounds: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._frame_counter = 0
        self._programs = _ConstantLoopPrograms(constant_loops=not self.shadows)

    # ---- lifecycle ---------------------------------------------------------------------------------
    @staticmethod
    def _check_platform() -> None:
        want = os.environ.get("PYOPENGL_PLATFORM")
        import OpenGL.platform

        got = type(OpenGL.platform.PLATFORM).__name__.lower()
        if want == "egl" and "egl" not in got:
            raise ConfigError(
                "pyrender backend",
                "PyOpenGL was imported before PYOPENGL_PLATFORM=egl was "
                "set; import synth.render.pyrender_backend first or export the variable",
            )

    def _ensure_renderer(self, width: int, height: int) -> pyrender.OffscreenRenderer:
        if self._renderer is None:
            try:
                self._renderer = pyrender.OffscreenRenderer(width, height)
            except Exception as e:  # EGL / driver problems surface as many exception types
                raise ConfigError(
                    "pyrender backend",
                    f"cannot create an offscreen GL context "
                    f"({e.__class__.__name__}: {str(e)[:120]}); on Debian install "
                    "libegl1 libegl-mesa0 libgl1-mesa-dri",
                ) from None
        else:
            self._renderer.viewport_width = width
            self._renderer.viewport_height = height
        return self._renderer

    def close(self) -> None:
        if self._renderer is not None:
            try:
                self._renderer.delete()
            finally:
                self._renderer = None
        self._pools.clear()
        self._textures.clear()
        self._backgrounds.clear()
        self._programs = None

    def __enter__(self) -> PyrenderBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # best effort; close() is the contract
        if sys is not None and getattr(self, "_renderer", None) is not None:
            try:
                self.close()
            except Exception:
                pass

    # ---- render ------------------------------------------------------------------------------------
    def render(self, scene: Scene) -> Frame:
        t0 = time.perf_counter()
        cam = scene.camera
        renderer = self._ensure_renderer(cam.width, cam.height)
        seg_map = self.sync(scene)
        env = scene.environment
        textured_bg = env.background_texture is not None
        t1 = time.perf_counter()

        flags = RenderFlags.SKIP_CULL_FACES
        if textured_bg:
            flags |= RenderFlags.RGBA
        if self.shadows:
            flags |= RenderFlags.SHADOWS_DIRECTIONAL | RenderFlags.SHADOWS_SPOT
        self._select_shaders(renderer)
        inner = make_single_sample_capable(renderer)
        _MULTISAMPLE.allow_multisample = self.antialias == "msaa"
        inner.single_sample = self.antialias != "msaa"
        try:
            color, _ = renderer.render(self._scene, flags)
        finally:
            _MULTISAMPLE.allow_multisample = True
        t2 = time.perf_counter()

        inner.single_sample = True  # ids are never multisampled (see the module docstring)
        seg, depth = renderer.render(self._scene, RenderFlags.SEG | RenderFlags.SKIP_CULL_FACES, seg_map)
        ids = seg[..., 0].astype(np.uint16) | (seg[..., 1].astype(np.uint16) << 8)
        t3 = time.perf_counter()

        if textured_bg:
            rgb = self._composite(color, env.background_texture, cam.width, cam.height)
        else:
            rgb = np.ascontiguousarray(color)
        if self.antialias == "edge":
            rgb = smooth_id_edges(rgb, ids)
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        depth[ids == 0] = 0.0
        t4 = time.perf_counter()
        timings = {
            "render_setup": t1 - t0,
            "render_color": t2 - t1,
            "render_ids": t3 - t2,
            "render_post": t4 - t3,
        }
        return Frame(
            rgb=rgb, depth=depth, instance_ids=np.ascontiguousarray(ids), amodal=None, timings=timings
        )

    def _select_shaders(self, renderer: pyrender.OffscreenRenderer) -> None:
        if self._programs is None:
            return
        sc = self._scene
        self._programs.counts = (
            min(len(sc.directional_light_nodes), MAX_N_LIGHTS),
            min(len(sc.spot_light_nodes), MAX_N_LIGHTS),
            min(len(sc.point_light_nodes), MAX_N_LIGHTS),
        )
        renderer._renderer._program_cache = self._programs

    # ---- scene synchronisation ---------------------------------------------------------------------
    def sync(self, scene: Scene) -> dict:
        """Make the persistent pyrender scene show ``scene`` (no GL needed); returns the node -> id-colour
        map of the SEG pass. ``self._scene``'s mesh and light nodes are then in drawing order."""
        self._frame_counter += 1
        self._scene.rank = {}
        seg_map = self._sync_objects(scene)
        self._sync_camera(scene)
        self._sync_lights(scene)
        env = scene.environment
        self._scene.ambient_light = np.asarray(env.ambient_color) * env.ambient_intensity * self.exposure
        if env.background_texture is not None:
            self._scene.bg_color = np.zeros(4)
        else:
            self._scene.bg_color = np.append(linear_to_srgb(env.background_color), 1.0)
        return seg_map

    def _sync_objects(self, scene: Scene) -> dict:
        frame = self._frame_counter
        taken: dict[str, int] = {}
        seg_map = {}
        # without shadow maps an object wholly outside the view changes no pixel: it need not be drawn
        in_view = None if self.shadows else ViewTest(scene.camera)
        for position, obj in enumerate(scene.objects):
            geom, pose = placed_geometry(obj)
            pool = self._pools.get(geom.key)
            if pool is None:
                pool = self._pools[geom.key] = self._new_pool(geom)
            k = taken.get(geom.key, 0)
            taken[geom.key] = k + 1
            if k == len(pool.slots):
                pool.slots.append(self._new_slot(pool))
            slot = pool.slots[k]
            slot.last_used = frame
            node = slot.node
            # drawn only when it can reach the image: without shadow maps an object wholly outside the
            # view changes no pixel, but llvmpipe still transforms all its triangles (a shelf's hidden bays)
            node.mesh.is_visible = in_view is None or in_view(bounding_sphere(geom), pose)
            self._scene.set_pose(node, pose)
            # nor does a hidden one need its texture made (a shelf: ~200 objects, ~35 in view)
            self._apply_material(slot, obj.material if node.mesh.is_visible else None)
            iid = obj.instance_id
            seg_map[node] = np.array([iid & 255, iid >> 8, 0], dtype=np.float64)
            self._scene.rank[node] = position
        # park what this frame does not use: hidden, with their own materials (drops texture refs)
        for pool in self._pools.values():
            for slot in pool.slots:
                if slot.last_used != frame and slot.node.mesh.is_visible:
                    slot.node.mesh.is_visible = False
                    self._apply_material(slot, None)
        self._evict(frame)
        return seg_map

    @staticmethod
    def _new_pool(geom: LoadedGeometry) -> _GeometryPool:
        parts = list(geom.meshes)
        return _GeometryPool(geom, parts, [_material_from_trimesh(m) for m in parts])

    def _new_slot(self, pool: _GeometryPool) -> _Slot:
        if pool.template is None:
            pool.template = _mesh_from_parts(pool.parts, pool.default_materials)
            mesh = pool.template
        else:  # the same vertex arrays, without converting the trimesh visuals (and textures) again
            mesh = pyrender.Mesh([_copy_primitive(p) for p in pool.template.primitives])
        for prim, mat in zip(mesh.primitives, pool.default_materials, strict=True):
            prim.material = mat
        node = self._scene.add(mesh, pose=np.eye(4))
        return _Slot(node=node, default_materials=pool.default_materials)

    def _evict(self, frame: int) -> None:
        total = sum(len(p.slots) for p in self._pools.values())
        if total <= self.max_pooled_nodes:
            return
        idle = sorted(
            (
                (slot.last_used, key, slot)
                for key, p in self._pools.items()
                for slot in p.slots
                if slot.last_used != frame
            ),
            key=lambda t: t[:2],  # slots of one geometry last used in the same frame stay in pool order
        )
        for _, key, slot in idle[: total - self.max_pooled_nodes]:
            self._scene.remove_node(slot.node)  # GL buffers are freed on the next render
            self._pools[key].slots.remove(slot)
            if not self._pools[key].slots:
                del self._pools[key]

    def _apply_material(self, slot: _Slot, material: Material | None) -> None:
        prims = slot.node.mesh.primitives
        if material is None:
            for prim, mat in zip(prims, slot.default_materials, strict=True):
                prim.material = mat
            return
        override = None if material.texture is None else self._texture(material.texture)
        for prim, default in zip(prims, slot.default_materials, strict=True):
            tex = override
            if tex is None and material.use_mesh_texture:
                tex = default.baseColorTexture
            if prim.texcoord_0 is None:  # vertex-coloured mesh: no UVs to map a texture with
                tex = None
            own_texture = tex is not None and tex is default.baseColorTexture
            prim.material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=np.asarray(material.base_color, dtype=np.float64),
                metallicFactor=material.metallic,
                roughnessFactor=material.roughness,
                baseColorTexture=tex,
                metallicRoughnessTexture=default.metallicRoughnessTexture if own_texture else None,
                alphaMode="BLEND" if material.base_color[3] < 1.0 else "OPAQUE",
            )

    def _texture(self, spec: TextureSpec) -> pyrender.Texture:
        key = spec.model_dump_json()
        tex = self._textures.get(key)
        if tex is None:
            tex = gl_texture(tiled_texture(spec), ResidentTexture)
            self._textures[key] = tex
            while len(self._textures) > MAX_RESIDENT_TEXTURES:
                self._release(self._textures.popitem(last=False)[1])
        else:
            self._textures.move_to_end(key)
        return tex

    def _release(self, tex: ResidentTexture) -> None:
        """Free an evicted texture from GL: now when the last frame did not show it (pyrender will not
        look at it again), else pyrender frees it when it finds it gone from the scene."""
        tex.release()
        renderer = self._renderer._renderer if self._renderer is not None else None
        if renderer is not None and tex not in renderer._mesh_textures:
            tex.delete()

    def _sync_camera(self, scene: Scene) -> None:
        c = scene.camera
        camera = pyrender.IntrinsicsCamera(fx=c.fx, fy=c.fy, cx=c.cx, cy=c.cy, znear=c.znear, zfar=c.zfar)
        if self._camera_node is not None:
            self._scene.remove_node(self._camera_node)
        self._camera_node = self._scene.add(camera, pose=pose_matrix(c.pose))
        self._scene.main_camera_node = self._camera_node

    def _sync_lights(self, scene: Scene) -> None:
        for node in self._light_nodes:
            self._scene.remove_node(node)
        self._light_nodes = [
            self._scene.add(_to_pyrender_light(lt, self.exposure), pose=pose_matrix(lt.pose))
            for lt in scene.lights
        ]
        # the shader sums lights in this order: a canonical one makes the image a function of the set
        canonical = sorted(range(len(scene.lights)), key=lambda k: scene.lights[k].model_dump_json())
        self._scene.rank.update((self._light_nodes[k], r) for r, k in enumerate(canonical))

    # ---- background --------------------------------------------------------------------------------
    def _composite(self, rgba: np.ndarray, spec: TextureSpec, width: int, height: int) -> np.ndarray:
        """Objects over the background image. The clear colour is (0,0,0,0), so a resolved MSAA edge
        pixel is premultiplied: out = rgb + bg * (1 - a). Only pixels with a < 1 need work."""
        bg = self._background(spec, width, height)
        a = rgba[..., 3]
        out = np.ascontiguousarray(rgba[..., :3])
        empty = a == 0
        out[empty] = bg[empty]
        partial = (a > 0) & (a < 255)
        if partial.any():
            w = (255 - a[partial]).astype(np.float32)[:, None] * (1.0 / 255.0)
            blended = out[partial].astype(np.float32) + bg[partial].astype(np.float32) * w
            out[partial] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out

    def _background(self, spec: TextureSpec, width: int, height: int) -> np.ndarray:
        key = (spec.model_dump_json(), width, height)
        cached = self._backgrounds.get(key)
        if cached is not None:
            self._backgrounds.move_to_end(key)
            return cached
        import cv2

        img = tiled_texture(spec)
        # cover the image, keeping the texture's aspect: crop the centre, then resample
        h, w = img.shape[:2]
        s = max(width / w, height / h)
        cw, ch = min(w, round(width / s)), min(h, round(height / s))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        bg = cv2.resize(
            np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw]),
            (width, height),
            interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        )
        self._backgrounds[key] = bg
        while len(self._backgrounds) > MAX_BACKGROUNDS:
            self._backgrounds.popitem(last=False)
        return bg


def _mesh_from_parts(parts, materials) -> pyrender.Mesh:
    """``pyrender.Mesh.from_trimesh(parts, smooth=True)`` with the given materials: the same vertex
    arrays, without converting each part's own textures into a material that would be replaced anyway
    (a third of a mesh's first-use cost)."""
    prims = []
    for m, material in zip(parts, materials, strict=True):
        visual, colors, uv = m.visual, None, None
        if visual.defined and visual.kind == "vertex":
            colors = visual.vertex_colors.copy()
        elif visual.defined and visual.kind == "texture" and visual.uv is not None:
            uv = visual.uv.copy()
        prims.append(
            pyrender.Primitive(
                positions=m.vertices.copy(),
                normals=m.vertex_normals.copy(),
                texcoord_0=uv,
                color_0=colors,
                indices=m.faces.copy(),
                material=material,
                mode=pyrender.constants.GLTF.TRIANGLES,
            )
        )
    return pyrender.Mesh(primitives=prims)


def _copy_primitive(p: pyrender.Primitive) -> pyrender.Primitive:
    """A primitive with its own GL buffers over the same (read-only) vertex arrays."""
    return pyrender.Primitive(
        positions=p.positions,
        normals=p.normals,
        tangents=p.tangents,
        texcoord_0=p.texcoord_0,
        texcoord_1=p.texcoord_1,
        color_0=p.color_0,
        joints_0=p.joints_0,
        weights_0=p.weights_0,
        indices=p.indices,
        material=p.material,
        mode=p.mode,
        poses=p.poses,
    )


def id_boundaries(ids: np.ndarray) -> np.ndarray:
    """Pixels whose id differs from a 4-neighbour's: where single-sample rendering shows stair steps."""
    edge = np.zeros(ids.shape, dtype=bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:, :] != ids[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def smooth_id_edges(rgb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Post-process anti-aliasing: a 3x3 Gaussian applied only on instance-id boundaries."""
    import cv2

    edge = id_boundaries(ids)
    blurred = cv2.GaussianBlur(rgb, (3, 3), 0)
    out = rgb.copy()
    out[edge] = blurred[edge]
    return out


def _to_pyrender_light(light: Light, exposure: float):
    color = np.asarray(light.color, dtype=np.float64)
    if light.kind == "point":
        return pyrender.PointLight(color=color, intensity=exposure * light.intensity / (4 * math.pi))
    if light.kind == "directional":
        return pyrender.DirectionalLight(color=color, intensity=exposure * light.intensity)
    if light.kind == "spot":
        outer = min(light.spot_angle / 2, math.pi / 2 - 1e-3)
        inner = max(0.0, min(outer * (1.0 - light.spot_blend), outer - 1e-3))
        return pyrender.SpotLight(
            color=color,
            intensity=exposure * light.intensity / (4 * math.pi),
            innerConeAngle=inner,
            outerConeAngle=outer,
        )
    # area: a one-sided Lambertian emitter, approximated by a wide spot light
    return pyrender.SpotLight(
        color=color,
        intensity=exposure * light.intensity / math.pi,
        innerConeAngle=0.0,
        outerConeAngle=math.pi / 2 - 1e-3,
    )


def _material_from_trimesh(mesh: trimesh.Trimesh) -> pyrender.MetallicRoughnessMaterial:
    """An opaque pyrender material from a mesh's own visuals (texture, factors), else the scene default."""
    visual = mesh.visual
    d = _DEFAULT_MATERIAL
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.material is not None:
        mat = visual.material
        if isinstance(mat, trimesh.visual.material.SimpleMaterial):
            mat = mat.to_pbr()
        factor = np.asarray(
            mat.baseColorFactor if mat.baseColorFactor is not None else [255] * 4, dtype=np.float64
        )
        if factor.max() > 1.0:
            factor = factor / 255.0
        image = mat.baseColorTexture
        texture = gl_texture(image) if image is not None else None
        # glTF metallic-roughness map (G = roughness, B = metallic), e.g. a paper label with a metal lid
        mr_image = getattr(mat, "metallicRoughnessTexture", None)
        mr_texture = gl_texture(mr_image) if mr_image is not None else None
        return pyrender.MetallicRoughnessMaterial(
            baseColorFactor=factor,
            metallicFactor=float(mat.metallicFactor) if mat.metallicFactor is not None else 0.0,
            roughnessFactor=float(mat.roughnessFactor) if mat.roughnessFactor is not None else d.roughness,
            baseColorTexture=texture,
            metallicRoughnessTexture=mr_texture,
            alphaMode="OPAQUE",
        )
    return pyrender.MetallicRoughnessMaterial(
        baseColorFactor=np.asarray(d.base_color),
        metallicFactor=d.metallic,
        roughnessFactor=d.roughness,
        alphaMode="OPAQUE",
    )
