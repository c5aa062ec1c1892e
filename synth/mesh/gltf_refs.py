"""What a glTF pulls in -- external buffers and texture images -- checked before trimesh parses it, and
which image files its decoded textures still equal (so ``write_glb`` can embed their bytes unchanged)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import trimesh
from PIL import Image

from synth.errors import AssetError
from synth.mesh.checks import check_image, first_line, gltf_face_count, read_gltf_json
from synth.mesh.material import base_color_texture
from synth.mesh.references import SOURCE_FILE_INFO, CheckedResolver, ReferencePolicy

_TEXTURE_SLOTS = (
    "baseColorTexture",
    "metallicRoughnessTexture",
    "normalTexture",
    "occlusionTexture",
    "emissiveTexture",
)


@dataclass
class GltfReferences:
    """The checked external files of a glTF and what its JSON promises."""

    images: list[Path | None] = field(default_factory=list)  # image files textures use (None: embedded)
    files: dict[str, Path] = field(default_factory=dict)  # every external URI (as written and unquoted)
    faces: int = 0  # triangles the meshes declare
    textured_primitives: int = 0  # primitives with a base colour texture and UVs to map it

    def resolver(self, policy: ReferencePolicy) -> CheckedResolver:
        return CheckedResolver(policy, [policy.mesh.parent], self.files)


def inspect_gltf(policy: ReferencePolicy, suffix: str) -> GltfReferences:
    """Check buffers and texture images exist, are readable and are files the policy allows."""
    path = policy.mesh
    tree = read_gltf_json(path, suffix)
    refs = GltfReferences(faces=gltf_face_count(tree), textured_primitives=_textured_primitives(tree))
    for i, buf in enumerate(tree.get("buffers", [])):
        f = _external(refs, policy, buf.get("uri"), f"buffer {i}")
        if f is None:
            continue
        if not f.is_file():
            raise AssetError(path, f"buffer {i} '{buf.get('uri')}' is missing")
        if f.stat().st_size < int(buf.get("byteLength", 0)):
            raise AssetError(f, f"buffer is truncated ({f.stat().st_size} < {buf.get('byteLength')} bytes)")
    images = tree.get("images", [])
    used = {t.get("source") for t in tree.get("textures", []) if isinstance(t.get("source"), int)}
    for i in sorted(used):
        if i >= len(images):
            raise AssetError(path, f"texture refers to image {i}, which does not exist")
        f = _external(refs, policy, images[i].get("uri"), "texture image")
        if f is not None:
            if not f.is_file():
                raise AssetError(path, f"texture image '{images[i].get('uri')}' is missing")
            check_image(f, f"texture referenced by {path.name}")
        refs.images.append(f)
    return refs


def _external(refs: GltfReferences, policy: ReferencePolicy, uri: str | None, what: str) -> Path | None:
    """The file an external URI names (None for embedded data), once the policy allows it."""
    if uri is None or uri.startswith("data:"):
        return None
    f = policy.mesh.parent / unquote(uri)
    policy.check(f, policy.mesh, what, uri)
    refs.files[uri] = refs.files[unquote(uri)] = f
    return f


def _textured_primitives(tree: dict) -> int:
    materials = tree.get("materials", [])
    count = 0
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            m = prim.get("material")
            if not isinstance(m, int) or not 0 <= m < len(materials):
                continue
            info = materials[m].get("pbrMetallicRoughness", {}).get("baseColorTexture")
            uv = f"TEXCOORD_{info.get('texCoord', 0)}" if isinstance(info, dict) else None
            count += uv is not None and uv in prim.get("attributes", {})
    return count


def check_gltf_textures_loaded(path: Path, refs: GltfReferences, parts: list[trimesh.Trimesh]) -> None:
    """A glTF whose primitives map a base colour texture must not come out of the loader untextured
    (trimesh drops an image it cannot decode with a log line)."""
    if refs.textured_primitives and not any(base_color_texture(p) is not None for p in parts):
        raise AssetError(path, "its base colour texture could not be loaded")


def tag_unmodified_images(parts: list[trimesh.Trimesh], files: list[Path | None]) -> None:
    """Mark textures whose pixels equal one of the referenced image files, so ``write_glb`` can embed
    that file's bytes (glTF loaders do not say which file an image came from). ``files`` are the image
    files the glTF's textures use, ``None`` among them standing for an embedded image."""
    images = {id(img): img for img in _texture_images(parts)}
    if len(images) == 1 and len(files) == 1 and files[0] is not None:
        # one texture, one image file: it was decoded from that file (the common case; saves a decode)
        img = next(iter(images.values()))
        if _decoded(files[0], pixels=False).size == img.size:
            img.info[SOURCE_FILE_INFO] = str(files[0])
        return
    decoded: dict[Path, np.ndarray] = {}
    for img in images.values():
        if SOURCE_FILE_INFO in img.info:
            continue
        pixels = np.asarray(img)
        for f in files:
            if f is None:
                continue
            if f not in decoded:
                decoded[f] = np.asarray(_decoded(f))
            if decoded[f].shape == pixels.shape and np.array_equal(decoded[f], pixels):
                img.info[SOURCE_FILE_INFO] = str(f)
                break


def _texture_images(parts: list[trimesh.Trimesh]):
    for part in parts:
        for slot in _TEXTURE_SLOTS:
            img = getattr(getattr(part.visual, "material", None), slot, None)
            if img is not None:
                yield img


def check_textures_decode(path: Path, parts: list[trimesh.Trimesh]) -> None:
    """Every texture image the parts carry decodes: an embedded image can be broken past its header,
    and PIL decodes lazily, so this is found here rather than when the GLB is written."""
    for img in _texture_images(parts):
        try:
            img.load()
        except (OSError, ValueError, SyntaxError) as e:
            raise AssetError(path, f"a texture image cannot be decoded ({first_line(e)})") from None


def _decoded(f: Path, pixels: bool = True) -> Image.Image:
    """An image file opened (and decoded, with ``pixels``): a file that passed the header check but is
    broken further on is one line, not a PIL exception."""
    try:
        with Image.open(f) as im:
            if pixels:
                im.load()
            return im
    except (OSError, ValueError, SyntaxError) as e:
        raise AssetError(f, f"texture image cannot be decoded ({first_line(e)})") from None
