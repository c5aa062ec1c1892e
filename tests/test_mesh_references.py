"""What a mesh file may pull in: nothing outside its folder unless allowed, no silent texture drops, no
placeholder called a texture, and a bound on the work (the face limit). Every case writes its own files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from mesh_fixtures import box_obj_text, gradient_image, write_stl, write_textured_obj

from synth.errors import AssetError
from synth.mesh import MAX_FACES, base_color_texture, load_mesh


def write_gltf(folder, image_uri: str | None = "texture.png", buffer_uri: str = "box.bin"):
    """A textured 6 x 4 x 12 cm box as .gltf + external buffer (+ an external image URI)."""
    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(0.06, 0.04, 0.12))
    box.unmerge_vertices()
    pos = np.asarray(box.vertices, np.float32)
    uv = np.random.default_rng(0).uniform(0.1, 0.9, (len(pos), 2)).astype(np.float32)
    idx = np.asarray(box.faces, np.uint32).reshape(-1)
    blob = pos.tobytes() + uv.tobytes() + idx.tobytes()
    views = [(0, pos.nbytes), (pos.nbytes, uv.nbytes), (pos.nbytes + uv.nbytes, idx.nbytes)]
    tree = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}} if image_uri else {}}],
        "buffers": [{"uri": buffer_uri, "byteLength": len(blob)}],
        "bufferViews": [{"buffer": 0, "byteOffset": o, "byteLength": n} for o, n in views],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(pos), "type": "VEC3",
             "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": 1, "componentType": 5126, "count": len(uv), "type": "VEC2"},
            {"bufferView": 2, "componentType": 5125, "count": len(idx), "type": "SCALAR"},
        ],
    }  # fmt: skip
    if image_uri:
        tree["images"] = [{"uri": image_uri}]
        tree["textures"] = [{"source": 0}]
    (folder / buffer_uri.split("/")[-1]).write_bytes(blob)
    path = folder / "box.gltf"
    path.write_text(json.dumps(tree))
    return path


# ---- glTF ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["climbs", "absolute"])
def test_gltf_texture_outside_its_folder_is_refused_unless_allowed(tmp_path, kind):
    gradient_image(20, 10).save(tmp_path / "outside.png")
    uri = "../outside.png" if kind == "climbs" else str(tmp_path / "outside.png")
    path = write_gltf(tmp_path / "model", image_uri=uri)
    with pytest.raises(AssetError, match="outside the mesh's folder") as e:
        load_mesh(path)
    assert str(path) in str(e.value) and uri in str(e.value) and "\n" not in str(e.value)
    allowed = load_mesh(path, allow_outside=True)
    assert allowed.textured and allowed.material.textured
    assert base_color_texture(allowed.mesh).size == (20, 10)


def test_gltf_texture_inside_its_folder_still_loads(tmp_path):
    (tmp_path / "model" / "tex").mkdir(parents=True)
    gradient_image(20, 10).save(tmp_path / "model" / "tex" / "t.png")
    imported = load_mesh(write_gltf(tmp_path / "model", image_uri="tex/t.png"))
    assert imported.textured and base_color_texture(imported.mesh).size == (20, 10)


def test_gltf_buffer_outside_its_folder_is_refused(tmp_path):
    path = write_gltf(tmp_path / "model", image_uri=None, buffer_uri="../box.bin")
    (tmp_path / "box.bin").write_bytes((tmp_path / "model" / "box.bin").read_bytes())
    with pytest.raises(AssetError, match=r"buffer 0 '\.\./box\.bin' is outside the mesh's folder"):
        load_mesh(path)
    assert load_mesh(path, allow_outside=True).size_m == pytest.approx((0.06, 0.12, 0.04), abs=1e-6)  # +Y up


def test_symlink_out_of_the_folder_counts_as_outside(tmp_path):
    gradient_image(8, 8).save(tmp_path / "secret.png")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "texture.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(AssetError, match="outside the mesh's folder"):
        load_mesh(write_gltf(tmp_path / "model"))


def test_gltf_texture_that_is_not_an_image_is_an_error(tmp_path):
    path = write_gltf(tmp_path / "model")
    (tmp_path / "model" / "texture.png").write_bytes(b"not a png")
    with pytest.raises(AssetError, match="not a readable image"):
        load_mesh(path)


# ---- OBJ -------------------------------------------------------------------------------------------------
def test_obj_mtllib_outside_its_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    evil = tmp_path / "elsewhere" / "passwd"
    evil.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "model").mkdir()
    obj = tmp_path / "model" / "box.obj"
    obj.write_text(box_obj_text((6, 4, 12), mtllib=str(evil)))
    with pytest.raises(AssetError, match="material library") as e:
        load_mesh(obj)
    assert (
        str(obj) in str(e.value) and str(evil) in str(e.value) and "outside the mesh's folder" in str(e.value)
    )
    allowed = load_mesh(obj, allow_outside=True)  # nothing in it is a texture: not textured
    assert not allowed.textured and not allowed.material.textured


def test_obj_uvs_without_a_texture_are_not_textured(tmp_path):
    obj = tmp_path / "plain.obj"
    obj.write_text(box_obj_text((6, 4, 12), mtllib=None))  # 'vt' lines, no material at all
    imported = load_mesh(obj)
    assert not imported.textured and not imported.material.textured
    assert base_color_texture(imported.mesh) is None


@pytest.mark.parametrize("kind", ["absolute", "climbs"])
def test_obj_map_kd_outside_its_folder_is_refused_unless_allowed(tmp_path, kind):
    gradient_image(12, 6).save(tmp_path / "private.png")
    ref = str(tmp_path / "private.png") if kind == "absolute" else "../private.png"
    obj = write_textured_obj(tmp_path / "model", map_line=f"map_Kd {ref}", write_texture=False)
    with pytest.raises(AssetError, match="map_Kd of material 'skin'") as e:
        load_mesh(obj)
    assert "box.mtl" in str(e.value) and "outside the mesh's folder" in str(e.value)
    allowed = load_mesh(obj, allow_outside=True)
    assert base_color_texture(allowed.mesh).size == (12, 6)


def test_obj_absolute_map_kd_finds_the_copy_beside_the_obj(tmp_path):
    gradient_image(12, 6).save(tmp_path / "texture.png")  # outside: never read
    obj = write_textured_obj(
        tmp_path / "model", texture_size=(40, 30), map_line=f"map_Kd {tmp_path}/texture.png"
    )
    assert base_color_texture(load_mesh(obj).mesh).size == (40, 30)


# ---- PLY -------------------------------------------------------------------------------------------------
def _textured_ply(path, texture_ref: str):
    box = trimesh.creation.box(extents=(0.06, 0.04, 0.12))
    box.unmerge_vertices()
    uv = np.random.default_rng(0).uniform(0.1, 0.9, (len(box.vertices), 2))
    lines = ["ply", "format ascii 1.0", f"comment TextureFile {texture_ref}", f"element vertex {len(uv)}"]
    lines += [f"property float {a}" for a in ("x", "y", "z", "s", "t")]
    lines += [f"element face {len(box.faces)}", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(f"{v:.6f}" for v in (*p, *t)) for p, t in zip(box.vertices, uv, strict=True)]
    lines += [f"3 {a} {b} {c}" for a, b, c in box.faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ply_texture_file_is_loaded_checked_and_kept_inside(tmp_path):
    (tmp_path / "model").mkdir()
    gradient_image(16, 8).save(tmp_path / "model" / "tex.png")
    assert base_color_texture(
        load_mesh(_textured_ply(tmp_path / "model" / "a.ply", "tex.png")).mesh
    ).size == (16, 8)
    with pytest.raises(AssetError, match=r"texture 'nope.png' \(TextureFile\) is missing"):
        load_mesh(_textured_ply(tmp_path / "model" / "b.ply", "nope.png"))
    gradient_image(16, 8).save(tmp_path / "outside.png")
    with pytest.raises(AssetError, match="outside the mesh's folder"):
        load_mesh(_textured_ply(tmp_path / "model" / "c.ply", "../outside.png"))


# ---- the face limit --------------------------------------------------------------------------------------
def test_limit_is_a_million_faces():
    assert MAX_FACES == 1_000_000


@pytest.mark.parametrize("fmt", ["stl", "obj", "ply", "gltf"])
def test_meshes_over_the_face_limit_are_refused_before_parsing(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr("synth.mesh.checks.MAX_FACES", 100)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=30.0)  # 320 faces, in mm
    if fmt == "gltf":
        path = tmp_path / "s.glb"
        sphere.apply_scale(0.001)
        path.write_bytes(sphere.export(file_type="glb"))
    else:
        path = tmp_path / f"s.{fmt}"
        _write(path, sphere.export(file_type=fmt))
    monkeypatch.setattr("synth.mesh.load.trimesh.load", _must_not_parse)
    with pytest.raises(AssetError, match="320 faces is over the import limit of 100") as e:
        load_mesh(path)
    assert str(path) in str(e.value) and "decimate" in str(e.value)


def test_parsed_faces_are_counted_too(tmp_path, monkeypatch):
    monkeypatch.setattr("synth.mesh.checks.MAX_FACES", 100)
    path = tmp_path / "s.stl"
    _write(path, trimesh.creation.icosphere(subdivisions=2, radius=30.0).export(file_type="stl_ascii"))
    with pytest.raises(AssetError, match="320 faces is over the import limit of 100"):
        load_mesh(path)  # ASCII STL declares no count: refused once parsed


def test_meshes_under_the_limit_are_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr("synth.mesh.checks.MAX_FACES", 320)
    path = write_stl(tmp_path / "s.stl", trimesh.creation.icosphere(subdivisions=2, radius=30.0))
    assert len(load_mesh(path).mesh.faces) >= 320


def _must_not_parse(*args, **kwargs):
    raise AssertionError("parsed a file that its header already puts over the limit")


def _write(path, data: str | bytes) -> None:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
