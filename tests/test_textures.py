"""synth.textures: procedural patterns are deterministic per seed, respect the palette, and files load."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synth.errors import AssetError
from synth.scene import TextureSpec
from synth.textures import PROCEDURAL_KINDS, clear_cache, make_texture, texture_digest


@pytest.mark.parametrize("kind", PROCEDURAL_KINDS)
def test_procedural_kind_is_deterministic_and_seed_dependent(kind):
    spec = TextureSpec(procedural=kind, seed=7, size=64)
    a = make_texture(spec)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert not a.flags.writeable  # shared by the cache: callers must not be able to corrupt it
    assert a.std() > 1.0, "a pattern, not a flat colour"
    clear_cache()
    b = make_texture(TextureSpec(procedural=kind, seed=7, size=64))
    assert b is not a and np.array_equal(a, b), "same spec -> same pixels, cached or not"
    c = make_texture(TextureSpec(procedural=kind, seed=8, size=64))
    assert not np.array_equal(a, c), "another seed -> another texture"


def test_cache_returns_the_same_array_for_the_same_spec():
    spec = TextureSpec(procedural="noise", seed=1, size=32)
    assert make_texture(spec) is make_texture(TextureSpec.model_validate_json(spec.model_dump_json()))


def test_checker_uses_exactly_the_palette():
    spec = TextureSpec(
        procedural="checker", seed=0, size=64, colors=[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)], scale=1.0
    )
    img = make_texture(spec)
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert colours == {(255, 0, 0), (0, 0, 255)}
    # 8 squares per side at scale 1: neighbouring squares alternate
    assert tuple(img[0, 0]) != tuple(img[0, 8]) and tuple(img[0, 0]) == tuple(img[8, 8])


def test_scale_changes_the_frequency_of_stripes():
    def transitions(scale):
        img = make_texture(
            TextureSpec(procedural="stripes", seed=3, size=128, scale=scale, colors=[(0, 0, 0), (1, 1, 1)])
        )
        row = img[64, :, 0].astype(int)
        col = img[:, 64, 0].astype(int)
        return np.count_nonzero(np.diff(row)) + np.count_nonzero(np.diff(col))

    assert transitions(3.0) > 2 * transitions(1.0)


@pytest.mark.parametrize("size,cells", [(512, 2), (256, 3), (300, 4), (37, 5), (128, 16), (8, 8)])
def test_value_noise_is_a_cubic_upsampling_of_the_wrapped_lattice(size, cells):
    """The axis-at-a-time upsampling equals one 2-D cubic resize of the padded lattice, cropped."""
    import cv2

    from synth.textures import _value_noise

    got = _value_noise(size, cells, np.random.default_rng(3), octaves=1)
    lattice = np.random.default_rng(3).random((cells, cells))
    cell = -(-size // cells)
    padded = np.pad(lattice, 2, mode="wrap").astype(np.float32)
    big = cv2.resize(padded, ((cells + 4) * cell,) * 2, interpolation=cv2.INTER_CUBIC)
    want = big[2 * cell : (cells + 2) * cell, 2 * cell : (cells + 2) * cell].astype(np.float64)
    if want.shape[0] != size:
        want = cv2.resize(want.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    want = (want - want.min()) / (want.max() - want.min())
    assert got.shape == (size, size)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_noise_is_tileable():
    img = make_texture(TextureSpec(procedural="noise", seed=5, size=128)).astype(float)
    seam = np.abs(img[:, 0] - img[:, -1]).mean()  # across the wrap-around
    inner = np.abs(img[:, 64] - img[:, 65]).mean()  # between neighbouring columns
    far = np.abs(img[:, 0] - img[:, 64]).mean()
    assert seam < 4 * inner + 2 and seam < far


def test_file_texture_loads_as_rgb(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    path = tmp_path / "label.png"
    Image.fromarray(pixels, "RGBA").save(path)
    img = make_texture(TextureSpec(file=str(path)))
    assert img.shape == (20, 30, 3)
    assert np.array_equal(img, pixels[..., :3])


def test_file_texture_errors_are_one_line(tmp_path):
    with pytest.raises(AssetError, match="texture file not found"):
        make_texture(TextureSpec(file=str(tmp_path / "missing.png")))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(AssetError, match="cannot read texture image"):
        make_texture(TextureSpec(file=str(bad)))
    with pytest.raises(AssetError, match="both"):
        make_texture(TextureSpec(file=str(bad), procedural="noise"))
    with pytest.raises(AssetError, match="neither"):
        make_texture(TextureSpec())
    with pytest.raises(AssetError, match="texture.size"):
        make_texture(TextureSpec(procedural="noise", size=2))


def test_digest_names_the_spec():
    a = TextureSpec(procedural="wood", seed=1)
    assert texture_digest(a) == texture_digest(TextureSpec(procedural="wood", seed=1))
    assert texture_digest(a) != texture_digest(TextureSpec(procedural="wood", seed=2))
