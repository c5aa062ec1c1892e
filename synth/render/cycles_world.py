"""Scene lights and environment as Blender lights and a world shader.

Units are those of ``synth.scene.Light``: point, spot and area lights take their power in watts (Blender's
``energy``), a directional light its irradiance in W/m^2 (a Blender sun's ``strength``). All lights shine
down local -Z, as Blender's do, so poses are copied unchanged. ``Light.size`` is the emitter size: the
side of an area light and the diameter of a point or spot light's sphere (soft shadows, as from a
real bulb); suns get the angular size of the real sun.

The world shader separates what the camera sees from what lights the scene:
  * camera rays see ``background_texture`` covering the frame (centre crop at the texture's aspect, the
    same mapping as pyrender's backdrop), else the HDRI / sky, else ``background_color``;
  * every other ray sees the lighting environment: the HDRI (equirectangular) or the procedural sky,
    tinted by ``ambient_color`` and scaled by ``ambient_intensity``, or else the uniform ambient colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from synth.errors import AssetError
from synth.render.cycles_materials import MaterialLibrary
from synth.scene import Environment, Light, pose_matrix

SUN_ANGLE = math.radians(0.53)  # the sun's apparent diameter
# The multiple-scattering sky (no sun disc, sun 10-60 degrees up) has a mean upper-hemisphere radiance of
# about 3-6 in Blender units (measured); this brings it to ~1 so ``ambient_intensity`` means the same
# for a sky as for a uniform ambient colour.
SKY_TO_UNIT = 0.2
SKY_MAP_RESOLUTION = 256  # importance map for the (smooth, sun-less) sky
_BLENDER_LIGHT = {"point": "POINT", "spot": "SPOT", "directional": "SUN", "area": "AREA"}


def add_light(light: Light, name: str, collection) -> bpy.types.Object:
    data = bpy.data.lights.new(name, _BLENDER_LIGHT[light.kind])
    data.color = light.color
    data.energy = light.intensity
    if light.kind in ("point", "spot"):
        data.shadow_soft_size = light.size / 2
    if light.kind == "spot":
        data.spot_size = light.spot_angle
        data.spot_blend = light.spot_blend
    elif light.kind == "area":
        data.shape = "SQUARE"
        data.size = light.size
    elif light.kind == "directional":
        data.angle = SUN_ANGLE
    obj = bpy.data.objects.new(name, data)
    obj.visible_camera = False  # a scene light is not a scene object: never drawn, never hides labels
    obj.matrix_world = Matrix(pose_matrix(light.pose).tolist())
    collection.objects.link(obj)
    return obj


def sun_angles(lights: list[Light]) -> tuple[float, float]:
    """(elevation, rotation) of the sky's sun: towards the first directional light, else 45 degrees up.

    Blender's sky puts its sun in direction (sin(rot) cos(el), cos(rot) cos(el), sin(el)) (measured with
    bpy 5.0.1); the light's +Z axis is the direction its light comes from.
    """
    for light in lights:
        if light.kind == "directional":
            d = pose_matrix(light.pose)[:3, 2]
            d = d / max(np.linalg.norm(d), 1e-12)
            elevation = math.asin(float(np.clip(d[2], -1.0, 1.0)))
            rotation = math.atan2(float(d[0]), float(d[1]))
            return max(elevation, 0.0), rotation
    return math.radians(45.0), 0.0


def backdrop_mapping(
    texture_size: tuple[int, int], frame_size: tuple[int, int], repeat: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(scale, offset) taking window coordinates (0..1 over the frame) to texture coordinates so the
    backdrop *covers* the frame: the texture (tiled ``repeat`` times) keeps its aspect and its centre is
    cropped, exactly as pyrender's backdrop composite does."""
    (w, h), (fw, fh) = texture_size, frame_size
    s = max(fw / w, fh / h)
    fx, fy = min(w, fw / s) / w, min(h, fh / s) / h
    return (fx * repeat, fy * repeat), ((0.5 - 0.5 * fx) * repeat, (0.5 - 0.5 * fy) * repeat)


class WorldBuilder:
    """Rebuilds the world node tree only when the environment (or the sun) changes."""

    def __init__(self, scene, materials: MaterialLibrary, hdri_root: str | None, sky_strength: float):
        self.world = bpy.data.worlds.new("simreal-world")
        scene.world = self.world
        self._materials = materials
        self._hdri_root = Path(hdri_root) if hdri_root else None
        self._sky_strength = sky_strength
        self._key: str | None = None
        self._frame_size = (1, 1)
        self._hdri_cache: dict[str, bpy.types.Image] = {}

    def update(self, env: Environment, lights: list[Light], frame_size: tuple[int, int]) -> None:
        sun = sun_angles(lights) if env.sky and not env.hdri else None
        self._frame_size = frame_size
        key = env.model_dump_json() + repr(sun) + (repr(frame_size) if env.background_texture else "")
        if env.background_texture is not None:
            self._materials.image(env.background_texture)  # keep the backdrop image alive this frame
        if key == self._key:
            return
        self._key = None  # a failed build (missing HDRI) must not be mistaken for a finished one
        self._build(env, sun)
        self._key = key

    def _set_importance_map(self, env: Environment) -> None:
        """Cycles samples the world by an importance map it rebuilds whenever the world changes; at the
        default 1024 px that costs 1-3 CPU seconds per image here. A uniform ambient needs no map, a smooth
        sky a small one, an HDRI one about half its width (enough to find a sun)."""
        settings = self.world.cycles
        if env.hdri:
            width = self._hdri(env.hdri).size[0]
            settings.sampling_method = "MANUAL"
            settings.sample_map_resolution = int(
                min(1024, max(64, 2 ** math.ceil(math.log2(max(width, 2) / 2))))
            )
        elif env.sky:
            settings.sampling_method = "MANUAL"
            settings.sample_map_resolution = SKY_MAP_RESOLUTION
        else:
            settings.sampling_method = (
                "NONE"  # uniform light from every direction: nothing to importance-sample
            )

    def _hdri(self, ref: str) -> bpy.types.Image:
        path = Path(ref)
        if not path.is_absolute() and self._hdri_root is not None:
            path = self._hdri_root / path
        if not path.is_file():
            raise AssetError(path, "environment HDRI not found")
        key = str(path.resolve())
        img = self._hdri_cache.get(key)
        if img is None:
            try:
                img = bpy.data.images.load(key, check_existing=True)
            except RuntimeError as e:
                raise AssetError(path, f"cannot read HDRI ({str(e).strip()[:80]})") from None
            if img.size[0] == 0:
                raise AssetError(path, "cannot read HDRI (empty or unsupported image)")
            img.colorspace_settings.name = "Linear Rec.709"
            self._hdri_cache[key] = img
        return img

    def _build(self, env: Environment, sun: tuple[float, float] | None) -> None:
        self._set_importance_map(env)
        nt = self.world.node_tree
        nt.nodes.clear()
        out = nt.nodes.new("ShaderNodeOutputWorld")

        # --- the lighting environment (all rays but camera rays) ---
        lighting = nt.nodes.new("ShaderNodeBackground")
        tint = (*env.ambient_color, 1.0)
        if env.hdri:
            tex = nt.nodes.new("ShaderNodeTexEnvironment")
            tex.image = self._hdri(env.hdri)
            tex.projection = "EQUIRECTANGULAR"
            lighting.inputs["Strength"].default_value = env.ambient_intensity
        elif env.sky:
            tex = nt.nodes.new("ShaderNodeTexSky")
            tex.sky_type = "MULTIPLE_SCATTERING"
            tex.sun_disc = False  # the scene's directional light is the sun; no double counting
            tex.sun_elevation, tex.sun_rotation = sun
            lighting.inputs["Strength"].default_value = (
                env.ambient_intensity * self._sky_strength * SKY_TO_UNIT
            )
        else:
            tex = None
            lighting.inputs["Color"].default_value = tint
            lighting.inputs["Strength"].default_value = env.ambient_intensity
        if tex is not None:
            if env.ambient_color != (1.0, 1.0, 1.0):
                mul = nt.nodes.new("ShaderNodeVectorMath")
                mul.operation = "MULTIPLY"
                mul.inputs[1].default_value = env.ambient_color
                nt.links.new(tex.outputs["Color"], mul.inputs[0])
                nt.links.new(mul.outputs["Vector"], lighting.inputs["Color"])
            else:
                nt.links.new(tex.outputs["Color"], lighting.inputs["Color"])

        # --- what the camera sees behind everything ---
        if env.background_texture is not None:
            seen = nt.nodes.new("ShaderNodeBackground")
            coords = nt.nodes.new("ShaderNodeTexCoord")
            img = nt.nodes.new("ShaderNodeTexImage")
            img.image = self._materials.image(env.background_texture)
            img.extension = "REPEAT"
            mapping = nt.nodes.new("ShaderNodeMapping")
            scale, offset = backdrop_mapping(img.image.size, self._frame_size, env.background_texture.repeat)
            mapping.inputs["Scale"].default_value = (*scale, 1.0)
            mapping.inputs["Location"].default_value = (*offset, 0.0)
            nt.links.new(coords.outputs["Window"], mapping.inputs["Vector"])
            nt.links.new(mapping.outputs["Vector"], img.inputs["Vector"])
            nt.links.new(img.outputs["Color"], seen.inputs["Color"])
        elif tex is not None:
            seen = lighting
        else:
            seen = nt.nodes.new("ShaderNodeBackground")
            seen.inputs["Color"].default_value = (*env.background_color, 1.0)
        if seen is lighting:
            nt.links.new(lighting.outputs["Background"], out.inputs["Surface"])
            return
        path = nt.nodes.new("ShaderNodeLightPath")
        mix = nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        nt.links.new(lighting.outputs["Background"], mix.inputs[1])
        nt.links.new(seen.outputs["Background"], mix.inputs[2])
        nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])
