"""Scene materials and textures as Blender Principled BSDF node trees.

A ``synth.scene.Material`` maps one-to-one onto the Principled BSDF: base colour (RGBA, alpha -> Alpha),
metallic, roughness and specular -> "Specular IOR Level" (0.5 = the usual 4 % dielectric reflectance).
Textures follow glTF's rule: the image is multiplied by the base colour. Pixels always come from
``synth.textures.make_texture`` so Cycles shows exactly what pyrender shows, and a mesh's own label
texture (an image node feeding "Base Color" in the imported material) is kept when the scene asks for it.

Materials and images are cached by the JSON of what they were built from; whatever a frame did not use
is freed at the end of it, so a long shard does not accumulate thousands of datablocks.
"""

from __future__ import annotations

import bpy
import numpy as np

from synth.scene import Material, TextureSpec
from synth.textures import make_texture, texture_digest

DEFAULT_MATERIAL = Material()  # what an object with no material and no mesh material gets


def image_from_pixels(name: str, rgb: np.ndarray, colorspace: str = "sRGB") -> bpy.types.Image:
    """An in-memory Blender image (sRGB colour, or "Non-Color" data such as roughness maps) from an HxWx3 uint8 array (row 0 = top of the picture).

    Not packed: Cycles reads the image buffer directly, and packing would PNG-encode every procedural
    texture (0.8 s for a 2048^2 one on this machine) for nothing."""
    h, w = rgb.shape[:2]
    img = bpy.data.images.new(name, width=w, height=h, alpha=False)
    img.colorspace_settings.name = colorspace  # before the pixels: changing it later regenerates the buffer
    rgba = np.empty((h, w, 4), dtype=np.float32)
    rgba[..., :3] = rgb[::-1] / np.float32(255.0)  # Blender stores the bottom row first
    rgba[..., 3] = 1.0
    img.pixels.foreach_set(rgba.ravel())
    return img


def mesh_base_color_image(mat: bpy.types.Material | None) -> tuple[bpy.types.Image | None, str]:
    """The image that drives "Base Color" of an imported material (a product label), and its UV map."""
    if mat is None or mat.node_tree is None:
        return None, ""
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        return None, ""
    todo, seen = [bsdf.inputs["Base Color"]], set()
    while todo:  # walk upstream through mix / colour-attribute nodes the glTF importer inserts
        sock = todo.pop()
        for link in sock.links:
            node = link.from_node
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.type == "TEX_IMAGE" and node.image is not None:
                uv = ""
                vec = node.inputs["Vector"]
                for vlink in vec.links:
                    src = vlink.from_node
                    if src.type == "UVMAP":
                        uv = src.uv_map
                    elif src.type == "MAPPING":  # importer puts a mapping node for KHR_texture_transform
                        for l2 in src.inputs["Vector"].links:
                            if l2.from_node.type == "UVMAP":
                                uv = l2.from_node.uv_map
                return node.image, uv
            todo.extend(i for i in node.inputs if i.is_linked)
    return None, ""


class MaterialLibrary:
    """Builds and caches Blender materials and texture images for one worker's scene."""

    def __init__(self, max_images: int = 64):
        self._materials: dict[str, bpy.types.Material] = {}
        self._images: dict[str, bpy.types.Image] = {}
        self._used_materials: set[str] = set()
        self._used_images: set[str] = set()
        self._max_images = max_images

    # ---- textures ------------------------------------------------------------------------------------
    def image(self, spec: TextureSpec) -> bpy.types.Image:
        key = spec.model_dump_json()
        self._used_images.add(key)
        img = self._images.get(key)
        if img is None:
            img = image_from_pixels(f"tex-{texture_digest(spec)}", make_texture(spec))
            self._images[key] = img
        return img

    # ---- materials -----------------------------------------------------------------------------------
    def material(
        self, m: Material | None, mesh_material: bpy.types.Material | None = None
    ) -> bpy.types.Material:
        """The Blender material for scene material ``m`` on a surface whose own material is
        ``mesh_material`` (None for primitives). ``m is None`` keeps the mesh's material as imported."""
        if m is None:
            if mesh_material is not None:
                return mesh_material
            m = DEFAULT_MATERIAL
        mesh_image, uv = (None, "")
        if m.texture is None and m.use_mesh_texture:
            mesh_image, uv = mesh_base_color_image(mesh_material)
        key = m.model_dump_json() + "|" + (mesh_image.name if mesh_image is not None else "") + "|" + uv
        self._used_materials.add(key)
        mat = self._materials.get(key)
        if mat is None:
            image = self.image(m.texture) if m.texture is not None else mesh_image
            repeat = m.texture.repeat if m.texture is not None else 1.0
            mat = self._build(m, image, uv, repeat)
            self._materials[key] = mat
        elif m.texture is not None:
            self.image(m.texture)  # mark the texture used so it is not freed under the material
        return mat

    def _build(self, m: Material, image, uv: str, repeat: float) -> bpy.types.Material:
        mat = bpy.data.materials.new(f"simreal-{len(self._materials)}")
        nt = mat.node_tree
        nt.nodes.clear()
        out = nt.nodes.new("ShaderNodeOutputMaterial")
        bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
        nt.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
        r, g, b, a = m.base_color
        bsdf.inputs["Base Color"].default_value = (r, g, b, 1.0)
        bsdf.inputs["Metallic"].default_value = m.metallic
        bsdf.inputs["Roughness"].default_value = m.roughness
        bsdf.inputs["Specular IOR Level"].default_value = m.specular
        bsdf.inputs["Alpha"].default_value = a
        if image is not None:
            tex = nt.nodes.new("ShaderNodeTexImage")
            tex.image = image
            tex.interpolation = "Linear"
            tex.extension = "REPEAT"
            uvnode = nt.nodes.new("ShaderNodeUVMap")
            uvnode.uv_map = uv  # "" = the mesh's active UV map
            if repeat != 1.0:
                mapping = nt.nodes.new("ShaderNodeMapping")
                mapping.inputs["Scale"].default_value = (repeat, repeat, 1.0)
                nt.links.new(uvnode.outputs["UV"], mapping.inputs["Vector"])
                nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
            else:
                nt.links.new(uvnode.outputs["UV"], tex.inputs["Vector"])
            if (r, g, b) != (1.0, 1.0, 1.0):
                mul = nt.nodes.new("ShaderNodeVectorMath")
                mul.operation = "MULTIPLY"
                mul.inputs[1].default_value = (r, g, b)
                nt.links.new(tex.outputs["Color"], mul.inputs[0])
                nt.links.new(mul.outputs["Vector"], bsdf.inputs["Base Color"])
            else:
                nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat

    # ---- lifetime ------------------------------------------------------------------------------------
    def begin_frame(self) -> None:
        self._used_materials.clear()
        self._used_images.clear()

    def end_frame(self) -> None:
        """Free materials the frame did not use, and images beyond the cache size that it did not use."""
        for key in [k for k in self._materials if k not in self._used_materials]:
            bpy.data.materials.remove(self._materials.pop(key))
        stale = [k for k in self._images if k not in self._used_images]
        for key in stale[: max(0, len(self._images) - self._max_images)]:
            bpy.data.images.remove(self._images.pop(key))
