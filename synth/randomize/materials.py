"""Looks: realistic materials (catalog finishes, store and workshop surfaces) or domain-randomized ones,
and the background behind the scene.

In a realistic image a product keeps its own texture with its catalog finish slightly jittered, and each
kind of support (all boards of a shelf, all walls of a bin) shares one plausible material. In a randomized
image every object and surface gets its own random procedural texture ("flying textures", Tobin et al.
2017), which teaches a detector shape over appearance.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from synth.catalog import SkuRecord
from synth.randomize.placed import Placed, uniform
from synth.randomize.settings import BackgroundConfig, MaterialsConfig, list_photos
from synth.scene import Environment, Material, TextureSpec

_SEED_MAX = 2**31 - 1

# Realistic palettes per support surface: (texture kinds, base colours RGB, metallic, roughness range).
_PAINTED_METAL = [
    (0.92, 0.92, 0.9),
    (0.75, 0.76, 0.78),
    (0.35, 0.36, 0.38),
    (0.08, 0.08, 0.09),
    (0.85, 0.82, 0.74),
]
_PLASTIC = [
    (0.1, 0.25, 0.6),
    (0.7, 0.1, 0.08),
    (0.9, 0.7, 0.05),
    (0.1, 0.45, 0.2),
    (0.45, 0.47, 0.5),
    (0.08, 0.08, 0.08),
]
_WOODS = [(0.62, 0.44, 0.26), (0.75, 0.6, 0.42), (0.4, 0.26, 0.15), (0.85, 0.75, 0.6)]
_FLOORS = [(0.75, 0.74, 0.7), (0.55, 0.55, 0.55), (0.82, 0.78, 0.68), (0.4, 0.42, 0.44)]
_TAG_COLOURS = [(0.97, 0.97, 0.95), (0.98, 0.9, 0.2), (0.98, 0.55, 0.1), (0.85, 0.12, 0.1)]


def randomized_image(cfg: MaterialsConfig, rng: np.random.Generator) -> bool:
    """Whether this image is domain-randomized (drawn even when the mode decides, to keep streams aligned)."""
    draw = rng.random()
    return cfg.mode == "randomized" or (cfg.mode == "mix" and draw < cfg.randomized_probability)


def object_material(
    obj: Placed, cfg: MaterialsConfig, randomized: bool, rng: np.random.Generator
) -> Material:
    """Targets and distractors. Primitive distractors always get random textures: they are clutter."""
    if randomized or obj.record is None:
        return random_material(cfg, rng)
    return catalog_material(obj.record, cfg, rng)


def catalog_material(record: SkuRecord, cfg: MaterialsConfig, rng: np.random.Generator) -> Material:
    """The catalog's finish, jittered; textured products keep their own label texture."""
    hints = record.material
    tint = 1.0 + rng.uniform(-cfg.color_jitter, cfg.color_jitter, 3)
    if hints.textured:  # the texture carries the colour: only a slight darkening / tint (factor <= 1)
        base = np.clip(np.minimum(tint, 1.0), 0.0, 1.0)
    else:
        base = np.clip(np.asarray(hints.base_color[:3]) * tint, 0.0, 1.0)
    metallic = float(np.clip(hints.metallic + rng.uniform(-cfg.metallic_jitter, cfg.metallic_jitter), 0, 1))
    roughness = float(
        np.clip(hints.roughness + rng.uniform(-cfg.roughness_jitter, cfg.roughness_jitter), 0.02, 1)
    )
    return Material(
        base_color=(*_rgb(base), float(hints.base_color[3])),
        metallic=_r(metallic),
        roughness=_r(roughness),
        use_mesh_texture=True,
    )


def random_material(cfg: MaterialsConfig, rng: np.random.Generator) -> Material:
    kind = cfg.texture_kinds[int(rng.integers(len(cfg.texture_kinds)))]
    return Material(
        base_color=(1.0, 1.0, 1.0, 1.0),
        metallic=_r(rng.uniform(0.0, 0.5)),
        roughness=_r(rng.uniform(0.15, 1.0)),
        specular=_r(rng.uniform(0.2, 0.8)),
        texture=_random_texture(kind, rng),
        use_mesh_texture=False,
    )


class SupportLooks:
    """One material per support surface kind per image (a shelf's boards match), except price tags."""

    def __init__(self, cfg: MaterialsConfig, randomized: bool, rng: np.random.Generator):
        self.cfg = cfg
        self.randomized = randomized
        self.rng = rng
        self._chosen: dict[str, Material] = {}

    def material(self, obj: Placed) -> Material:
        surface = obj.surface or "floor"
        if self.randomized:
            return random_material(self.cfg, self.rng)
        if surface == "price_tag":
            return _price_tag(self.rng)
        if surface not in self._chosen:
            self._chosen[surface] = self._realistic(surface)
        return self._chosen[surface]

    def _realistic(self, surface: str) -> Material:
        rng = self.rng
        if surface in ("shelf_board", "shelf_panel", "shelf_back"):
            if surface != "shelf_board" and "shelf_board" in self._chosen:
                return self._chosen["shelf_board"]  # uprights and back match the boards
            if rng.random() < 0.2:
                return _textured(
                    "wood", _wood_tones(_pick(_WOODS, rng)), 0.0, (0.4, 0.7), rng, repeat=(1.0, 3.0)
                )
            colour = _pick(_PAINTED_METAL, rng)
            return _textured("brushed", _shades(colour, 0.06), 0.3, (0.3, 0.6), rng, repeat=(1.0, 4.0))
        if surface == "price_strip":
            return Material(
                base_color=(*_pick(_PAINTED_METAL + [(0.1, 0.3, 0.7)], rng), 1.0),
                roughness=0.4,
                use_mesh_texture=False,
            )
        if surface in ("table_top", "worktop"):
            k = rng.random()
            if k < 0.5:
                return _textured(
                    "wood", _wood_tones(_pick(_WOODS, rng)), 0.0, (0.3, 0.7), rng, repeat=(1.0, 2.5)
                )
            if surface == "worktop" and k < 0.75:
                return _textured(
                    "brushed", _shades((0.6, 0.6, 0.62), 0.1), 0.8, (0.25, 0.5), rng, repeat=(1.0, 3.0)
                )
            return _textured(
                "noise",
                _shades(_pick(_FLOORS + _PAINTED_METAL, rng), 0.08),
                0.0,
                (0.4, 0.8),
                rng,
                repeat=(1.0, 2.0),
            )
        if surface == "table_leg":
            return Material(
                base_color=(*_pick(_PAINTED_METAL, rng), 1.0),
                metallic=0.6,
                roughness=0.4,
                use_mesh_texture=False,
            )
        if surface in ("bin", "basket"):
            return _textured(
                "noise", _shades(_pick(_PLASTIC, rng), 0.05), 0.0, (0.35, 0.75), rng, repeat=(1.0, 2.0)
            )
        if surface == "tray":
            if rng.random() < 0.5:
                return _textured(
                    "brushed", _shades((0.65, 0.66, 0.68), 0.1), 0.85, (0.2, 0.45), rng, repeat=(1.0, 2.0)
                )
            return _textured("noise", _shades(_pick(_PLASTIC, rng), 0.05), 0.0, (0.35, 0.75), rng)
        # floor
        if rng.random() < 0.5:
            tiles = _pick(_FLOORS, rng)
            return _textured(
                "checker", [tiles, tuple(c * 0.9 for c in tiles)], 0.0, (0.3, 0.7), rng, repeat=(4.0, 12.0)
            )
        return _textured(
            "noise", _shades(_pick(_FLOORS, rng), 0.12), 0.0, (0.6, 0.95), rng, repeat=(2.0, 6.0)
        )


def sample_environment(
    cfg: BackgroundConfig, ambient_color, ambient: float, rng: np.random.Generator
) -> Environment:
    """Backdrop: a user photo, a procedural pattern, or a plain colour (always set as the fallback)."""
    brightness = uniform(rng, cfg.brightness)
    colour = np.clip(brightness * (1.0 + rng.uniform(-0.25, 0.25, 3)), 0.0, 1.0)
    texture = None
    use_photo = cfg.photos_dir is not None and rng.random() < cfg.photo_probability
    if use_photo:
        photos = _photos(str(Path(cfg.photos_dir).resolve()))
        texture = TextureSpec(file=str(photos[int(rng.integers(len(photos)))]))
    elif cfg.procedural_kinds:
        kind = cfg.procedural_kinds[int(rng.integers(len(cfg.procedural_kinds)))]
        palette = [tuple(_rgb(np.clip(brightness * rng.uniform(0.5, 1.5, 3), 0, 1))) for _ in range(3)]
        texture = TextureSpec(
            procedural=kind,
            seed=int(rng.integers(_SEED_MAX)),
            colors=palette,
            scale=_r(rng.uniform(0.5, 3.0)),
            size=512,
        )
    return Environment(
        background_color=_rgb(colour),
        background_texture=texture,
        ambient_color=ambient_color,
        ambient_intensity=_r(ambient),
    )


# ---- helpers -------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _photos_cached(folder: str, _mtime_ns: int) -> tuple[Path, ...]:
    return tuple(p.resolve() for p in list_photos(folder))


def _photos(folder: str) -> tuple[Path, ...]:
    photos = _photos_cached(folder, Path(folder).stat().st_mtime_ns)
    if not photos:
        from synth.errors import ConfigError

        raise ConfigError(folder, "key 'background.photos_dir': the folder has no images any more")
    return photos


def _random_texture(kind: str, rng: np.random.Generator) -> TextureSpec:
    n = int(rng.integers(2, 5))
    palette = [] if kind == "flying" else [tuple(_rgb(rng.random(3))) for _ in range(n)]
    return TextureSpec(
        procedural=kind,
        seed=int(rng.integers(_SEED_MAX)),
        colors=palette,
        scale=_r(rng.uniform(0.5, 4.0)),
        size=256,
        repeat=_r(rng.uniform(1.0, 3.0)),
    )


def _textured(kind: str, colours, metallic: float, roughness, rng, repeat=(1.0, 1.0)) -> Material:
    colours = [colours] if isinstance(colours[0], (int, float)) else colours
    spec = TextureSpec(
        procedural=kind,
        seed=int(rng.integers(_SEED_MAX)),
        colors=[tuple(_rgb(c)) for c in colours],
        scale=_r(rng.uniform(0.7, 1.5)),
        size=512,
        repeat=_r(uniform(rng, repeat)),
    )
    return Material(
        base_color=(1.0, 1.0, 1.0, 1.0),
        metallic=metallic,
        roughness=_r(uniform(rng, roughness)),
        texture=spec,
        use_mesh_texture=False,
    )


def _price_tag(rng) -> Material:
    paper = _pick(_TAG_COLOURS, rng)
    ink = (0.05, 0.05, 0.05) if sum(paper) > 1.5 else (0.97, 0.97, 0.97)
    spec = TextureSpec(
        procedural="stripes",
        seed=int(rng.integers(_SEED_MAX)),
        colors=[paper, paper, ink],
        scale=_r(rng.uniform(0.6, 1.4)),
        size=128,
    )
    return Material(base_color=(1.0, 1.0, 1.0, 1.0), roughness=0.5, texture=spec, use_mesh_texture=False)


def _pick(options: list, rng) -> tuple[float, float, float]:
    return tuple(options[int(rng.integers(len(options)))])


def _shades(colour, spread: float) -> list[tuple[float, float, float]]:
    """Two close tones of a colour, the palette of a subtle pattern."""
    c = np.asarray(colour, dtype=np.float64)
    return [_rgb(np.clip(c * (1 + spread), 0, 1)), _rgb(np.clip(c * (1 - spread), 0, 1))]


def _wood_tones(colour) -> list[tuple[float, float, float]]:
    """Early wood and the darker late-wood rings."""
    c = np.asarray(colour, dtype=np.float64)
    return [_rgb(c), _rgb(c * 0.6)]


def _rgb(c) -> tuple[float, float, float]:
    return tuple(round(float(x), 6) for x in c)


def _r(x: float) -> float:
    return round(float(x), 6)
