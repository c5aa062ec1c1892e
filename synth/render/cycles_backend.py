"""The photoreal backend: Blender Cycles (bpy) path-traces the same ``Scene`` that pyrender rasterises.

Import this module only in a worker process, on its main thread: bpy is one global Blender per process,
a second thread touching it segfaults (../shared/STACK.md). ``synth.render.get_backend("cycles")`` imports
it lazily for exactly that reason.

Each image is two renders of one persistent Blender scene (objects are swapped per image, meshes and
textures stay cached, Cycles keeps its scene data between renders):

1. the label pass: 1 sample at the pixel centre (pixel filter 0.01 px), writing only Object Index and
   Depth to a 32-bit multilayer EXR. Cycles writes both passes from a pixel's first sample only, so each
   pixel holds the ``pass_index`` and camera-axis depth of the surface under its centre: exact ids,
   never blended at edges, sampled where pyrender samples. Blender's ``pass_index`` stops at 32767 while
   instance ids go to 65535, so objects get pass indices 1..N in scene order and a lookup table turns
   them back into instance ids;
2. the colour pass: N samples with the normal pixel filter, adaptive sampling and denoising, written as
   an 8-bit PNG through the chosen view transform.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix
from PIL import Image

from synth.errors import ConfigError, SimrealError
from synth.geometry import object_to_world
from synth.render.cycles_camera import blender_camera_params
from synth.render.cycles_device import select_device
from synth.render.cycles_geometry import GeometryCache, instance_objects
from synth.render.cycles_materials import MaterialLibrary
from synth.render.cycles_passes import read_exr_passes
from synth.render.cycles_settings import CyclesSettings, cycles_settings
from synth.render.cycles_world import WorldBuilder, add_light
from synth.scene import Frame, Scene, pose_matrix

log = logging.getLogger("synth.render.cycles")

LABEL_FILTER_WIDTH = 0.01  # Cycles' minimum: the single label sample lands on the pixel centre
MAX_PASS_INDEX = 32767  # Blender's Object.pass_index is a signed 16-bit value
NO_HIT_DEPTH = 1e9  # Cycles writes ~1e10 where a ray escapes
SCRATCH_MIN_FREE = 1 << 30  # bytes free on /dev/shm before the pass files go there

_open_backend: CyclesBackend | None = None  # bpy is process-global: one open backend at a time


class CyclesBackend:
    """``render(scene) -> Frame`` with Blender Cycles. Options: see ``CyclesSettings``."""

    name = "cycles"

    def __init__(self, **options):
        global _open_backend
        self.settings: CyclesSettings = cycles_settings(options)
        if threading.current_thread() is not threading.main_thread():
            raise SimrealError(
                "cycles",
                "bpy must run on a process's main thread (render in worker "
                "processes, not threads; see STACK.md)",
            )
        if _open_backend is not None:
            raise SimrealError("cycles", "a Cycles backend is already open in this process; close it first")
        self._closed = False
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self.scene.render.engine = "CYCLES"
        self.device = select_device(self.scene, self.settings.device)
        if self.settings.denoiser == "optix" and not self.device.startswith("OPTIX"):
            raise ConfigError(
                "cycles.denoiser",
                f"'optix' needs an OptiX GPU; this worker renders on {self.device} (use 'openimagedenoise')",
            )
        self._configure_render()
        # pass files live here for milliseconds; removed on close, at exit, or when this is collected
        self._tmp = Path(tempfile.mkdtemp(prefix="simreal-cycles-", dir=_scratch_root()))
        self._remove_tmp = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._materials = MaterialLibrary()
        self._geometry = GeometryCache(
            self.settings.geometry_cache_size,
            quiet=_stdout_silenced if self.settings.quiet else contextlib.nullcontext,
        )
        self._frame_collection = bpy.data.collections.new("simreal-frame")
        self.scene.collection.children.link(self._frame_collection)
        cam_data = bpy.data.cameras.new("simreal-camera")
        self._camera = bpy.data.objects.new("simreal-camera", cam_data)
        self.scene.collection.objects.link(self._camera)
        self.scene.camera = self._camera
        self._world = WorldBuilder(
            self.scene, self._materials, self.settings.hdri_root, self.settings.sky_strength
        )
        self.frames_rendered = 0
        self._id_lut: list[int] = [0]
        _open_backend = self
        log.info(
            "cycles backend ready: %s, %d samples, denoiser %s",
            self.device,
            self.settings.samples,
            self.settings.denoiser,
        )

    # ---- set-up --------------------------------------------------------------------------------------
    def _configure_render(self) -> None:
        s, sc = self.settings, self.scene
        cy = sc.cycles
        cy.use_adaptive_sampling = s.adaptive_sampling
        cy.adaptive_threshold = s.adaptive_threshold
        cy.adaptive_min_samples = s.adaptive_min_samples
        cy.max_bounces = s.max_bounces
        cy.diffuse_bounces = s.diffuse_bounces
        cy.glossy_bounces = s.glossy_bounces
        cy.transmission_bounces = s.transmission_bounces
        cy.transparent_max_bounces = s.transparent_bounces
        cy.sample_clamp_indirect = s.clamp_indirect
        cy.caustics_reflective = cy.caustics_refractive = False  # noise for no visible gain here
        cy.use_animated_seed = False
        sc.render.use_persistent_data = s.persistent_data
        sc.render.film_transparent = False
        sc.render.resolution_percentage = 100
        sc.render.use_border = False
        if s.threads:
            sc.render.threads_mode = "FIXED"
            sc.render.threads = s.threads
        sc.view_settings.view_transform = s.view_transform
        sc.view_settings.look = "None"
        sc.view_settings.exposure = s.exposure
        sc.view_settings.gamma = 1.0
        sc.display_settings.display_device = "sRGB"
        sc.sequencer_colorspace_settings.name = "sRGB"
        vl = sc.view_layers[0]
        vl.use_pass_z = True
        vl.use_pass_object_index = True
        vl.pass_alpha_threshold = 0.5  # a surface with alpha >= 0.5 owns the pixel in the label pass

    def _set_label_mode(self) -> None:
        """Settings of the label pass: one unfiltered centre sample, Object Index + Depth only."""
        sc, cy = self.scene, self.scene.cycles
        cy.samples = 1
        cy.use_adaptive_sampling = False
        cy.use_denoising = False
        cy.filter_width = LABEL_FILTER_WIDTH
        cy.pixel_filter_type = "BOX"
        # ids and depth come from the camera ray's first hit; no light transport needed
        cy.max_bounces = 0
        ims = sc.render.image_settings
        ims.media_type = "MULTI_LAYER_IMAGE"
        ims.file_format = "OPEN_EXR_MULTILAYER"
        ims.color_depth = "32"  # float32: ids up to 65535 stay exact
        ims.exr_codec = "NONE"  # fastest to write and read; the file lives for milliseconds
        ims.use_exr_interleave = True  # one part: see cycles_passes (multi-part fails with fx != fy)

    def _set_color_mode(self) -> None:
        s, sc, cy = self.settings, self.scene, self.scene.cycles
        cy.samples = s.samples
        cy.use_adaptive_sampling = s.adaptive_sampling
        cy.filter_width = s.filter_width
        cy.pixel_filter_type = "BLACKMAN_HARRIS"
        cy.max_bounces = s.max_bounces
        cy.use_denoising = s.denoiser != "none"
        if cy.use_denoising:
            cy.denoiser = "OPTIX" if s.denoiser == "optix" else "OPENIMAGEDENOISE"
            cy.denoising_input_passes = "RGB_ALBEDO_NORMAL"
            cy.denoising_prefilter = "ACCURATE"
            cy.denoising_quality = s.denoising_quality
            cy.denoising_use_gpu = cy.device == "GPU"
        ims = sc.render.image_settings
        ims.media_type = "IMAGE"
        ims.file_format = "PNG"
        ims.color_mode = "RGB"
        ims.color_depth = "8"
        ims.compression = 0  # the PNG is read back at once; compressing it is wasted time

    # ---- per image -----------------------------------------------------------------------------------
    def _sync(self, scene: Scene) -> None:
        self._materials.begin_frame()
        self._geometry.begin_frame()
        old = list(self._frame_collection.objects)
        if old:
            light_data = [o.data for o in old if o.type == "LIGHT"]
            bpy.data.batch_remove(old)
            if light_data:
                bpy.data.batch_remove(light_data)
        if len(scene.objects) > MAX_PASS_INDEX:
            raise SimrealError(
                "cycles",
                f"scene has {len(scene.objects)} objects; Blender's object index "
                f"pass holds at most {MAX_PASS_INDEX}",
            )
        self._id_lut = [0]  # pass index -> instance id; 0 = background
        self._sync_camera(scene)
        for i, light in enumerate(scene.lights):
            add_light(light, f"light-{i}", self._frame_collection)
        self._world.update(scene.environment, scene.lights, (scene.camera.width, scene.camera.height))
        for obj in scene.objects:
            parts = self._geometry.parts(obj.geometry)
            objs = instance_objects(
                parts, object_to_world(obj), f"inst-{obj.instance_id}", self._frame_collection
            )
            pass_index = len(self._id_lut)
            self._id_lut.append(obj.instance_id)
            for o, part in zip(objs, parts, strict=True):
                o.pass_index = pass_index
                self._assign_materials(o, part.mesh, obj.material)
        self.scene.cycles.seed = (scene.seed * 1_000_003 + scene.index) % (2**31)

    def _assign_materials(self, o, mesh, material) -> None:
        """Scene material overrides go on object-level slots, so instances sharing a mesh can differ."""
        for slot, mesh_mat in zip(o.material_slots, mesh.materials, strict=True):
            if material is not None or mesh_mat is None:
                slot.link = "OBJECT"
                slot.material = self._materials.material(material, mesh_mat)

    def _sync_camera(self, scene: Scene) -> None:
        cam = scene.camera
        p = blender_camera_params(cam)
        r = self.scene.render
        r.resolution_x, r.resolution_y = p.resolution_x, p.resolution_y
        r.pixel_aspect_x, r.pixel_aspect_y = p.pixel_aspect_x, p.pixel_aspect_y
        data = self._camera.data
        data.type = "PERSP"
        data.lens_unit = "MILLIMETERS"
        data.sensor_fit = "HORIZONTAL"
        data.sensor_width = p.sensor_width
        data.lens = p.lens
        data.shift_x, data.shift_y = p.shift_x, p.shift_y
        data.clip_start, data.clip_end = p.clip_start, p.clip_end
        self._camera.matrix_world = Matrix(pose_matrix(cam.pose).tolist())

    def _render_to(self, path: Path) -> None:
        self.scene.render.filepath = str(path)
        with _stdout_silenced() if self.settings.quiet else contextlib.nullcontext():
            result = bpy.ops.render.render(write_still=True)
        if "FINISHED" not in result or not path.is_file():
            raise SimrealError("cycles", f"render did not produce {path.name} ({result})")

    def render(self, scene: Scene) -> Frame:
        if self._closed:
            raise SimrealError("cycles", "backend is closed")
        timings: dict[str, float] = {}
        t0, cpu0 = time.perf_counter(), time.process_time()
        self._sync(scene)
        timings["sync"] = time.perf_counter() - t0

        t = time.perf_counter()
        label_path = self._tmp / "labels.exr"
        self._set_label_mode()
        self._render_to(label_path)
        passes = read_exr_passes(label_path, {"Object Index": "X", "Depth": "Z"})
        label_path.unlink()
        timings["render_ids"] = time.perf_counter() - t

        t = time.perf_counter()
        color_path = self._tmp / "color.png"
        self._set_color_mode()
        self._render_to(color_path)
        with Image.open(color_path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        color_path.unlink()
        timings["render_color"] = time.perf_counter() - t
        self._materials.end_frame()  # before the geometry: derived materials may use a mesh's label image
        self._geometry.end_frame()

        index = passes["Object Index"]
        index_int = np.rint(index).astype(np.int64)
        if (
            not np.array_equal(index_int, index)
            or index_int.min() < 0
            or index_int.max() >= len(self._id_lut)
        ):
            raise SimrealError("cycles", "object index pass holds values that are not this scene's indices")
        ids = np.asarray(self._id_lut, dtype=np.uint16)[index_int]
        depth = passes["Depth"]
        depth = np.where((ids > 0) & (depth < NO_HIT_DEPTH), depth, 0.0).astype(np.float32)
        timings["total"] = time.perf_counter() - t0
        # CPU seconds of all of Blender's threads: on a shared machine this, not wall time, is the cost
        timings["cpu"] = time.process_time() - cpu0
        self.frames_rendered += 1
        return Frame(rgb=rgb, depth=depth, instance_ids=ids, amodal=None, timings=timings)

    # ---- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        global _open_backend
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            bpy.data.batch_remove(list(self._frame_collection.objects))
        self._remove_tmp()
        if _open_backend is self:
            _open_backend = None

    def __enter__(self) -> CyclesBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _scratch_root() -> str | None:
    """A RAM-backed folder for the per-image pass files where the machine has a roomy one (a container's
    /dev/shm is often 64 MB: too small for the label pass of a 4K image)."""
    shm = Path("/dev/shm")
    try:
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= SCRATCH_MIN_FREE:
            return str(shm)
    except OSError:
        pass
    return None


@contextlib.contextmanager
def _stdout_silenced():
    """Hide output that C code (Cycles' progress lines) and Python (the glTF importer's log) write to
    file descriptor 1, so a worker's stdout stays readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
