"""Offscreen previews of catalog meshes: a 3/4-view thumbnail and an 8-view contact sheet.

pyrender on EGL (``PYOPENGL_PLATFORM=egl`` is set before pyrender is imported). One ``ThumbnailRenderer``
owns one GL context and is reused for every preview of a process (``shared_renderer()``): creating a context
and compiling shaders costs ~1 s, a thumbnail then ~0.1-0.2 s on two llvmpipe cores (a 15k-triangle scan;
geometry dominates, so faces are culled single-sided). STACK.md traps apply: use a renderer from the
thread that created it only (checked), and do not import torchvision in a process after one was created.

Look: pyrender has no environment lighting, so metal would render black except for a highlight. Several
camera-relative directional lights (key, fill, rim, top: pyrender's maximum of four) plus ambient light
keep metallic parts readable
and every side of a contact sheet lit the same way; the key light comes from near the camera so printed
labels are evenly lit. The background is a neutral light grey. Edges are smoothed by pyrender's 4x MSAA
(``supersample=2`` renders at twice the size on top, at four times the cost). The camera is fitted to the
mesh's projected vertices, one distance for all views of a sheet, so sizes compare between views.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFont

from synth.catalog import MaterialHints
from synth.fsutil import atomic_write_bytes
from synth.mesh import base_color_texture, srgb_to_linear, stored_factors

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import pyrender  # noqa: E402  (after PYOPENGL_PLATFORM is set)

THUMBNAIL_SIZE = 256
SUPERSAMPLE = 1
BACKGROUND_SRGB = (0.86, 0.86, 0.86)  # written to the framebuffer as is (display values)
YFOV_DEG = 22.0
FRAME_MARGIN = 0.08  # fraction of the half field of view left free around the object
THUMBNAIL_VIEW = (35.0, 25.0)  # (azimuth, elevation) degrees: a front-right 3/4 view
SHEET_AZIMUTHS = tuple(range(0, 360, 45))  # 8 views, 0 = front (camera on -Y looking +Y)
SHEET_ELEVATION = 20.0
SHEET_COLUMNS = 4
MAX_PREVIEW_TEXTURE = (
    512  # textures are downsampled to this for previews (faster upload, same look at 256 px)
)

# (azimuth offset, elevation, intensity) of each light relative to the camera: key, fill, rim, top. At most
# four: pyrender's shader takes four directional lights and silently drops others in set order, which
# made previews differ from run to run.
_LIGHTS = ((-30.0, 35.0, 2.2), (50.0, 10.0, 1.1), (160.0, 40.0, 1.2), (0.0, 89.0, 0.8))
_AMBIENT = 0.36


class ThumbnailRenderer:
    """A reusable offscreen renderer for previews. Not thread-safe: use it from the creating thread."""

    def __init__(self, size: int = THUMBNAIL_SIZE, supersample: int = SUPERSAMPLE):
        self.size = int(size)
        self.supersample = max(1, int(supersample))
        self._thread = threading.get_ident()
        side = self.size * self.supersample
        self._gl = pyrender.OffscreenRenderer(side, side)

    # ---- public ------------------------------------------------------------------------------------
    def render(
        self,
        mesh: trimesh.Trimesh,
        material: MaterialHints | None = None,
        azimuth_deg: float = THUMBNAIL_VIEW[0],
        elevation_deg: float = THUMBNAIL_VIEW[1],
    ) -> np.ndarray:
        """One view as an (size, size, 3) uint8 sRGB image."""
        return self.render_views(mesh, [(azimuth_deg, elevation_deg)], material)[0]

    def render_views(
        self,
        mesh: trimesh.Trimesh,
        views: Sequence[tuple[float, float]],
        material: MaterialHints | None = None,
    ) -> list[np.ndarray]:
        """Several (azimuth, elevation) views at one common camera distance, so sizes compare across views."""
        self._check_thread()
        primitive_mesh = pyrender.Mesh([_primitive(mesh, material)])
        points = np.asarray(mesh.vertices, dtype=np.float64)  # projecting every vertex is cheap in numpy
        poses = [_look_at(az, el) for az, el in views]
        distance = max(_fit_distance(points, pose[:3, :3]) for pose in poses)
        radius = float(np.linalg.norm(points, axis=1).max())
        camera = pyrender.PerspectiveCamera(
            yfov=math.radians(YFOV_DEG),
            znear=max(distance - radius * 1.5, distance * 1e-3),
            zfar=distance + radius * 1.5,
        )
        images = []
        for pose in poses:
            cam_pose = pose.copy()
            cam_pose[:3, 3] = pose[:3, 2] * distance
            scene = pyrender.Scene(bg_color=[*BACKGROUND_SRGB, 1.0], ambient_light=[_AMBIENT] * 3)
            scene.add(primitive_mesh)
            scene.add(camera, pose=cam_pose)
            for az, el, intensity in _LIGHTS:
                light_pose = cam_pose.copy()
                light_pose[:3, :3] = cam_pose[:3, :3] @ _look_at(az, el)[:3, :3]
                scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=intensity), pose=light_pose)
            color, _ = self._gl.render(scene)
            img = Image.fromarray(color[..., :3])
            if self.supersample > 1:
                img = img.resize((self.size, self.size), Image.Resampling.LANCZOS)
            images.append(np.asarray(img))
        return images

    def close(self) -> None:
        if self._gl is not None:
            self._check_thread()
            self._gl.delete()
            self._gl = None

    def _check_thread(self) -> None:
        if self._gl is None:
            raise RuntimeError("this ThumbnailRenderer was closed")
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                "a ThumbnailRenderer must be used from the thread that created it "
                "(pyrender/EGL contexts are per thread; render in worker processes instead)"
            )


_shared: ThumbnailRenderer | None = None
_shared_pid: int | None = None


def shared_renderer() -> ThumbnailRenderer:
    """The process's renderer, created on first use (a forked child gets its own)."""
    global _shared, _shared_pid
    if _shared is None or _shared_pid != os.getpid():
        _shared = ThumbnailRenderer()
        _shared_pid = os.getpid()
    return _shared


@atexit.register
def _close_shared() -> None:
    global _shared
    if _shared is not None and _shared_pid == os.getpid():
        try:
            _shared.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
    _shared = None


def thumbnail_image(
    mesh: trimesh.Trimesh, material: MaterialHints | None = None, renderer: ThumbnailRenderer | None = None
) -> Image.Image:
    return Image.fromarray((renderer or shared_renderer()).render(mesh, material))


def save_thumbnail(
    mesh: trimesh.Trimesh,
    out_png: str | Path,
    material: MaterialHints | None = None,
    renderer: ThumbnailRenderer | None = None,
) -> Path:
    """Render the 3/4 view and write it as PNG (atomic)."""
    out_png = Path(out_png)
    atomic_write_bytes(out_png, _png(thumbnail_image(mesh, material, renderer)))
    return out_png


def contact_sheet_image(
    mesh: trimesh.Trimesh,
    title: str,
    subtitle: str = "",
    material: MaterialHints | None = None,
    renderer: ThumbnailRenderer | None = None,
) -> Image.Image:
    """Eight azimuths in a 4x2 grid under a title band."""
    renderer = renderer or shared_renderer()
    views = [(float(az), SHEET_ELEVATION) for az in SHEET_AZIMUTHS]
    tiles = renderer.render_views(mesh, views, material)
    tile = renderer.size
    gap = 2
    rows = math.ceil(len(tiles) / SHEET_COLUMNS)
    band = 64
    width = SHEET_COLUMNS * tile + (SHEET_COLUMNS - 1) * gap
    sheet = Image.new("RGB", (width, band + rows * tile + (rows - 1) * gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.rectangle([0, 0, width, band - 1], fill=(46, 52, 64))
    draw.text((14, 8), _fit_text(draw, title, _font(24), width - 28), font=_font(24), fill=(255, 255, 255))
    if subtitle:
        draw.text(
            (14, 38), _fit_text(draw, subtitle, _font(15), width - 28), font=_font(15), fill=(216, 222, 233)
        )
    small = _font(12)
    for i, (img, (az, _)) in enumerate(zip(tiles, views, strict=True)):
        x = (i % SHEET_COLUMNS) * (tile + gap)
        y = band + (i // SHEET_COLUMNS) * (tile + gap)
        sheet.paste(Image.fromarray(img), (x, y))
        draw.text((x + 6, y + tile - 18), f"azimuth {az:.0f}°", font=small, fill=(90, 90, 90))
    return sheet


def save_contact_sheet(
    mesh: trimesh.Trimesh,
    out_png: str | Path,
    title: str,
    subtitle: str = "",
    material: MaterialHints | None = None,
    renderer: ThumbnailRenderer | None = None,
) -> Path:
    out_png = Path(out_png)
    atomic_write_bytes(out_png, _png(contact_sheet_image(mesh, title, subtitle, material, renderer)))
    return out_png


# ---- scene construction --------------------------------------------------------------------------------
def _primitive(mesh: trimesh.Trimesh, hints: MaterialHints | None) -> pyrender.Primitive:
    """A pyrender primitive built here rather than by ``pyrender.Mesh.from_trimesh``: the factors are the
    ones the GLB is stored with (``stored_factors``: the mesh's own material, else the catalog hints), sRGB
    vertex colours are linearised, and textures are reduced to preview size."""
    base, metallic, roughness = stored_factors(mesh, hints or MaterialHints())
    base = np.asarray(base, dtype=np.float64)
    texture = None
    texcoord = None
    color_0 = None
    metal_rough = None
    img = base_color_texture(mesh)
    if img is not None:
        texture = pyrender.Texture(
            source=np.asarray(_preview_size(img).convert("RGB")), source_channels="RGB"
        )
        texcoord = np.asarray(mesh.visual.uv, dtype=np.float32)
        mr = getattr(mesh.visual.material, "metallicRoughnessTexture", None)
        if mr is not None:  # a baked atlas: per-part metal and roughness (pyrender takes glTF's G, B itself)
            metal_rough = np.asarray(_preview_size(mr).convert("RGB"))
    elif isinstance(mesh.visual, trimesh.visual.ColorVisuals) and mesh.visual.kind in ("vertex", "face"):
        # in-memory colours are sRGB bytes; pyrender multiplies linear colour by COLOR_0
        rgba = np.asarray(mesh.visual.vertex_colors, dtype=np.float64) / 255.0
        rgba[:, :3] = srgb_to_linear(rgba[:, :3])
        color_0 = rgba.astype(np.float32)
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=base,
        metallicFactor=float(metallic),
        roughnessFactor=float(roughness),
        baseColorTexture=texture,
        metallicRoughnessTexture=metal_rough,
        alphaMode="OPAQUE",  # single-sided: back-face culling halves llvmpipe's time
    )
    return pyrender.Primitive(
        positions=np.asarray(mesh.vertices, dtype=np.float32),
        normals=np.asarray(mesh.vertex_normals, dtype=np.float32),
        texcoord_0=texcoord,
        color_0=color_0,
        indices=np.asarray(mesh.faces, dtype=np.uint32),
        material=material,
        mode=4,
    )


def _preview_size(img: Image.Image) -> Image.Image:
    """At most MAX_PREVIEW_TEXTURE on a side, and a width that is a multiple of 4: pyrender uploads rows
    with OpenGL's default 4-byte alignment, so a 354-pixel-wide RGB texture would come out sheared and
    grey."""
    w, h = img.size
    f = min(1.0, MAX_PREVIEW_TEXTURE / max(w, h))
    size = (max(4, int(round(w * f / 4)) * 4), max(1, int(round(h * f))))
    return img if size == img.size else img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _look_at(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Rotation of a camera on the unit sphere looking at the origin (OpenGL axes, world +Z up).
    Azimuth 0 puts the camera on -Y (the front), 90 on +X."""
    az = math.radians(azimuth_deg)
    el = math.radians(max(-89.0, min(89.0, elevation_deg)))
    z = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, y, z
    return pose


def _fit_distance(points: np.ndarray, rotation: np.ndarray) -> float:
    """Smallest camera distance at which every point projects inside the field of view less the margin."""
    local = points @ rotation  # camera-frame coordinates of points (camera at the origin's direction +z)
    t = math.tan(math.radians(YFOV_DEG) / 2) * (1.0 - FRAME_MARGIN)
    need = local[:, 2] + np.maximum(np.abs(local[:, 0]), np.abs(local[:, 1])) / t
    return float(max(need.max(), 1e-6))


# ---- 2D helpers ----------------------------------------------------------------------------------------
_FONTS: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font: no system font needed on a headless machine."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _png(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
