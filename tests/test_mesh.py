"""Mesh import: formats, units and up-axis normalisation, squaring up, texture survival, the GLB writer,
and the real shared meshes against their published sizes."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import trimesh
from mesh_fixtures import (
    SHARED_MESHES,
    box_obj_text,
    colored_sphere,
    gradient_image,
    hex_prism,
    textured_part,
    write_stl,
    write_textured_obj,
)
from PIL import Image

from synth.catalog import MaterialHints
from synth.errors import AssetError
from synth.mesh import (
    base_color_texture,
    footprint_yaw,
    levelling_rotation,
    load_mesh,
    paste_with_gutter,
    read_glb,
    resolve_units,
    shelf_pack,
    square_row_width,
    write_glb,
)


def glb_json(path) -> dict:
    data = path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20 : 20 + n])


def glb_image_bytes(path, index: int = 0) -> bytes:
    data = path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    tree = json.loads(data[20 : 20 + n])
    binary = data[20 + n + 8 :]
    view = tree["bufferViews"][tree["images"][index]["bufferView"]]
    return binary[view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]]


# ---- units ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "largest, suffix, expected",
    [
        (0.2134, ".gltf", "m"),  # glTF: metres by spec
        (213.4, ".gltf", "mm"),  # a glTF exported in mm by mistake: implausible as metres -> size heuristic
        (11.5, ".stl", "mm"),  # STL: millimetres by CAD habit (an M6 nut)
        (0.03, ".stl", "m"),  # an STL in metres: 0.03 mm would be implausible
        (35.5, ".obj", "mm"),  # > 20 -> mm
        (19.0, ".obj", "cm"),  # 2 .. 20 -> cm (a HOPE milk carton)
        (2.0, ".ply", "m"),  # <= 2 -> m
        (0.15, ".ply", "m"),
    ],
)
def test_units_auto(largest, suffix, expected):
    assert resolve_units(largest, suffix)[0] == expected


def test_units_given_are_kept():
    assert resolve_units(1000.0, ".obj", "in") == ("in", "given")


def test_units_scale_and_note(tmp_path):
    path = write_stl(tmp_path / "nut.stl", hex_prism(10.0, 5.2))
    auto = load_mesh(path)
    assert np.allclose(sorted(auto.size_m), sorted([0.0052, 0.010, 0.010 / math.cos(math.pi / 6)]), rtol=1e-4)
    assert any(n.startswith("units: mm (STL convention") for n in auto.notes)
    inches = load_mesh(path, units="in")
    assert np.allclose(np.array(inches.size_m), np.array(auto.size_m) * 25.4, rtol=1e-6)
    assert not any(n.startswith("units:") for n in inches.notes)  # nothing inferred, nothing to say


# ---- up axis, centring, squaring up --------------------------------------------------------------------
def _tall_y_glb(tmp_path):
    box = trimesh.creation.box(extents=[0.05, 0.20, 0.03])  # tall along +Y, as glTF assets are
    box.apply_translation([0.3, 0.1, -0.2])
    path = tmp_path / "tall.glb"
    path.write_bytes(box.export(file_type="glb"))
    return path


def test_gltf_is_y_up_by_default_and_centred(tmp_path):
    imported = load_mesh(_tall_y_glb(tmp_path))
    assert imported.up == "y"
    assert np.allclose(imported.size_m, (0.05, 0.03, 0.20), atol=1e-7)  # Y became Z, Z became -Y
    assert np.allclose(imported.mesh.bounds.mean(axis=0), 0.0, atol=1e-9)


def test_up_z_keeps_axes(tmp_path):
    imported = load_mesh(_tall_y_glb(tmp_path), up="z")
    assert np.allclose(imported.size_m, (0.05, 0.20, 0.03), atol=1e-7)


def test_y_up_rotation_is_proper(tmp_path):
    # a right-handed rotation keeps outward normals outward: the volume stays positive
    imported = load_mesh(_tall_y_glb(tmp_path))
    assert imported.mesh.volume > 0
    assert np.isclose(imported.mesh.volume, 0.05 * 0.20 * 0.03, rtol=1e-6)


def test_gltf_top_stays_up_and_front_faces_minus_y(tmp_path):
    # an asymmetric asset: a cap on glTF +Y (its top) and a nose on glTF +Z (its front)
    body = trimesh.creation.box(extents=[0.06, 0.10, 0.04])
    cap = trimesh.creation.box(extents=[0.02, 0.02, 0.02])
    cap.apply_translation([0.0, 0.06, 0.0])
    nose = trimesh.creation.box(extents=[0.01, 0.01, 0.02])
    nose.apply_translation([0.0, 0.0, 0.03])
    path = tmp_path / "asym.glb"
    path.write_bytes(trimesh.util.concatenate([body, cap, nose]).export(file_type="glb"))
    mesh = load_mesh(path, align=False).mesh
    top = mesh.vertices[mesh.vertices[:, 2] > mesh.bounds[1, 2] - 1e-6]
    front = mesh.vertices[mesh.vertices[:, 1] < mesh.bounds[0, 1] + 1e-6]
    assert np.ptp(top[:, 0]) == pytest.approx(0.02)  # the cap is what is highest: upright, not upside down
    assert np.ptp(front[:, 0]) == pytest.approx(0.01)  # the nose is what is furthest towards -Y


def test_footprint_alignment_squares_a_rotated_box(tmp_path):
    box = trimesh.creation.box(extents=[0.16, 0.07, 0.21])
    box.apply_transform(trimesh.transformations.rotation_matrix(math.radians(20), [0, 0, 1]))
    path = write_stl(tmp_path / "box.stl", box)
    imported = load_mesh(path, units="m")
    assert np.allclose(imported.size_m, (0.16, 0.07, 0.21), atol=1e-6)
    assert math.isclose(imported.yaw_deg, -20.0, abs_tol=1e-3)
    assert any("aligned footprint" in n for n in imported.notes)
    raw = load_mesh(path, units="m", align=False)
    assert raw.size_m[0] > 0.17  # the axis-aligned box of the rotated box is larger


def test_levelling_stands_a_tilted_box_upright():
    box = trimesh.creation.box(extents=[0.05, 0.09, 0.18])
    box.apply_transform(trimesh.transformations.rotation_matrix(math.radians(3), [1, 0, 0]))
    rotation, tilt, gain = levelling_rotation(box.vertices)
    assert math.isclose(tilt, 3.0, abs_tol=1e-6) and gain > 0.01
    assert np.allclose(
        np.sort(np.ptp(trimesh.transform_points(box.vertices, rotation), axis=0)),
        [0.05, 0.09, 0.18],
        atol=1e-9,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: trimesh.creation.cylinder(radius=0.033, height=0.1, sections=64),  # a can: round footprint
        lambda: hex_prism(10.0, 5.2),  # a nut: never turned
        lambda: trimesh.creation.box(extents=[0.1, 0.05, 0.2]),  # already square
    ],
)
def test_no_rotation_without_a_reason(make):
    mesh = make()
    assert footprint_yaw(mesh.vertices) == (0.0, 0.0)
    assert levelling_rotation(mesh.vertices)[1] == 0.0


# ---- formats -------------------------------------------------------------------------------------------
def test_obj_texture_survives_byte_for_byte(tmp_path):
    obj = write_textured_obj(tmp_path / "src", extents=(6.0, 4.0, 12.0), texture_size=(40, 30))
    imported = load_mesh(obj)
    assert imported.original_units == "cm"
    assert np.allclose(sorted(imported.size_m), [0.04, 0.06, 0.12], atol=1e-7)
    assert imported.material.textured and imported.material.base_color == (1.0, 1.0, 1.0, 1.0)  # Kd ignored
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, imported.material)
    back = read_glb(out)
    assert base_color_texture(back).size == (40, 30)
    assert len(back.visual.uv) == len(back.vertices)
    assert glb_image_bytes(out) == (tmp_path / "src" / "texture.png").read_bytes()
    # the UVs still address the same texels: sample the source image at the original and stored UVs
    src = trimesh.load(obj, process=False)
    from trimesh.visual.color import uv_to_color

    before = np.sort(uv_to_color(src.visual.uv, gradient_image(40, 30)), axis=0)
    after = np.sort(uv_to_color(back.visual.uv, base_color_texture(back)), axis=0)
    assert np.array_equal(before, after)


def test_obj_map_kd_with_options_and_subfolder(tmp_path):
    folder = tmp_path / "src"
    (folder / "tex").mkdir(parents=True)
    gradient_image(16, 16).save(folder / "tex" / "skin.png")
    obj = write_textured_obj(folder, map_line="map_Kd -s 1 1 1 tex/skin.png", write_texture=False)
    assert base_color_texture(load_mesh(obj).mesh).size == (16, 16)


def test_obj_with_renamed_mtl_uses_the_one_beside_it(tmp_path):
    obj = write_textured_obj(tmp_path / "src", name="popcorn")
    obj.write_text(obj.read_text().replace("mtllib popcorn.mtl", "mtllib textured.mtl"))
    imported = load_mesh(obj)
    assert imported.textured
    assert any("mtllib 'textured.mtl' not found; using popcorn.mtl" in n for n in imported.notes)


def test_ply_vertex_colours_round_trip_exactly(tmp_path):
    sphere = colored_sphere(0.04)
    path = tmp_path / "scan.ply"
    path.write_bytes(sphere.export(file_type="ply"))
    imported = load_mesh(path)
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, imported.material)
    tree = glb_json(out)
    assert "COLOR_0" in tree["meshes"][0]["primitives"][0]["attributes"]
    back = read_glb(out)
    assert back.visual.kind == "vertex"
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(sphere.vertices - sphere.bounds.mean(axis=0)).query(back.vertices)
    assert dist.max() < 1e-7
    assert np.array_equal(back.visual.vertex_colors[:, :3], sphere.visual.vertex_colors[idx, :3])


def test_stl_gets_material_hints_and_crisp_normals(tmp_path):
    path = write_stl(tmp_path / "nut.stl", hex_prism())
    imported = load_mesh(path)
    hints = MaterialHints(base_color=(0.7, 0.7, 0.72, 1.0), metallic=1.0, roughness=0.35, finish="zinc")
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, hints)
    pbr = glb_json(out)["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"] == pytest.approx([0.7, 0.7, 0.72, 1.0])
    assert (pbr["metallicFactor"], pbr["roughnessFactor"]) == (1.0, 0.35)
    back = read_glb(out)
    # sharp edges are split: every stored normal is a face normal of a hexagonal prism (+-Z or radial)
    n = back.vertex_normals
    assert np.all(np.isclose(np.abs(n[:, 2]), 1.0, atol=1e-5) | np.isclose(n[:, 2], 0.0, atol=1e-5))


@pytest.mark.parametrize("pin_first", [False, True])  # trimesh's own packer overflowed its atlas one way
def test_gltf_parts_are_transformed_and_baked_into_one_atlas(tmp_path, pin_first):
    red = textured_part([0.1, 0.05, 0.02], (255, 0, 0), (64, 64))
    blue = textured_part(
        [0.02, 0.02, 0.08], (0, 0, 255), (32, 32), roughness=0.3, metallic=1.0
    )  # a metal pin
    moved = trimesh.transformations.translation_matrix([0.1, 0, 0]) @ trimesh.transformations.rotation_matrix(
        math.pi / 2, [0, 0, 1]
    )
    green = trimesh.creation.icosphere(radius=0.01)
    green.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(baseColorFactor=[0, 255, 0, 255])
    )
    scene = trimesh.Scene()
    parts = [
        ("red", red, np.eye(4)),
        ("blue", blue, moved),
        ("green", green, trimesh.transformations.translation_matrix([0, 0.1, 0])),
    ]
    for name, geom, transform in (parts[1:2] + parts[:1] + parts[2:]) if pin_first else parts:
        scene.add_geometry(geom, node_name=name, transform=transform)
    path = tmp_path / "assembly.glb"
    path.write_bytes(scene.export(file_type="glb"))

    imported = load_mesh(path, align=False)
    # glTF (x, y, z) -> ours (x, -z, y): x -0.05..0.11, glTF z -0.04..0.04, glTF y -0.025..0.11
    assert np.allclose(imported.size_m, (0.16, 0.08, 0.135), atol=1e-6)
    assert any("3 different materials baked into one texture atlas" in n for n in imported.notes)
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, imported.material)
    back = read_glb(out)
    assert len(glb_json(out)["meshes"][0]["primitives"]) == 1
    uv = back.visual.uv
    assert uv.min() > 0 and uv.max() < 1
    from trimesh.visual.color import uv_to_color

    # every triangle's centre samples its own part's colour (a triangle straddling cells would not)
    centres = uv[back.faces].mean(axis=1)
    colors = uv_to_color(centres, base_color_texture(back))[:, :3]
    found = {tuple(c): n for c, n in zip(*np.unique(colors, axis=0, return_counts=True), strict=True)}
    assert found == {(255, 0, 0): 12, (0, 0, 255): 12, (0, 255, 0): len(green.faces)}
    # each part keeps its metalness and roughness: factors 1.0 times a baked metallic-roughness texture
    pbr = glb_json(out)["materials"][0]["pbrMetallicRoughness"]
    assert (
        pbr["metallicFactor"] == 1.0 and pbr["roughnessFactor"] == 1.0 and "metallicRoughnessTexture" in pbr
    )
    mr = uv_to_color(centres, back.visual.material.metallicRoughnessTexture)
    blue_part, red_part = colors[:, 2] == 255, colors[:, 0] == 255
    assert np.all(mr[blue_part, 2] == 255) and np.allclose(mr[blue_part, 1], 0.3 * 255, atol=1)
    assert np.all(mr[red_part, 2] == 0) and np.allclose(mr[red_part, 1], 0.8 * 255, atol=1)


def test_obj_with_two_textured_materials_gets_one_atlas(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    Image.new("RGB", (20, 10), (250, 200, 0)).save(folder / "label.png")
    Image.new("RGB", (8, 8), (10, 120, 30)).save(folder / "cap.png")
    (folder / "bottle.mtl").write_text("newmtl label\nmap_Kd label.png\nnewmtl cap\nmap_Kd cap.png\n")
    body = box_obj_text((6.0, 6.0, 15.0), mtllib="bottle.mtl", material="label").splitlines()
    cap = box_obj_text((3.0, 3.0, 2.0), uv_seed=1, mtllib=None).splitlines()
    n = sum(line.startswith("v ") for line in body)
    cap_v = [line.replace("v ", "v ", 1) for line in cap if line.startswith(("v ", "vt "))]
    cap_f = [
        "f " + " ".join(f"{int(a) + n}/{int(b) + n}" for a, b in (t.split("/") for t in line.split()[1:]))
        for line in cap
        if line.startswith("f ")
    ]
    (folder / "bottle.obj").write_text("\n".join(body + cap_v + ["usemtl cap"] + cap_f) + "\n")
    imported = load_mesh(folder / "bottle.obj")
    assert any("2 different materials baked into one texture atlas" in n for n in imported.notes)
    from trimesh.visual.color import uv_to_color

    mesh = imported.mesh
    colors = uv_to_color(mesh.visual.uv[mesh.faces].mean(axis=1), base_color_texture(mesh))[:, :3]
    found = {tuple(c): k for c, k in zip(*np.unique(colors, axis=0, return_counts=True), strict=True)}
    assert found == {(250, 200, 0): 12, (10, 120, 30): 12}


def test_unmodified_textures_are_matched_to_their_files_by_pixels(tmp_path):
    from synth.mesh.gltf_refs import tag_unmodified_images
    from synth.mesh.references import SOURCE_FILE_INFO

    base, normal = gradient_image(32, 32, seed=1), gradient_image(32, 32, seed=2)  # same size: pixels decide
    base.save(tmp_path / "base.png")
    normal.save(tmp_path / "normal.png")
    box = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    edited = normal.copy()
    edited.putpixel((0, 0), (1, 2, 3))
    box.visual = trimesh.visual.TextureVisuals(
        uv=np.zeros((len(box.vertices), 2)),
        material=trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.open(tmp_path / "base.png"), normalTexture=edited
        ),
    )
    tag_unmodified_images([box], [tmp_path / "normal.png", None, tmp_path / "base.png"])
    mat = box.visual.material
    assert mat.baseColorTexture.info[SOURCE_FILE_INFO] == str(tmp_path / "base.png")
    assert SOURCE_FILE_INFO not in mat.normalTexture.info  # edited pixels are re-encoded, not replaced


def test_glb_writer_output_is_a_valid_single_primitive_asset(tmp_path):
    obj = write_textured_obj(tmp_path / "src")
    imported = load_mesh(obj)
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, imported.material)
    data = out.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data)) and len(data) % 4 == 0
    tree = glb_json(out)
    for view in tree["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
    position = tree["accessors"][tree["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    assert np.allclose(position["max"], -np.array(position["min"]), atol=1e-6)  # centred
    assert np.allclose(np.array(position["max"]) - position["min"], imported.size_m, atol=1e-6)
    # deterministic: the same input writes the same bytes
    again = tmp_path / "again.glb"
    write_glb(imported.mesh, again, imported.material)
    assert again.read_bytes() == data


# ---- the shared atlas packer ---------------------------------------------------------------------------
@pytest.mark.parametrize("tallest_first", [False, True])
def test_shelf_pack_places_gutters_without_overlap(tallest_first):
    sizes = [(30, 10), (8, 40), (16, 16), (50, 5), (4, 4)]
    width = square_row_width(sizes)
    corners, (w, h) = shelf_pack(sizes, width, pad=4, tallest_first=tallest_first)
    assert w % 4 == 0 and h % 4 == 0 and w <= -(-width // 4) * 4
    canvas = np.zeros((h, w), int)
    for (x, y), (bw, bh) in zip(corners, sizes, strict=True):
        assert x >= 4 and y >= 4 and x + bw + 4 <= w and y + bh + 4 <= h  # the gutter fits too
        canvas[y - 4 : y + bh + 4, x - 4 : x + bw + 4] += 1
    assert canvas.max() == 1  # no two cells (with gutters) overlap
    assert corners[1 if tallest_first else 0] == (4, 4)  # the tallest leads when asked, else the first


def test_paste_with_gutter_repeats_the_edges():
    canvas = np.zeros((12, 12, 3), np.uint8)
    cell = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    paste_with_gutter(canvas, cell, (4, 5), pad=2)
    assert np.array_equal(canvas[5:7, 4:7], cell)
    assert np.array_equal(canvas[3, 4:7], cell[0]) and np.array_equal(canvas[8, 4:7], cell[1])
    assert np.array_equal(canvas[5:7, 2], cell[:, 0]) and canvas[2].sum() == 0


# ---- the real meshes -----------------------------------------------------------------------------------
# Reference sizes in metres: (height along +Z after import, the two footprint sides in any order).
# YCB / HOPE: the cuboid dimensions NVIDIA publishes for these same scanned models in Deep Object Pose
# (DOPE) -- the YCB paper's nominal 60x158x210 mm for the cracker box describes the retail box, which
# the scan exceeds by up to 12 mm (bulging cardboard), so 2 % against it is not achievable by any importer.
# Fasteners: ISO 4032 M6 nut (s 10, e = s / cos 30 = 11.55, m 5.2 max), DIN 557 M6 square nut (s 10,
# m 5), ISO 7089 M6 washer (d2 12, h 1.8 max), ISO 4762 M6x20 (dk 10.22 max, k 6: 26 long), ISO 4017
# M8x30 (s 13, e 15.01, k 5.3: 35.3 long), spur gear m1 z20 (tip diameter m(z+2) = 22, face width 5).
SHARED_REFERENCES = {
    "ycb/003_cracker_box_textured.gltf": ("auto", 0.2134, (0.1640, 0.0718)),
    "ycb/004_sugar_box_textured.gltf": ("auto", 0.1763, (0.0927, 0.0451)),
    "ycb/005_tomato_soup_can_textured.gltf": ("auto", 0.1019, (0.0677, 0.0677)),
    "ycb/006_mustard_bottle_textured.gltf": ("auto", 0.1913, (0.0960, 0.0582)),
    "ycb/009_gelatin_box_textured.gltf": ("auto", 0.0300, (0.0892, 0.0731)),
    "ycb/010_potted_meat_can_textured.gltf": ("auto", 0.0835, (0.1016, 0.0576)),
    "hope/alphabet_soup/textured.obj": ("y", 0.0836, (0.0711, 0.0661)),
    "hope/bbq_sauce/bbq_sauce.obj": ("auto", 0.1483, (0.0646, 0.0435)),
    "hope/butter/butter.obj": ("auto", 0.0239, (0.1033, 0.0528)),
    "hope/cream_cheese/cream_cheese.obj": ("auto", 0.0242, (0.1036, 0.0532)),
    "hope/ketchup/textured.obj": ("y", 0.1486, (0.0645, 0.0434)),
    "hope/macaroni_and_cheese/textured.obj": ("y", 0.1663, (0.1235, 0.0402)),
    "hope/milk/textured.obj": ("y", 0.1904, (0.0733, 0.0722)),
    "hope/orange_juice/textured.obj": ("y", 0.1925, (0.0728, 0.0716)),
    "hope/popcorn/popcorn.obj": ("auto", 0.0383, (0.1265, 0.0850)),
    "fasteners/hexnut_M6.stl": ("auto", 0.0052, (0.01155, 0.0100)),
    "fasteners/squarenut_M6.stl": ("auto", 0.0050, (0.0100, 0.0100)),
    "fasteners/plain_washer_M6.stl": ("auto", 0.0018, (0.0120, 0.0120)),
    "fasteners/socket_head_cap_screw_M6x20.stl": ("auto", 0.0260, (0.01022, 0.01022)),
    "fasteners/hex_head_screw_M8x30.stl": ("auto", 0.0353, (0.01501, 0.0130)),
    "fasteners/spur_gear_m1_z20.stl": ("auto", 0.0050, (0.0220, 0.0220)),
}

needs_shared = pytest.mark.skipif(
    not SHARED_MESHES.is_dir(), reason=f"shared meshes not found at {SHARED_MESHES} (set SIMREAL_SHARED)"
)


@needs_shared
@pytest.mark.shared
def test_every_shared_mesh_has_a_reference():
    present = {
        str(p.relative_to(SHARED_MESHES))
        for p in SHARED_MESHES.rglob("*")
        if p.suffix.lower() in (".gltf", ".glb", ".obj", ".stl", ".ply")
    }
    assert present == set(SHARED_REFERENCES)


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("rel", sorted(SHARED_REFERENCES))
def test_shared_mesh_imports_at_real_size_with_its_texture(rel, tmp_path):
    up, height, footprint = SHARED_REFERENCES[rel]
    src = SHARED_MESHES / rel
    imported = load_mesh(src, up=up)
    x, y, z = imported.size_m
    assert z == pytest.approx(height, rel=0.02), f"height {z:.4f} m"
    assert sorted([x, y]) == pytest.approx(sorted(footprint), rel=0.02), f"footprint {x:.4f} x {y:.4f} m"
    assert np.allclose(imported.mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
    if src.suffix == ".stl":
        assert not imported.textured
        return
    # textures survive: the stored GLB carries the source texture, same size, same bytes, UV per vertex
    source_texture = next(
        p for p in src.parent.iterdir() if p.suffix == ".png" and (src.suffix == ".obj" or p.stem == src.stem)
    )
    out = tmp_path / "mesh.glb"
    write_glb(imported.mesh, out, imported.material)
    tree = glb_json(out)
    assert "baseColorTexture" in tree["materials"][0]["pbrMetallicRoughness"]
    back = read_glb(out)
    with Image.open(source_texture) as im:
        assert base_color_texture(back).size == im.size
    assert len(back.visual.uv) == len(back.vertices)
    assert glb_image_bytes(out) == source_texture.read_bytes()


# ---- reading errors (the catalog side of bad input is tested in test_sku) ------------------------------
def test_read_glb_rejects_missing_and_garbage(tmp_path):
    with pytest.raises(AssetError, match="mesh file not found"):
        read_glb(tmp_path / "none.glb")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"not a glb at all")
    with pytest.raises(AssetError, match="cannot be read as GLB"):
        read_glb(bad)
