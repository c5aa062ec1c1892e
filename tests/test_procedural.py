"""Tests for the procedural asset library (synth/procedural): geometry validity, real-world sizes,
label mapping (no stretch, no mirroring), GLB round trips, determinism and the EAN-13 encoder."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
from functools import cache

import numpy as np
import pytest
import trimesh
from PIL import Image

from synth.catalog import SkuRecord
from synth.errors import AssetError
from synth.procedural import (
    ALL_KINDS,
    INDUSTRIAL_KINDS,
    RETAIL_KINDS,
    ProceduralAsset,
    default_library,
    generate_asset,
)
from synth.procedural.finishes import METALS, linear_to_srgb8, srgb8_to_linear
from synth.procedural.geometry import closed_solid
from synth.procedural.labels.ean13 import barcode_size, draw_ean13, ean13_check_digit, ean13_modules
from synth.procedural.labels.panels import info_panel

SEEDS = (0, 1, 2)


@cache
def asset(kind: str, seed: int) -> ProceduralAsset:
    return generate_asset(kind, seed)


# Plausible real-world envelopes, written independently of the generators' tables (metres):
# sorted extents (smallest, middle, largest) must fall inside these ranges.
SIZE_ENVELOPE = {
    "box": ((0.035, 0.09), (0.06, 0.24), (0.09, 0.34)),
    "can": ((0.035, 0.105), (0.05, 0.105), (0.05, 0.175)),
    "bottle": ((0.045, 0.11), (0.045, 0.11), (0.14, 0.35)),
    "jar": ((0.04, 0.12), (0.04, 0.12), (0.075, 0.145)),
    "carton": ((0.05, 0.1), (0.05, 0.1), (0.15, 0.33)),
    "pouch": ((0.02, 0.1), (0.1, 0.26), (0.16, 0.36)),
    "tube": ((0.02, 0.05), (0.03, 0.075), (0.12, 0.2)),
    "hex_bolt": ((0.005, 0.019), (0.006, 0.021), (0.009, 0.09)),
    "hex_nut": ((0.002, 0.011), (0.005, 0.019), (0.006, 0.021)),
    "washer": ((0.0005, 0.0026), (0.007, 0.025), (0.007, 0.025)),
    "wood_screw": ((0.006, 0.012), (0.006, 0.012), (0.016, 0.08)),
    "drywall_screw": ((0.0078, 0.0086), (0.0078, 0.0086), (0.025, 0.056)),
    "socket_cap_screw": ((0.005, 0.018), (0.005, 0.018), (0.009, 0.095)),
    "spur_gear": ((0.002, 0.045), (0.01, 0.09), (0.01, 0.09)),
    "l_bracket": ((0.014, 0.08), (0.02, 0.08), (0.024, 0.08)),
    "pipe_fitting": ((0.015, 0.035), (0.03, 0.08), (0.03, 0.08)),
}
CATEGORIES = {
    "box": {"cereal", "crackers", "pasta", "tea", "cake", "sugar"},
    "can": {"beans", "corn", "fish", "soda", "tomato_sauce"},
    "bottle": {"water", "oil", "juice", "vinegar", "soda"},
    "jar": {"jam", "honey", "spices", "nuts"},
    "carton": {"milk", "juice"},
    "pouch": {"chips", "candy", "coffee", "rice", "flour", "nuts"},
    "tube": {"toothpaste"},
    "hex_bolt": {"bolt"},
    "hex_nut": {"nut"},
    "washer": {"washer"},
    "wood_screw": {"screw"},
    "drywall_screw": {"screw"},
    "socket_cap_screw": {"screw"},
    "spur_gear": {"gear"},
    "l_bracket": {"bracket"},
    "pipe_fitting": {"fitting"},
}


def test_kind_lists_cover_every_generator():
    assert set(CATEGORIES) == set(ALL_KINDS)
    assert len(set(RETAIL_KINDS) & set(INDUSTRIAL_KINDS)) == 0
    for k in ALL_KINDS:
        assert asset(k, 0).kind == k


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_asset_metadata_and_catalog_record(kind):
    for seed in SEEDS:
        a = asset(kind, seed)
        assert a.seed == seed and a.kind == kind
        assert a.category in CATEGORIES[kind]
        assert a.supercategory == ("retail" if kind in RETAIL_KINDS else "industrial")
        assert a.name.strip() and len(a.name) < 120
        assert a.symmetry in ("none", "mirror", "cylindrical", "discrete")
        assert (a.symmetry_order is not None) == (a.symmetry == "discrete")
        assert a.material.textured == (kind in RETAIL_KINDS)
        rec = a.record(f"{kind.replace('_', '-')}-{seed}")
        assert isinstance(rec, SkuRecord)
        assert rec.source.kind == "procedural" and rec.source.generator == kind and rec.source.seed == seed
        assert np.allclose(rec.size_m, a.mesh.extents)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_mesh_is_a_clean_closed_outward_solid(kind):
    for seed in SEEDS:
        m = asset(kind, seed).mesh
        assert isinstance(m, trimesh.Trimesh)
        assert 12 <= len(m.faces) <= 30000, len(m.faces)
        assert np.all(np.isfinite(m.vertices))
        lo, hi = m.bounds
        assert np.allclose((lo + hi) / 2, 0.0, atol=1e-9), "bounding-box centre must be the origin"
        assert m.nondegenerate_faces().all(), "degenerate triangles"
        solid = closed_solid(m)
        assert solid.is_watertight, f"{kind} seed {seed} is not closed"
        assert solid.is_winding_consistent
        assert solid.volume > 0, "faces must point outward"
        assert solid.volume <= np.prod(m.extents) * (1 + 1e-9)
        # Every corner's shading normal leans the same way as its face (no inside-out shading).
        fn = m.face_normals
        vn = m.vertex_normals[m.faces]
        assert np.all(np.einsum("fj,fkj->fk", fn, vn) > 0.0)
        # UVs present for every vertex and inside the texture.
        uv = m.visual.uv
        assert uv is not None and uv.shape == (len(m.vertices), 2) and np.all(np.isfinite(uv))
        if kind in RETAIL_KINDS:
            assert uv.min() >= 0.0 and uv.max() <= 1.0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_sizes_are_realistic_for_the_kind(kind):
    for seed in SEEDS:
        ext = np.sort(asset(kind, seed).mesh.extents)
        for value, (lo, hi) in zip(ext, SIZE_ENVELOPE[kind], strict=True):
            assert lo <= value <= hi, f"{kind} seed {seed}: extents {ext} outside {SIZE_ENVELOPE[kind]}"


def test_standard_formats_have_their_real_dimensions():
    """A 330 ml drink can is 66 x 115 mm; an M6 nut is 10 mm across flats and 5 mm thick."""

    def first(kind, accept, n=1):
        found = list(
            itertools.islice((a for a in map(lambda s: generate_asset(kind, s), range(80)) if accept(a)), n)
        )
        assert found, f"no matching {kind} in 80 seeds"
        return found

    cans = first("can", lambda a: a.label.net_quantity == "330 ml")
    for a in cans:
        dx, dy, dz = a.mesh.extents
        assert dx == pytest.approx(0.066, rel=0.02) and dy == pytest.approx(0.066, rel=0.02)
        assert dz == pytest.approx(0.115, rel=0.02)
    nuts = first("hex_nut", lambda a: a.name.startswith("M6 "))
    for a in nuts:
        across_flats, across_corners, thickness = a.mesh.extents
        assert across_flats == pytest.approx(0.010, abs=1e-6)
        assert across_corners == pytest.approx(0.010 / np.cos(np.radians(30)), abs=1e-6)
        assert thickness == pytest.approx(0.005, abs=1e-6)
        r = np.hypot(a.mesh.vertices[:, 0], a.mesh.vertices[:, 1])
        assert r.min() == pytest.approx((6.0 - 1.0825 * 1.0) / 2 * 1e-3, abs=2e-5)  # ISO minor diameter D1
    boxes = first("box", lambda a: a.category == "cereal")
    for a in boxes:
        w, d, h = a.mesh.extents
        assert 0.17 <= w <= 0.23 and 0.05 <= d <= 0.08 and 0.25 <= h <= 0.33


def test_bolt_thread_is_a_right_handed_helix_with_the_iso_pitch():
    bolt = next(
        a
        for a in (generate_asset("hex_bolt", s) for s in range(60))
        if a.name.startswith("M8x") and "fully threaded" in a.name
    )
    pitch = 1.25e-3
    v = bolt.mesh.vertices
    z = v[:, 2] - v[:, 2].min()  # from the bolt's end face
    length = float(bolt.name.split("x")[1].split()[0]) * 1e-3
    r = np.hypot(v[:, 0], v[:, 1])
    phi = np.arctan2(v[:, 1], v[:, 0])
    crest = (np.abs(r - 0.995 * 0.004) < 2e-6) & (z > 2 * pitch) & (z < length - 2 * pitch)
    assert crest.sum() > 100

    def offsets(sign):
        """Crest points' distance along the axis from the helix through their circular mean, in pitches."""
        phase = 2 * np.pi * (z[crest] - sign * pitch * phi[crest] / (2 * np.pi)) / pitch
        mean = np.angle(np.mean(np.exp(1j * phase)))
        return np.abs(np.angle(np.exp(1j * (phase - mean)))) / (2 * np.pi)

    # ISO crest flat is P/8 wide: every crest point lies within half of it from one right-handed helix.
    assert offsets(+1).max() < 0.0625 + 0.01
    assert offsets(-1).max() > 0.3, "a left-handed helix must not fit"


def _label_jacobians(mesh: trimesh.Trimesh):
    """Per printed face: the map from texture pixels to the surface (3x2), the face normal and area."""
    img = mesh.visual.material.baseColorTexture
    w, h = img.size
    p = mesh.vertices[mesh.faces]
    q = mesh.visual.uv[mesh.faces] * [w, h]
    e = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)
    qq = np.stack([q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]], axis=2)
    printed = np.abs(np.linalg.det(qq)) > 1e-6  # flat-colour swatch faces have zero UV area
    jac = e[printed] @ np.linalg.inv(qq[printed])
    n = np.cross(p[printed, 1] - p[printed, 0], p[printed, 2] - p[printed, 0])
    area = np.linalg.norm(n, axis=1) / 2
    return jac, n / (2 * area[:, None]), area


@pytest.mark.parametrize("kind", RETAIL_KINDS)
def test_labels_map_without_stretch_mirroring_or_upside_down(kind):
    for seed in SEEDS:
        jac, n, area = _label_jacobians(asset(kind, seed).mesh)
        assert len(jac) > 0
        sv = np.linalg.svd(jac, compute_uv=False)
        aniso = sv[:, 0] / sv[:, 1]
        if kind == "pouch":  # an inflated pillow cannot be flattened exactly; its corners stretch
            assert np.sum(area * aniso) / area.sum() < 1.12 and np.percentile(aniso, 90) < 1.2
        elif kind == "tube":  # the section flattens from a circle to a line along the tube
            assert aniso.max() < 1.1
        else:
            assert aniso.max() < 1.01, f"texel aspect differs from surface aspect by {aniso.max():.3f}"
        # image right x image up, seen from outside, must be the outward normal (not mirrored)
        facing = np.einsum("ij,ij->i", np.cross(jac[:, :, 0], jac[:, :, 1]), n)
        assert np.all(facing > 0), "mirrored label faces"
        side = np.abs(n[:, 2]) < 0.3
        if kind != "tube":  # tubes print along their length on purpose
            assert np.all(jac[side, 2, 1] > 0), "labels on the sides must read upright"
        density = 1.0 / sv[:, 0]
        assert density.min() > 0.7 * density.max(), "texel density should be uniform across the pack"


@pytest.mark.parametrize("kind", ["box", "can", "pouch", "hex_nut", "spur_gear", "pipe_fitting"])
def test_glb_round_trip_keeps_geometry_texture_and_material(kind):
    a = asset(kind, 1)
    data = a.mesh.export(file_type="glb")
    back = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
    assert len(back.faces) == len(a.mesh.faces)
    assert len(back.vertices) == len(a.mesh.vertices), "normals/UV splits must survive a reload"
    assert np.allclose(back.extents, a.mesh.extents, atol=1e-6)
    assert closed_solid(back).is_watertight
    mat = back.visual.material
    if kind in RETAIL_KINDS:
        assert np.array_equal(
            np.asarray(mat.baseColorTexture.convert("RGB")),
            np.asarray(a.mesh.visual.material.baseColorTexture),
        )
        assert mat.metallicRoughnessTexture is not None
        assert np.allclose(back.visual.uv, a.mesh.visual.uv, atol=1e-6)
    else:
        want = np.round(np.array(a.material.base_color) * 255)
        assert np.allclose(np.asarray(mat.baseColorFactor, dtype=float), want, atol=1.0)
        assert mat.metallicFactor == pytest.approx(a.material.metallic)
        assert mat.roughnessFactor == pytest.approx(a.material.roughness)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_same_seed_gives_identical_bytes(kind):
    a, b = generate_asset(kind, 7), generate_asset(kind, 7)
    assert a.mesh.export(file_type="glb") == b.mesh.export(file_type="glb")
    if kind in RETAIL_KINDS:
        pa, pb = io.BytesIO(), io.BytesIO()
        a.mesh.visual.material.baseColorTexture.save(pa, format="PNG")
        b.mesh.visual.material.baseColorTexture.save(pb, format="PNG")
        assert pa.getvalue() == pb.getvalue()


def test_determinism_holds_across_processes():
    """No hidden global state: another interpreter (different hash seed) writes the same bytes."""
    code = textwrap.dedent("""
        import hashlib, sys
        from synth.procedural import generate_asset
        for kind in ("box", "tube", "hex_bolt", "l_bracket"):
            print(hashlib.sha256(generate_asset(kind, 11).mesh.export(file_type="glb")).hexdigest())
    """)
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    here = [
        hashlib.sha256(generate_asset(k, 11).mesh.export(file_type="glb")).hexdigest()
        for k in ("box", "tube", "hex_bolt", "l_bracket")
    ]
    assert out.stdout.split() == here


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_different_seeds_differ(kind):
    assets = [asset(kind, s) for s in SEEDS]
    glbs = {hashlib.sha256(a.mesh.export(file_type="glb")).hexdigest() for a in assets}
    assert len(glbs) == len(SEEDS)
    if kind in RETAIL_KINDS:
        assert len({tuple(np.round(a.mesh.extents, 5)) for a in assets}) == len(SEEDS)
        assert len({a.label.brand for a in assets}) == len(SEEDS)
        imgs = [
            np.asarray(a.mesh.visual.material.baseColorTexture.resize((64, 64))).astype(float) for a in assets
        ]
        for i in range(len(imgs)):
            for j in range(i + 1, len(imgs)):
                assert np.abs(imgs[i] - imgs[j]).mean() > 10, "labels of different seeds look alike"
    else:
        many = {tuple(np.round(asset(kind, s).mesh.extents, 6)) for s in range(6)}
        assert len(many) >= 3, "industrial sizes should vary with the seed"


# ---- EAN-13 ------------------------------------------------------------------------------------------------

KNOWN_EANS = ("4006381333931", "5901234123457", "9780306406157", "0012345678905", "8710398527233")
_L = (
    "0001101",
    "0011001",
    "0010011",
    "0111101",
    "0100011",
    "0110001",
    "0101111",
    "0111011",
    "0110111",
    "0001011",
)
_PARITY_BY_FIRST = (
    "LLLLLL",
    "LLGLGG",
    "LLGGLG",
    "LLGGGL",
    "LGLLGG",
    "LGGLLG",
    "LGGGLL",
    "LGLGLG",
    "LGLGGL",
    "LGGLGL",
)


def _decode_modules(bits: str) -> str:
    """An independent decoder: read the 95 modules back into 13 digits."""
    assert len(bits) == 95 and bits[:3] == "101" and bits[45:50] == "01010" and bits[92:] == "101"
    left, right = bits[3:45], bits[50:92]
    digits, parity = [], ""
    for i in range(6):
        c = left[7 * i : 7 * i + 7]
        if c in _L:
            digits.append(_L.index(c))
            parity += "L"
        else:
            g = c[::-1].translate(str.maketrans("01", "10"))  # G code = reversed R = reversed inverted L
            digits.append(_L.index(g))
            parity += "G"
    for i in range(6):
        c = right[7 * i : 7 * i + 7].translate(str.maketrans("01", "10"))
        digits.append(_L.index(c))
    return str(_PARITY_BY_FIRST.index(parity)) + "".join(map(str, digits))


def test_ean13_check_digit_and_bars_of_known_codes():
    assert ean13_check_digit("400638133393") == 1
    assert ean13_check_digit("590123412345") == 7
    for code in KNOWN_EANS:
        assert ean13_check_digit(code[:12]) == int(code[12])
        bits = ean13_modules(code)
        assert _decode_modules(bits) == code
    assert ean13_modules("4006381333931")[3:10] == "0001101"  # first left digit 0 in L code


def test_ean13_rejects_bad_input():
    with pytest.raises(AssetError, match="check digit"):
        ean13_modules("4006381333932")
    with pytest.raises(AssetError, match="13 digits"):
        ean13_modules("40063813339")
    with pytest.raises(AssetError):
        ean13_check_digit("12345678901x")


def _scan(cv2, img: Image.Image, box) -> str:
    """Decode the EAN-13 inside ``box`` (x0, y0, x1, y1) with OpenCV's decoder (localisation skipped:
    its detector is unreliable on clean synthetic images, its decoder is not)."""
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y1], [x0, y0], [x1, y0], [x1, y1]], dtype=np.float32).reshape(1, 4, 2)
    _, decoded, _ = cv2.barcode.BarcodeDetector().decodeWithType(np.asarray(img)[:, :, ::-1].copy(), pts)
    text = decoded[0] if decoded else ""
    return "0" + text if len(text) == 12 else text  # an EAN-13 starting with 0 reads as UPC-A


def test_drawn_barcodes_scan_with_an_independent_decoder():
    cv2 = pytest.importorskip("cv2")
    for code, module in zip(KNOWN_EANS, (2, 3, 4, 2, 1), strict=True):
        w, h = barcode_size(module)
        img = Image.new("RGB", (w + 40, h + 40), (255, 255, 255))
        draw_ean13(img, code, 20, 20, module)
        k = 2 if module == 1 else 1  # a 1-pixel module is read after nearest-neighbour upscaling
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
        assert _scan(cv2, img, (20 * k, 20 * k, (20 + w) * k, (20 + 0.7 * h) * k)) == code
    # The barcode printed on a generated pack's back panel encodes that pack's EAN.
    for kind in ("box", "can", "pouch", "jar"):
        design = asset(kind, 2).label
        panel = info_panel(design, 400, 600, module_px=2)
        ys, xs = np.nonzero(np.all(np.asarray(panel) == 0, axis=2))  # bars and digits are pure black
        y0, y1 = ys.min(), ys.max()
        assert _scan(cv2, panel, (xs.min() - 22, y0, xs.max() + 14, y0 + 0.7 * (y1 - y0))) == design.ean


# ---- finishes, library, errors ---------------------------------------------------------------------------------


def test_metal_finishes_have_their_characteristic_colour():
    zinc, brass, black = (
        METALS["zinc"].base_color,
        METALS["brass"].base_color,
        METALS["black_oxide"].base_color,
    )
    assert zinc[2] > zinc[0] + 0.05, "zinc plating is bluish silver"
    assert brass[0] > brass[2] + 0.3, "brass is yellow"
    assert max(black) < 0.1
    assert linear_to_srgb8((0.0, 0.5, 1.0)) == (0, 188, 255)
    assert np.allclose(srgb8_to_linear(linear_to_srgb8((0.2, 0.4, 0.8))), (0.2, 0.4, 0.8), atol=0.005)
    bolt = asset("hex_bolt", 0)
    assert bolt.material.finish in METALS and bolt.material.metallic > 0


def test_default_library_cycles_kinds_with_stable_seeds():
    lib = default_library(10, 12, seed=3)
    assert [k for k, _ in lib[:10]] == [RETAIL_KINDS[i % len(RETAIL_KINDS)] for i in range(10)]
    assert [k for k, _ in lib[10:]] == [INDUSTRIAL_KINDS[i % len(INDUSTRIAL_KINDS)] for i in range(12)]
    assert len({s for _, s in lib}) == len(lib)
    assert lib == default_library(10, 12, seed=3)
    bigger = default_library(14, 15, seed=3)
    assert bigger[:10] == lib[:10] and bigger[14:26] == lib[10:], "growing a library keeps its items"
    assert default_library(10, 12, seed=4) != lib
    assert default_library(0, 0, seed=1) == []
    with pytest.raises(AssetError):
        default_library(-1, 2, seed=0)


def test_bad_requests_raise_one_line_asset_errors():
    with pytest.raises(AssetError, match="unknown kind 'spaceship'.*hex_bolt") as e:
        generate_asset("spaceship", 0)
    assert "\n" not in str(e.value)
    with pytest.raises(AssetError, match="seed"):
        generate_asset("can", -1)
    with pytest.raises(AssetError, match="seed"):
        generate_asset("can", 1.5)


# ---- a real render --------------------------------------------------------------------------------------------

_RENDER_SCRIPT = textwrap.dedent("""
    import io, json, os, sys
    os.environ["PYOPENGL_PLATFORM"] = "egl"
    import numpy as np, trimesh, pyrender
    from PIL import Image
    from synth.procedural import generate_asset

    a = generate_asset("box", int(sys.argv[1]))
    m = trimesh.load(io.BytesIO(a.mesh.export(file_type="glb")), file_type="glb", force="mesh")
    w, d, h = m.extents
    scene = pyrender.Scene(ambient_light=[1.0, 1.0, 1.0], bg_color=[0, 0, 0, 1])
    scene.add(pyrender.Mesh.from_trimesh(m))
    # camera -Z (its viewing direction) = +Y, camera +Y (image up) = +Z, camera +X = +X
    pose = np.array([[1, 0, 0, 0], [0, 0, -1, -1.0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
    scene.add(pyrender.OrthographicCamera(xmag=w / 2, ymag=h / 2, znear=0.01, zfar=5.0), pose=pose)
    H = 400
    W = int(round(H * w / h))
    r = pyrender.OffscreenRenderer(W, H)
    color, _ = r.render(scene, flags=pyrender.RenderFlags.FLAT)
    r.delete()
    tex = a.mesh.visual.material.baseColorTexture
    faces = a.mesh.faces[a.mesh.face_normals[:, 1] < -0.99]
    uv = a.mesh.visual.uv[faces].reshape(-1, 2)
    x0, x1 = uv[:, 0].min() * tex.width, uv[:, 0].max() * tex.width
    y0, y1 = (1 - uv[:, 1].max()) * tex.height, (1 - uv[:, 1].min()) * tex.height
    front = np.asarray(tex.crop((round(x0), round(y0), round(x1), round(y1))).resize((W, H), Image.BILINEAR), float)
    img = color.astype(float)
    print(json.dumps({"upright": float(np.abs(img - front).mean()),
                      "mirrored": float(np.abs(img - front[:, ::-1]).mean()),
                      "upside_down": float(np.abs(img - front[::-1]).mean())}))
""")


def test_pyrender_shows_the_front_panel_upright_on_the_front_face():
    """Render the GLB with pyrender (in a subprocess: an EGL context must not share a process with
    torchvision) looking along +Y, and compare with the front panel artwork."""
    pytest.importorskip("pyrender")
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    out = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT, "3"], capture_output=True, text=True, env=env, timeout=120
    )
    if out.returncode != 0 and ("EGL" in out.stderr or "OpenGL" in out.stderr):
        pytest.skip(f"no EGL rendering here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["upright"] < 12, d
    assert d["mirrored"] > d["upright"] + 15 and d["upside_down"] > d["upright"] + 15, d


def test_metal_rough_map_is_reduced_and_keeps_every_panels_finish():
    """The metallic-roughness map is a quarter of the colour atlas a side (it is constant per panel), and
    bilinear sampling at the middle of every panel, even the smallest, still reads that panel's finish."""
    from synth.procedural.atlas import MR_REDUCTION, Atlas
    from synth.procedural.finishes import Finish

    finishes = [Finish(f"f{i}", (0.5, 0.5, 0.5), metallic=i % 2, roughness=0.1 + 0.2 * i) for i in range(4)]
    atlas = Atlas()
    for i, (w, h) in enumerate([(0.1, 0.05), (0.002, 0.002), (0.03, 0.2), (0.001, 0.09)]):
        atlas.reserve(f"p{i}", w, h, finishes[i])
    atlas.reserve_swatch("cap", (200, 10, 10), finishes[3])
    atlas.pack()
    for i in range(4):
        w, h = atlas.pixels(f"p{i}")
        atlas.paint(f"p{i}", Image.new("RGB", (w, h), (i * 60, 0, 0)))
    base, mr = atlas.images()
    assert mr.size == (base.size[0] // MR_REDUCTION, base.size[1] // MR_REDUCTION)
    texture = trimesh.visual.material.PBRMaterial(metallicRoughnessTexture=mr).metallicRoughnessTexture
    mr01 = np.asarray(texture.convert("RGB"), dtype=np.float64)
    names = [f"p{i}" for i in range(4)] + ["cap"]
    for name, finish in zip(names, finishes + [finishes[3]], strict=True):
        r = atlas.region(name)
        u, v = np.asarray(r.uv(0.5, 0.5), dtype=np.float64)
        # bilinear lookup at the UV, as a renderer samples the base level
        x, y = u * mr.size[0] - 0.5, (1.0 - v) * mr.size[1] - 0.5
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        patch = mr01[y0 : y0 + 2, x0 : x0 + 2]
        value = (
            patch[0, 0] * (1 - fx) * (1 - fy)
            + patch[0, 1] * fx * (1 - fy)
            + patch[1, 0] * (1 - fx) * fy
            + patch[1, 1] * fx * fy
        )
        assert value[1] == pytest.approx(round(finish.roughness * 255), abs=0.5), name
        assert value[2] == pytest.approx(round(finish.metallic * 255), abs=0.5), name
