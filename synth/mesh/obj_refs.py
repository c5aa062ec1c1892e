"""What an OBJ pulls in -- its MTL library and each material's ``map_Kd`` texture -- checked before
trimesh parses it, and checked again in what trimesh made of it.

**OBJ ``Kd`` with a ``map_Kd``**: the texture is used unmultiplied (Blender writes ``Kd 0.8`` by default
and most tools ignore it when a map is present). A missing ``mtllib`` is replaced by the one MTL beside
the OBJ that defines every material it uses (scans are often renamed without editing the ``mtllib`` line,
e.g. HOPE's popcorn.obj -> textured.mtl); otherwise it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trimesh

from synth.errors import AssetError
from synth.mesh.checks import check_image
from synth.mesh.references import SOURCE_FILE_INFO, CheckedResolver, ReferencePolicy, find_reference


@dataclass
class ObjReferences:
    """What an OBJ pulls in: its MTL (possibly a stand-in) and the texture of each material."""

    mtl: Path | None = None
    mtl_ref: str | None = None
    textures: dict[str, Path] = field(default_factory=dict)  # material name -> map_Kd image
    note: str | None = None

    def bases(self, obj: Path) -> list[Path]:
        return [obj.parent] + ([self.mtl.parent] if self.mtl and self.mtl.parent != obj.parent else [])

    def resolver(self, policy: ReferencePolicy) -> CheckedResolver:
        """Serves the MTL under the name the ``mtllib`` line uses, even when a stand-in was chosen."""
        files = {self.mtl_ref.strip(): self.mtl} if self.mtl is not None and self.mtl_ref else {}
        return CheckedResolver(policy, self.bases(policy.mesh), files)


def obj_lines(path: Path, keyword: str) -> list[str]:
    """Arguments of every line of an OBJ/MTL starting with ``keyword`` (case-insensitive)."""
    out = []
    kw = keyword.lower()
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == kw:
                out.append(parts[1].strip())
    return out


def inspect_obj(policy: ReferencePolicy) -> ObjReferences:
    """Check every file the OBJ references exists, is readable and is one the policy allows."""
    path = policy.mesh
    refs = ObjReferences()
    libs = obj_lines(path, "mtllib")
    if not libs:
        return refs
    if len(libs) > 1:
        raise AssetError(
            path,
            f"{len(libs)} mtllib lines; only one material library is supported (merge them into one .mtl)",
        )
    refs.mtl_ref = libs[0]
    refs.mtl = find_reference([path.parent], libs[0], policy, path, "material library (mtllib)")
    if refs.mtl is None:
        refs.mtl = _stand_in_mtl(path, libs[0])
        refs.note = (
            f"mtllib '{libs[0]}' not found; using {refs.mtl.name} beside the OBJ, which defines "
            f"the materials it uses"
        )
    refs.textures = _mtl_textures(refs, policy)
    return refs


def _stand_in_mtl(path: Path, lib: str) -> Path:
    """The MTL beside the OBJ that defines every material it uses (its namesake first)."""
    used = set(obj_lines(path, "usemtl"))
    candidates = [m for m in sorted(path.parent.glob("*.mtl")) if used <= set(obj_lines(m, "newmtl"))]
    stem = [m for m in candidates if m.stem == path.stem]
    pick = stem or (candidates if len(candidates) == 1 else [])
    if not pick:
        raise AssetError(path, f"material library '{lib}' (mtllib) not found next to the OBJ")
    return pick[0]


def _mtl_textures(refs: ObjReferences, policy: ReferencePolicy) -> dict[str, Path]:
    """material name -> its checked ``map_Kd`` image."""
    textures: dict[str, Path] = {}
    name = None
    with refs.mtl.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "newmtl":
                name = parts[1].strip()
            elif len(parts) == 2 and parts[0].lower() == "map_kd" and name is not None:
                what = f"texture (map_Kd of material '{name}')"
                tex = find_reference(refs.bases(policy.mesh), parts[1], policy, refs.mtl, what)
                if tex is None:
                    raise AssetError(
                        refs.mtl, f"texture '{parts[1].split()[-1]}' (map_Kd of material '{name}') is missing"
                    )
                check_image(tex, f"texture referenced by {refs.mtl.name}")
                textures[name] = tex
    return textures


def check_obj_textures_loaded(refs: ObjReferences, parts: list[trimesh.Trimesh]) -> None:
    """Every part whose material has a ``map_Kd`` must have come out of the loader with that image."""
    for part in parts:
        mat = getattr(part.visual, "material", None)
        name = getattr(mat, "name", None)
        if name in refs.textures:
            img = getattr(mat, "image", None)
            if img is None or "file_path" not in img.info:
                raise AssetError(refs.textures[name], f"texture of material '{name}' could not be loaded")
            img.info[SOURCE_FILE_INFO] = str(refs.textures[name])
