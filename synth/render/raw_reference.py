"""The raw reference of ``simreal bench render``: the same scenes' geometry drawn with plain pyrender, to
show how much of the end-to-end time is the rasteriser and how much is everything around it.

Per image, timed: object poses and materials set on a persistent ``pyrender.Scene`` (one node per object
copy, made on first use and then kept, as a steady-state pyrender script would), one colour + depth pass
without shadows or anti-aliasing, one SEG pass, a JPEG encode and one COCO RLE per visible instance.
Not timed: building the scene descriptions, loading meshes and the first uploads (everything is drawn
once before the clock starts). Lights, ambient and background colour are the scene's; background
images are not composited and textures are the scene's own (``TextureSpec``s or the mesh's).

Runs in its own process (``reference_worker``): a GL context is never made in the orchestrating one.
"""

from __future__ import annotations

import os
import time

import numpy as np

from synth.catalog import Catalog
from synth.dataset.plan import RunPlan


def reference_worker(plan: RunPlan, indices: list[int], threads: int | None = None) -> dict:
    """Process entry point: render ``plan``'s images ``indices`` the plain way; returns the figures."""
    if threads is not None:
        os.environ["LP_NUM_THREADS"] = str(threads)
    catalog = Catalog(plan.cfg.catalog.root)
    scenes = [plan.build(catalog, i) for i in indices]
    return RawReference(plan.cfg.output.jpeg_quality).run(scenes)


class RawReference:
    """Plain pyrender: from_trimesh meshes, pyrender materials and lights, OffscreenRenderer passes."""

    def __init__(self, jpeg_quality: int = 92):
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        import pyrender

        self.pyrender = pyrender
        self.jpeg_quality = jpeg_quality
        self.scene = pyrender.Scene(bg_color=np.zeros(4), ambient_light=np.zeros(3))
        self.nodes: dict[tuple[str, int], pyrender.Node] = {}  # (geometry key, copy) -> node
        self.textures: dict[str, pyrender.Texture] = {}
        self.renderer = None
        self.transient: list = []  # camera and light nodes of the current image

    def run(self, scenes) -> dict:
        for scene in scenes:  # load, build and upload everything once
            self.draw(scene)
        stages = {"setup": 0.0, "color": 0.0, "ids": 0.0, "encode": 0.0, "rle": 0.0}
        t_start = time.perf_counter()
        c_start = time.process_time()
        for scene in scenes:
            for k, v in self.draw(scene).items():
                stages[k] += v
        wall = time.perf_counter() - t_start
        cpu = time.process_time() - c_start
        n = len(scenes)
        gl_renderer = self.gl_renderer()
        if self.renderer is not None:
            self.renderer.delete()
        return {
            "gl_renderer": gl_renderer,
            "images": n,
            "wall_s": round(wall, 3),
            "images_per_s": round(n / wall, 2),
            "ms_per_image": {k: round(1000 * v / n, 1) for k, v in stages.items()},
            "cpu_ms_per_image": round(1000 * cpu / n, 1),
        }

    def gl_renderer(self) -> str | None:
        """The OpenGL renderer that drew (``llvmpipe ...`` on a CPU, the GPU's name on EGL there), read
        while the last pass's context is still current."""
        if self.renderer is None:
            return None
        from OpenGL import GL

        name = GL.glGetString(GL.GL_RENDERER)
        return name.decode(errors="replace") if name else None

    def draw(self, scene) -> dict[str, float]:
        import cv2
        from pycocotools import mask as mask_utils
        from pyrender.constants import RenderFlags

        from synth.render.pyrender_backend import _MULTISAMPLE

        t0 = time.perf_counter()
        cam = scene.camera
        if self.renderer is None:
            self.renderer = self.pyrender.OffscreenRenderer(cam.width, cam.height)
        seg_map = self._sync(scene)
        t1 = time.perf_counter()
        _MULTISAMPLE.allow_multisample = False  # no anti-aliasing (pyrender always asks for MSAA)
        try:
            color, _depth = self.renderer.render(self.scene, RenderFlags.SKIP_CULL_FACES)
        finally:
            _MULTISAMPLE.allow_multisample = True
        t2 = time.perf_counter()
        seg, _depth = self.renderer.render(self.scene, RenderFlags.SEG | RenderFlags.SKIP_CULL_FACES, seg_map)
        ids = seg[..., 0].astype(np.uint16) | (seg[..., 1].astype(np.uint16) << 8)
        t3 = time.perf_counter()
        ok, _jpg = cv2.imencode(".jpg", color[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        t4 = time.perf_counter()
        for iid in np.unique(ids):
            if iid:
                mask_utils.encode(np.asfortranarray((ids == iid).astype(np.uint8)))
        t5 = time.perf_counter()
        return {"setup": t1 - t0, "color": t2 - t1, "ids": t3 - t2, "encode": t4 - t3, "rle": t5 - t4}

    def _sync(self, scene) -> dict:
        from synth.geometry import placed_geometry
        from synth.mesh import linear_to_srgb
        from synth.render.pyrender_backend import _to_pyrender_light
        from synth.scene import pose_matrix

        pr, sc = self.pyrender, self.scene
        for node in self.transient:
            sc.remove_node(node)
        for node in self.nodes.values():
            node.mesh.is_visible = False
        seg_map, copies = {}, {}
        for obj in scene.objects:
            geom, pose = placed_geometry(obj)
            k = copies[geom.key] = copies.get(geom.key, -1) + 1
            node = self.nodes.get((geom.key, k))
            if node is None:
                node = self.nodes[(geom.key, k)] = sc.add(pr.Mesh.from_trimesh(list(geom.meshes)))
            sc.set_pose(node, pose)
            node.mesh.is_visible = True
            if obj.material is not None:
                for prim in node.mesh.primitives:
                    prim.material = self._material(obj.material, prim)
            seg_map[node] = np.array([obj.instance_id & 255, obj.instance_id >> 8, 0], dtype=np.float64)
        c = scene.camera
        camera = pr.IntrinsicsCamera(fx=c.fx, fy=c.fy, cx=c.cx, cy=c.cy, znear=c.znear, zfar=c.zfar)
        self.transient = [sc.add(camera, pose=pose_matrix(c.pose))]
        sc.main_camera_node = self.transient[0]
        self.transient += [
            sc.add(_to_pyrender_light(lt, 1.0), pose=pose_matrix(lt.pose)) for lt in scene.lights
        ]
        env = scene.environment
        sc.ambient_light = np.asarray(env.ambient_color) * env.ambient_intensity
        sc.bg_color = np.append(linear_to_srgb(env.background_color), 1.0)
        return seg_map

    def _material(self, m, prim):
        from synth.render.pyrender_backend import gl_texture, tiled_texture

        tex = None
        if m.texture is not None and prim.texcoord_0 is not None:
            key = m.texture.model_dump_json()
            tex = self.textures.get(key)
            if tex is None:
                tex = self.textures[key] = gl_texture(tiled_texture(m.texture))
        return self.pyrender.MetallicRoughnessMaterial(
            baseColorFactor=np.asarray(m.base_color, dtype=np.float64),
            metallicFactor=m.metallic,
            roughnessFactor=m.roughness,
            baseColorTexture=tex,
        )
