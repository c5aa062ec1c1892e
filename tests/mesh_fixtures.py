"""Small mesh files written on the fly for the importer and catalog tests (no binary fixtures in the repo)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

SHARED = Path(os.environ.get("SIMREAL_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
SHARED_MESHES = SHARED / "meshes"


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A texture whose every texel differs, so a wrong UV mapping or a resized image is detectable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), rng.integers(0, 256, (height, width))],
        axis=-1,
    ).astype(np.uint8)
    return Image.fromarray(img)


def box_obj_text(extents, uv_seed: int = 0, mtllib: str | None = "box.mtl", material: str = "skin") -> str:
    """OBJ text of a box (centred at ``extents/2`` so the importer has to re-centre it), one UV per corner."""
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(np.asarray(extents) / 2.0)
    tris = box.vertices[box.faces].reshape(-1, 3)
    uv = np.random.default_rng(uv_seed).uniform(0.05, 0.95, (len(tris), 2))
    lines = [f"mtllib {mtllib}"] if mtllib else []
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in tris]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    if mtllib:
        lines.append(f"usemtl {material}")
    lines += [f"f {i + 1}/{i + 1} {i + 2}/{i + 2} {i + 3}/{i + 3}" for i in range(0, len(tris), 3)]
    return "\n".join(lines) + "\n"


def write_textured_obj(
    folder: Path,
    extents=(6.0, 4.0, 12.0),
    texture_size=(40, 30),
    map_line: str = "map_Kd texture.png",
    write_texture: bool = True,
    name: str = "box",
) -> Path:
    """box.obj + box.mtl + texture.png (extents in the file's units: centimetres by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    obj = folder / f"{name}.obj"
    obj.write_text(box_obj_text(extents, mtllib=f"{name}.mtl"))
    (folder / f"{name}.mtl").write_text(f"newmtl skin\nKd 0.8 0.8 0.8\n{map_line}\n")
    if write_texture:
        gradient_image(*texture_size).save(folder / "texture.png")
    return obj


def write_stl(path: Path, mesh: trimesh.Trimesh) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mesh.export(file_type="stl"))
    return path


def hex_prism(across_flats: float = 10.0, height: float = 5.2) -> trimesh.Trimesh:
    """A hexagonal prism in millimetres, a stand-in for a nut without the shared meshes."""
    r = across_flats / 2.0 / np.cos(np.pi / 6)
    angles = np.arange(6) * np.pi / 3
    poly = np.column_stack([r * np.cos(angles), r * np.sin(angles)])
    from shapely.geometry import Polygon

    return trimesh.creation.extrude_polygon(Polygon(poly), height)


def colored_sphere(radius: float = 0.04, seed: int = 0) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (len(mesh.vertices), 4), dtype=np.uint8)
    colors[:, 3] = 255
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colors)
    return mesh


def textured_part(
    extents, color, texture_size, seed: int = 0, roughness: float = 0.8, metallic: float = 0.0
) -> trimesh.Trimesh:
    """A box with its own single-colour texture, to check atlas baking keeps each part's colour."""
    box = trimesh.creation.box(extents=extents)
    box.unmerge_vertices()
    uv = np.random.default_rng(seed).uniform(0.1, 0.9, (len(box.vertices), 2))
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.new("RGB", texture_size, color),
        roughnessFactor=roughness,
        metallicFactor=metallic,
    )
    box.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return box


def directory_snapshot(root: Path) -> list[tuple[str, str, bytes]]:
    """Every path under ``root`` with its kind and bytes: equal snapshots mean an untouched catalog."""
    if not root.exists():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out.append((rel, "dir" if p.is_dir() else "file", b"" if p.is_dir() else p.read_bytes()))
    return out


# ---- rendering in a spawned process --------------------------------------------------------------------
# pyrender never runs in the pytest process: an EGL context followed by a torchvision import (another test
# file) segfaults (../shared/STACK.md). Functions named w_* run in a ``RenderWorker`` child.
class RenderWorker:
    """One spawned interpreter that owns the EGL context for a test module."""

    def __init__(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def call(self, fn, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def w_renderer_problem() -> str | None:
    """None when an offscreen EGL context can be created here, else why not."""
    try:
        from synth.thumbnail import shared_renderer

        shared_renderer()
        return None
    except Exception as e:  # noqa: BLE001 - missing libEGL / no device surface as many exception types
        return f"{type(e).__name__}: {e}"


def w_add_mesh(root: str, path: str, **kwargs) -> tuple[dict, list[str]]:
    from synth.catalog import Catalog
    from synth.sku import add_mesh

    said: list[str] = []
    record = add_mesh(Catalog(root), path, echo=said.append, **kwargs)
    return record.model_dump(mode="json"), said


def w_write_entry(root: str, record_json: dict, mesh: trimesh.Trimesh) -> dict:
    from synth.catalog import Catalog, SkuRecord
    from synth.sku import write_entry

    return write_entry(Catalog(root), SkuRecord.model_validate(record_json), mesh).model_dump(mode="json")


def w_contact_sheet(root: str, sku_id: str, out: str) -> str:
    from synth.catalog import Catalog
    from synth.sku import contact_sheet

    return str(contact_sheet(Catalog(root), sku_id, out))


def w_thumbnails_reuse_one_context(root: str, stl: str, n: int) -> int:
    """Add ``n`` entries with thumbnails; return how many GL contexts were created."""
    import pyrender

    from synth.catalog import Catalog
    from synth.sku import add_mesh
    from synth.thumbnail import shared_renderer

    shared_renderer()  # the process's context exists before counting
    created = []
    original = pyrender.OffscreenRenderer

    def counting(*a, **k):
        created.append(1)
        return original(*a, **k)

    pyrender.OffscreenRenderer = counting
    try:
        for i in range(n):
            add_mesh(Catalog(root), stl, name=f"Nut {i}", category="nut", echo=None)
        return len(created)
    finally:
        pyrender.OffscreenRenderer = original


def w_render_from_other_thread() -> str:
    import threading

    from synth.thumbnail import shared_renderer

    renderer = shared_renderer()
    box = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    errors: list[str] = []

    def worker():
        try:
            renderer.render(box)
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    return errors[0] if errors else ""


def w_thumbnail_png(root: str, mesh_path: str, **kwargs) -> bytes:
    """Import a mesh with a thumbnail and return the thumbnail's PNG bytes."""
    from synth.catalog import Catalog
    from synth.sku import add_mesh

    record = add_mesh(Catalog(root), mesh_path, echo=None, **kwargs)
    return Catalog(root).thumbnail_path(record).read_bytes()


# Ways a file stored beside a catalog mesh goes bad, as (id, damage(path, another mesh's stored file));
# parametrize a test with ``ids=[i for i, _ in STORED_FILE_DAMAGES]``.
STORED_FILE_DAMAGES = [
    ("garbage", lambda p, other: p.write_bytes(b"not a zip")),
    ("truncated", lambda p, other: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    ("stale", lambda p, other: shutil.copyfile(other, p)),  # another mesh's file: digest / key differs
    ("missing", lambda p, other: p.unlink()),
]
