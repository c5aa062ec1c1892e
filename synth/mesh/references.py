"""The files a mesh file pulls in (MTL libraries, textures, glTF buffers): where they may come from, how
they are found, and how the loader is served exactly the files that were checked.

**Nothing outside the mesh's folder** (the mesh file's directory and its subdirectories, symlinks
resolved) is read unless the caller passes ``allow_outside=True``: a downloaded mesh must not pull
``/etc/passwd`` in as a material library or embed a private image from elsewhere on the disk in a
catalog that gets shared. A reference that only an outside file satisfies is a one-line error naming
the file that makes it and the reference.

A texture that a file names but that is missing or unreadable is an error, never a silent grey mesh; and
the stand-in trimesh invents for UVs without a texture (a 2x2 image) is dropped, never called textured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import trimesh

from synth.errors import AssetError
from synth.mesh.checks import check_image

SOURCE_FILE_INFO = "simreal_source_file"  # PIL image.info key: the file the unmodified pixels came from
ALLOW_HINT = "pass allow_outside=True (simreal sku add --allow-outside-refs) if you trust the file"


@dataclass(frozen=True)
class ReferencePolicy:
    """Where a mesh's references may point: inside its folder, or anywhere when ``allow_outside``."""

    mesh: Path
    allow_outside: bool = False

    @property
    def folder(self) -> Path:
        return self.mesh.parent.resolve()

    def allows(self, file: Path) -> bool:
        return self.allow_outside or file.resolve().is_relative_to(self.folder)

    def check(self, file: Path, where: Path, what: str, ref: str) -> None:
        if not self.allows(file):
            raise outside_error(where, what, ref)


def outside_error(where: Path, what: str, ref: str) -> AssetError:
    return AssetError(where, f"{what} '{ref}' is outside the mesh's folder; {ALLOW_HINT}")


def find_reference(
    bases: list[Path], ref: str, policy: ReferencePolicy, where: Path, what: str
) -> Path | None:
    """Find a file named in an OBJ/MTL/PLY line: the whole argument (names may contain spaces), else its
    last token (after options such as ``-s 1 1 1``), else that file's basename, in each base folder in
    turn. Files the policy does not allow are passed over (an exporter's absolute path still finds the
    copy beside the mesh); when nothing else matches, that is an error naming ``where`` and ``ref``."""
    clean = ref.replace("\\", "/").strip().strip('"')
    names = list(dict.fromkeys([clean, clean.split()[-1], Path(clean).name, Path(clean.split()[-1]).name]))
    refused = False
    for base in bases:
        for name in names:
            p = Path(name) if Path(name).is_absolute() else base / name
            if p.is_file():
                if policy.allows(p):
                    return p
                refused = True
    if refused:
        raise outside_error(where, what, clean)
    return None


class CheckedResolver(trimesh.resolvers.FilePathResolver):
    """Serves trimesh's loaders the files the checks found, found the same way and under the same
    policy, so what was checked is what gets loaded (trimesh alone would not follow a stand-in MTL,
    ``map_Kd`` options or an allowed outside path, and would drop a texture it cannot find silently).
    ``files`` maps names exactly as the mesh file writes them to the files checked for them."""

    def __init__(self, policy: ReferencePolicy, bases: list[Path], files: dict[str, Path] | None = None):
        super().__init__(str(policy.mesh))
        self._policy, self._bases, self._files = policy, bases, dict(files or {})

    def get(self, name: str) -> bytes:
        for key in (name, name.strip(), unquote(name).strip()):
            if key in self._files:
                return self._files[key].read_bytes()
        found = find_reference(self._bases, name, self._policy, self._policy.mesh, "file")
        if found is None:
            raise FileNotFoundError(name)
        return found.read_bytes()


def ply_texture(policy: ReferencePolicy) -> dict[str, Path]:
    """The image a PLY names in its header (``comment TextureFile name``), checked: {name: file}."""
    path = policy.mesh
    with path.open("rb") as f:
        for raw in f:
            line = raw.decode("latin-1")
            if "texturefile" in line.lower():
                name = line[line.lower().index("texturefile") + 11 :].strip()
                found = find_reference([path.parent], name, policy, path, "texture (TextureFile)")
                if found is None:
                    raise AssetError(path, f"texture '{name}' (TextureFile) is missing")
                check_image(found, f"texture referenced by {path.name}")
                return {name: found}
            if line.strip() == "end_header":
                break
    return {}


def drop_placeholder_textures(parts: list[trimesh.Trimesh]) -> None:
    """Make parts whose only 'texture' is trimesh's stand-in plain geometry again.

    trimesh gives UVs without a texture a 2x2 image built in memory (``empty_material``); every real
    texture is decoded from file bytes, so PIL knows its format. A stand-in carries no look of the file's
    and must not make the import 'textured'."""
    for part in parts:
        visual = part.visual
        if not isinstance(visual, trimesh.visual.TextureVisuals) or visual.uv is None:
            continue
        mat = visual.material
        image = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
        if (
            isinstance(mat, trimesh.visual.material.SimpleMaterial)
            and image is not None
            and image.format is None
        ):
            part.visual = trimesh.visual.ColorVisuals(part)
