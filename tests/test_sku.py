"""`simreal sku add | list | show` operations: imports into a real catalog, ten kinds of bad input leaving
the catalog byte-identical, the single writer used by the procedural library, thumbnails and contact
sheets rendered with pyrender on EGL -- in a spawned worker, never in the pytest process (STACK.md)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import trimesh
import yaml
from mesh_fixtures import (
    SHARED_MESHES,
    RenderWorker,
    box_obj_text,
    colored_sphere,
    directory_snapshot,
    gradient_image,
    hex_prism,
    w_add_mesh,
    w_contact_sheet,
    w_render_from_other_thread,
    w_renderer_problem,
    w_thumbnail_png,
    w_thumbnails_reuse_one_context,
    w_write_entry,
    write_stl,
    write_textured_obj,
)
from PIL import Image

from synth.catalog import Catalog, MaterialHints, SkuRecord, Source
from synth.errors import AssetError
from synth.mesh import read_glb
from synth.sku import add_asset, add_mesh, contact_sheet, list_records, write_entry

BACKGROUND = np.array([round(0.86 * 255)] * 3)


def glb_json(path) -> dict:
    import json
    import struct

    data = path.read_bytes()
    return json.loads(data[20 : 20 + struct.unpack_from("<I", data, 12)[0]])


@pytest.fixture(scope="module")
def render():
    """A spawned worker that can render thumbnails; skipped (with the reason) where EGL is unavailable."""
    worker = RenderWorker()
    problem = worker.call(w_renderer_problem)
    if problem:
        worker.close()
        pytest.skip(f"no offscreen OpenGL (EGL) context: {problem}")
    yield worker
    worker.close()


def object_mask(img: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - BACKGROUND).max(axis=-1) > 12


def quiet(_: str) -> None:
    pass


@pytest.fixture
def catalog(tmp_path):
    """A catalog that already holds one imported entry (no thumbnail: not needed for these checks)."""
    cat = Catalog(tmp_path / "catalog")
    obj = write_textured_obj(tmp_path / "existing")
    add_mesh(cat, obj, name="Existing box", category="box", thumbnail=False, echo=quiet)
    return cat


# ---- ten kinds of bad input ------------------------------------------------------------------------------
def _bad_inputs(tmp):
    """(case id, path, add_mesh kwargs, path that must be named, phrase that must be in the message)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cases = []
    cases.append(("missing file", tmp / "nope.obj", {}, "nope.obj", "file not found"))
    fbx = tmp / "model.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00")
    cases.append(("unsupported extension", fbx, {}, "model.fbx", "unsupported format '.fbx'"))
    empty = tmp / "empty.stl"
    empty.write_bytes(b"")
    cases.append(("empty file", empty, {}, "empty.stl", "file is empty"))
    rng = np.random.default_rng(7)
    for suffix in (".glb", ".stl", ".ply", ".obj"):
        g = tmp / f"garbage{suffix}"
        g.write_bytes(rng.integers(0, 256, 3001, dtype=np.uint8).tobytes())
        cases.append((f"garbage bytes {suffix}", g, {}, g.name, ""))
    points = tmp / "points.obj"
    points.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    cases.append(("zero faces", points, {}, "points.obj", "contains no triangle faces"))
    nan = tmp / "nan.obj"
    nan.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 3 4\n")
    cases.append(("NaN vertices", nan, {}, "nan.obj", "NaN or infinite"))
    huge = write_stl(tmp / "building.stl", trimesh.creation.box(extents=[1000.0, 800.0, 300.0]))
    cases.append(("absurd size", huge, {"units": "m"}, "building.stl", "absurd size 1 km after units=m"))
    no_tex = write_textured_obj(tmp / "no_texture", write_texture=False)
    cases.append(("missing texture", no_tex, {}, "box.mtl", "texture 'texture.png' (map_Kd"))
    bad_tex = write_textured_obj(tmp / "bad_texture", write_texture=False)
    (tmp / "bad_texture" / "texture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cases.append(("unreadable texture", bad_tex, {}, "texture.png", "is not a readable image"))
    dup = write_textured_obj(tmp / "dup")
    cases.append(
        ("duplicate id", dup, {"name": "Existing box"}, "existing-box", "entry already exists (use --replace")
    )
    ok = write_textured_obj(tmp / "ok")
    cases.append(("empty name", ok, {"name": "   "}, "box.obj", "name must not be empty"))
    cases.append(("empty category", ok, {"category": ""}, "box.obj", "category must not be empty"))
    flat = tmp / "flat.obj"
    flat.write_text("v 0 0 0\nv 10 0 0\nv 10 10 0\nv 0 10 0\nf 1 2 3\nf 1 3 4\n")
    cases.append(("degenerate flat", flat, {}, "flat.obj", "degenerate: flat or zero-volume"))
    return cases


_CASE_IDS = [
    "missing file",
    "unsupported extension",
    "empty file",
    "garbage bytes .glb",
    "garbage bytes .stl",
    "garbage bytes .ply",
    "garbage bytes .obj",
    "zero faces",
    "NaN vertices",
    "absurd size",
    "missing texture",
    "unreadable texture",
    "duplicate id",
    "empty name",
    "empty category",
    "degenerate flat",
]


def test_bad_input_cases_are_all_run(tmp_path):
    assert [c[0] for c in _bad_inputs(tmp_path)] == _CASE_IDS


@pytest.mark.parametrize("case", _CASE_IDS)
def test_bad_input_is_one_line_error_and_catalog_is_unchanged(case, catalog, tmp_path):
    _, path, kwargs, named, phrase = next(c for c in _bad_inputs(tmp_path / "bad") if c[0] == case)
    before = directory_snapshot(catalog.root)
    args = {"name": "Bad thing", "category": "thing", "echo": quiet, "thumbnail": False, **kwargs}
    with pytest.raises(AssetError) as err:
        add_mesh(catalog, path, **args)
    message = str(err.value)
    assert "\n" not in message
    assert named in message and phrase in message, message
    assert err.value.problem and err.value.where
    assert directory_snapshot(catalog.root) == before


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # the random floats of `lucky`
def test_garbage_messages_say_what_was_expected(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    expected = {
        ".glb": "not a binary glTF",
        ".stl": "not a valid STL file",
        ".ply": "cannot be read as PLY",
        ".obj": "not a valid OBJ file",
    }
    for case, path, *_ in _bad_inputs(tmp_path / "bad"):
        if case.startswith("garbage"):
            with pytest.raises(AssetError, match=expected[path.suffix]):
                add_mesh(cat, path, name="x", category="x", echo=quiet, thumbnail=False)
    # garbage that happens to have a binary STL's exact size parses, and is then caught by the geometry checks
    n = 40
    blob = bytearray(np.random.default_rng(1).integers(0, 256, 84 + 50 * n, dtype=np.uint8).tobytes())
    blob[80:84] = n.to_bytes(4, "little")
    lucky = tmp_path / "lucky.stl"
    lucky.write_bytes(bytes(blob))
    with pytest.raises(AssetError, match="NaN or infinite|absurd size|degenerate|zero area"):
        add_mesh(cat, lucky, name="x", category="x", echo=quiet, thumbnail=False)
    assert not cat.root.exists()  # nothing was created for a failed import


# ---- imports -------------------------------------------------------------------------------------------
def test_add_obj_writes_entry_record_glb_and_thumbnail(tmp_path, render):
    cat = Catalog(tmp_path / "catalog")
    obj = write_textured_obj(tmp_path / "src", extents=(6.0, 4.0, 12.0), texture_size=(40, 30))
    data, said = render.call(
        w_add_mesh, str(cat.root), str(obj), name="Tea box", category="tea", license="CC-BY-4.0"
    )
    record = SkuRecord.model_validate(data)
    assert record.id == "tea-box" and cat.ids() == ["tea-box"]
    assert record.size_m == pytest.approx((0.06, 0.04, 0.12))
    assert record.material.textured and record.source.original_units == "cm"
    assert record.source.license == "CC-BY-4.0" and record.source.path == str(obj.resolve())
    assert any("units: cm" in s for s in said) and any(s.startswith("added 'tea-box'") for s in said)
    assert cat.get("tea-box") == record
    stored = read_glb(cat.mesh_path(record))
    assert stored.extents == pytest.approx(record.size_m, abs=1e-7)
    thumb = np.asarray(Image.open(cat.thumbnail_path(record)))
    assert thumb.shape == (256, 256, 3)
    mask = object_mask(thumb)
    ys, xs = np.nonzero(mask)
    assert max(np.ptp(xs), np.ptp(ys)) > 0.6 * 256  # framed tightly
    assert abs((xs.min() + xs.max()) / 2 - 128) < 40 and abs((ys.min() + ys.max()) / 2 - 128) < 40
    assert len(np.unique(thumb[mask].reshape(-1, 3) // 32, axis=0)) > 20  # the gradient texture shows


def test_thumbnail_of_a_texture_with_an_unaligned_width_keeps_its_colour(tmp_path, render):
    # 354 px * 3 bytes is not a multiple of OpenGL's 4-byte row alignment: uploaded as is it shears to grey
    folder = tmp_path / "src"
    obj = write_textured_obj(folder, write_texture=False)
    Image.new("RGB", (354, 230), (220, 30, 30)).save(folder / "texture.png")
    cat = Catalog(tmp_path / "catalog")
    record = SkuRecord.model_validate(
        render.call(w_add_mesh, str(cat.root), str(obj), name="Red", category="red")[0]
    )
    thumb = np.asarray(Image.open(cat.thumbnail_path(record))).astype(int)
    pixels = thumb[object_mask(thumb.astype(np.uint8))]
    assert (pixels[:, 0] > pixels[:, 1] + 60).mean() > 0.95


def test_add_stl_with_material_hints_renders_visible_metal(tmp_path, render):
    cat = Catalog(tmp_path / "catalog")
    stl = write_stl(tmp_path / "nut.stl", hex_prism(10.0, 5.2))
    hints = MaterialHints(base_color=(0.7, 0.7, 0.72, 1.0), metallic=1.0, roughness=0.35, finish="zinc")
    data, _ = render.call(
        w_add_mesh,
        str(cat.root),
        str(stl),
        name="M6 nut",
        category="nut",
        supercategory="industrial",
        material=hints,
        symmetry="discrete",
        symmetry_order=6,
    )
    record = SkuRecord.model_validate(data)
    assert record.material == hints and record.symmetry_order == 6
    assert record.size_m == pytest.approx((10 / math.cos(math.pi / 6) / 1000, 0.010, 0.0052), rel=1e-4)
    thumb = np.asarray(Image.open(cat.thumbnail_path(record)))
    metal = thumb[object_mask(thumb)].astype(float)
    assert len(metal) > 0.15 * 256 * 256
    assert metal.mean() > 60 and metal.std() > 10  # metal is lit, not black, and shaded (not flat)


def test_add_ply_keeps_vertex_colours(tmp_path, render):
    cat = Catalog(tmp_path / "catalog")
    path = tmp_path / "scan.ply"
    path.write_bytes(colored_sphere(0.04).export(file_type="ply"))
    record = SkuRecord.model_validate(
        render.call(w_add_mesh, str(cat.root), str(path), name="Ball", category="ball")[0]
    )
    assert not record.material.textured and record.material.base_color == (1.0, 1.0, 1.0, 1.0)
    assert read_glb(cat.mesh_path(record)).visual.kind == "vertex"
    thumb = np.asarray(Image.open(cat.thumbnail_path(record)))
    assert len(np.unique(thumb[object_mask(thumb)] // 64, axis=0)) > 10  # random colours, not one grey


def test_replace_overwrites_atomically(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    obj = write_textured_obj(tmp_path / "src")
    first = add_mesh(cat, obj, name="Box", category="box", thumbnail=False, echo=quiet)
    stl = write_stl(tmp_path / "other.stl", trimesh.creation.box(extents=[20.0, 30.0, 40.0]))
    second = add_mesh(cat, stl, name="Box", category="box", replace=True, thumbnail=False, echo=quiet)
    assert cat.ids() == ["box"] and second.size_m != first.size_m
    assert cat.get("box").source.path.endswith("other.stl")
    assert sorted(p.name for p in cat.root.iterdir()) == ["box"]  # no temporary or old folders left


def test_explicit_id_and_units(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    obj = tmp_path / "plain.obj"
    obj.write_text(box_obj_text((2.0, 3.0, 4.0), mtllib=None))
    record = add_mesh(
        cat,
        obj,
        name="Spacer",
        category="spacer",
        sku_id="spacer-2in",
        units="in",
        thumbnail=False,
        echo=quiet,
    )
    assert record.id == "spacer-2in" and record.source.original_units == "in"
    assert record.size_m == pytest.approx((0.0508, 0.0762, 0.1016))
    with pytest.raises(AssetError, match="id: .*lowercase"):
        add_mesh(
            cat,
            obj,
            name="Spacer",
            category="spacer",
            sku_id="Bad ID",
            units="in",
            thumbnail=False,
            echo=quiet,
        )


# ---- the single writer ---------------------------------------------------------------------------------
def _record(mesh, **kw) -> SkuRecord:
    base = dict(
        id="gen-box-1",
        name="Generated box",
        category="box",
        supercategory="retail",
        size_m=tuple(float(x) for x in mesh.extents),
        source=Source(kind="procedural", generator="box", seed=1),
    )
    base.update(kw)
    return SkuRecord(**base)


def _textured_box():
    box = trimesh.creation.box(extents=[0.08, 0.05, 0.15])
    box.unmerge_vertices()
    uv = np.random.default_rng(3).uniform(0, 1, (len(box.vertices), 2))
    box.visual = trimesh.visual.TextureVisuals(
        uv=uv, material=trimesh.visual.material.PBRMaterial(baseColorTexture=gradient_image(64, 64))
    )
    return box


def test_write_entry_centres_and_stores_a_procedural_mesh(tmp_path, render):
    cat = Catalog(tmp_path / "catalog")
    box = _textured_box()
    box.apply_translation([0.0, 0.0, 0.075])  # resting on z = 0, as generators like to build
    record = _record(box, material=MaterialHints(roughness=0.7))
    stored = SkuRecord.model_validate(
        render.call(w_write_entry, str(cat.root), record.model_dump(mode="json"), box)
    )
    assert stored.material.textured  # follows the mesh even if the record said otherwise
    glb = read_glb(cat.mesh_path(stored))
    assert np.allclose(glb.bounds.mean(axis=0), 0.0, atol=1e-7)
    assert cat.thumbnail_path(stored).is_file() and stored.thumbnail == "thumbnail.png"


def test_a_mesh_keeps_its_own_material_and_hints_only_describe_it(tmp_path):
    # a procedural label: texture + metallic-roughness map with factors 1; the hints give its background
    box = _textured_box()
    mr = Image.new("RGB", (64, 64), (0, 80, 255))
    box.visual.material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=gradient_image(64, 64),
        metallicRoughnessTexture=mr,
        metallicFactor=1.0,
        roughnessFactor=1.0,
    )
    cat = Catalog(tmp_path / "catalog")
    hints = MaterialHints(
        base_color=(0.6, 0.1, 0.1, 1.0),
        metallic=0.75,
        roughness=0.3,
        textured=True,
        finish="printed_aluminium",
    )
    stored = write_entry(cat, _record(box, material=hints), box, thumbnail=False)
    assert stored.material == hints
    tree = glb_json(cat.mesh_path(stored))
    pbr = tree["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]  # the label is not tinted by the description
    assert (pbr["metallicFactor"], pbr["roughnessFactor"]) == (1.0, 1.0) and "metallicRoughnessTexture" in pbr


def test_material_given_for_a_textured_import_reaches_the_glb(tmp_path):
    path = tmp_path / "label.glb"
    path.write_bytes(_textured_box().export(file_type="glb"))
    hints = MaterialHints(metallic=0.0, roughness=0.25, finish="glossy_print")
    record = add_mesh(
        Catalog(tmp_path / "catalog"),
        path,
        name="Glossy",
        category="box",
        material=hints,
        thumbnail=False,
        echo=quiet,
    )
    assert record.material == hints.model_copy(update={"textured": True})
    pbr = glb_json(Catalog(tmp_path / "catalog").mesh_path(record))["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"] == pytest.approx(list(hints.base_color), abs=1 / 255)
    assert (pbr["metallicFactor"], pbr["roughnessFactor"]) == (0.0, 0.25)


def test_write_entry_rejects_a_record_that_does_not_describe_the_mesh(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    box = _textured_box()
    with pytest.raises(AssetError, match=r"size_m .* does not match the mesh extents"):
        write_entry(cat, _record(box, size_m=(0.08, 0.05, 0.30)), box)
    assert not cat.root.exists()


def test_write_entry_without_thumbnail(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    box = _textured_box()
    stored = write_entry(cat, _record(box), box, thumbnail=False)
    assert stored.thumbnail is None and not (cat.entry_dir(stored.id) / "thumbnail.png").exists()
    assert yaml.safe_load((cat.entry_dir(stored.id) / "sku.yaml").read_text())["thumbnail"] is None


def test_add_asset_builds_the_record(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    mesh = trimesh.creation.cylinder(radius=0.033, height=0.12)
    record = add_asset(
        cat,
        mesh,
        name="Soda can",
        category="can",
        supercategory="retail",
        source=Source(kind="procedural", generator="can", seed=4),
        material=MaterialHints(metallic=0.8, roughness=0.3),
        symmetry="cylindrical",
        thumbnail=False,
    )
    assert record.id == "soda-can" and record.symmetry == "cylindrical"
    assert record.size_m == pytest.approx((0.066, 0.066, 0.12), rel=1e-3)
    assert cat.get("soda-can").material.metallic == 0.8
    with pytest.raises(AssetError, match="entry already exists"):
        add_asset(
            cat,
            mesh,
            name="Soda can",
            category="can",
            supercategory="retail",
            source=Source(kind="procedural", generator="can", seed=4),
            thumbnail=False,
        )


# ---- list / show ---------------------------------------------------------------------------------------
def test_list_records_table(catalog, tmp_path):
    stl = write_stl(tmp_path / "nut.stl", hex_prism())
    add_mesh(
        catalog,
        stl,
        name="M6 nut",
        category="nut",
        supercategory="industrial",
        thumbnail=False,
        material=MaterialHints(metallic=1.0, roughness=0.3, finish="zinc"),
        echo=quiet,
    )
    table = list_records(catalog)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "CATEGORY", "SUPER"]
    nut = next(line for line in lines if line.startswith("m6-nut"))
    assert "11.5 x 10 x 5.2" in nut and "metal (zinc)" in nut and "import nut.stl [mm]" in nut
    assert "textured" in next(line for line in lines if line.startswith("existing-box"))
    assert lines[-1].startswith("2 entries, 2 categories")


def test_list_records_empty_and_broken(tmp_path, catalog):
    assert "no entries" in list_records(Catalog(tmp_path / "nothing"))
    (catalog.entry_dir("existing-box") / "sku.yaml").write_text("id: [unclosed")
    table = list_records(catalog)
    assert "!! unreadable record" in table and "1 unreadable" in table


def test_contact_sheet_of_every_side(catalog, tmp_path, render):
    out = render.call(w_contact_sheet, str(catalog.root), "existing-box", str(tmp_path / "sheet.png"))
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (64 + 2 * 256 + 2, 4 * 256 + 3 * 2, 3)
    assert sheet[:64].mean() < 100  # the dark title band carries the name
    sizes = []
    for i in range(8):
        x, y = (i % 4) * 258, 64 + (i // 4) * 258
        tile = sheet[y : y + 256, x : x + 256]
        mask = object_mask(tile)
        mask[-22:, :120] = False  # the azimuth label
        assert mask.mean() > 0.05, f"view {i} is empty"
        sizes.append(mask.mean())
    # one camera distance for all views: a 4 x 6 x 12 box shows its wide and narrow sides differently
    assert max(sizes) / min(sizes) > 1.2
    with pytest.raises(AssetError, match="no catalog entry 'nope'"):
        contact_sheet(catalog, "nope", tmp_path / "x.png")


@pytest.mark.skipif(not SHARED_MESHES.is_dir(), reason=f"shared meshes not found at {SHARED_MESHES}")
@pytest.mark.shared
def test_shared_cracker_box_thumbnail_is_red_and_upright(tmp_path, render):
    cat = Catalog(tmp_path / "catalog")
    data, _ = render.call(
        w_add_mesh,
        str(cat.root),
        str(SHARED_MESHES / "ycb" / "003_cracker_box_textured.gltf"),
        name="Cracker box",
        category="crackers",
    )
    record = SkuRecord.model_validate(data)
    assert record.size_m == pytest.approx((0.0718, 0.1640, 0.2134), rel=0.01)
    from test_mesh import glb_image_bytes

    source_png = SHARED_MESHES / "ycb" / "003_cracker_box_textured.png"
    assert glb_image_bytes(cat.mesh_path(record)) == source_png.read_bytes()  # the label, byte for byte
    thumb = np.asarray(Image.open(cat.thumbnail_path(record)))
    mask = object_mask(thumb)
    pixels = thumb[mask].astype(int)
    assert (pixels[:, 0] > pixels[:, 1] + 40).mean() > 0.5  # mostly the red box print
    ys, xs = np.nonzero(mask)
    assert np.ptp(ys) > np.ptp(xs)  # standing: taller than wide


# ---- renderer behaviour --------------------------------------------------------------------------------
def test_renderer_is_created_once_and_reused(tmp_path, render):
    stl = write_stl(tmp_path / "nut.stl", hex_prism())
    created = render.call(w_thumbnails_reuse_one_context, str(tmp_path / "catalog"), str(stl), 6)
    assert created == 0  # every thumbnail used the process's one renderer (speed lives in `simreal bench`)
    assert len(Catalog(tmp_path / "catalog")) == 6


def test_thumbnails_are_identical_across_processes(tmp_path, render):
    # a lit metal nut, where a dropped or reordered light shows at once (pyrender takes four directional
    # lights and used to drop a fifth in set order, different in every process)
    stl = write_stl(tmp_path / "nut.stl", hex_prism())
    kwargs = dict(name="Nut", category="nut", material=MaterialHints(metallic=1.0, roughness=0.35))
    first = render.call(w_thumbnail_png, str(tmp_path / "a"), str(stl), **kwargs)
    other = RenderWorker()
    try:
        second = other.call(w_thumbnail_png, str(tmp_path / "b"), str(stl), **kwargs)
    finally:
        other.close()
    assert first == second


def test_renderer_refuses_other_threads(render):
    assert "thread that created it" in render.call(w_render_from_other_thread)


def test_adding_without_a_thumbnail_never_creates_a_gl_context(tmp_path):
    # a fresh interpreter, so the answer does not depend on what other tests ran before
    stl = write_stl(tmp_path / "nut.stl", hex_prism())
    code = (
        "import sys; from synth.catalog import Catalog; from synth.sku import add_mesh; "
        f"add_mesh(Catalog({str(tmp_path / 'catalog')!r}), {str(stl)!r}, name='Nut', category='nut', "
        "echo=None, thumbnail=False); "
        "t = sys.modules.get('synth.thumbnail'); print(t is not None and t._shared is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    assert len(Catalog(tmp_path / "catalog")) == 1
