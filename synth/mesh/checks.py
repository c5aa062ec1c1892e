"""File-level checks before and after parsing: format, readability, images, and the size of the work.

Every problem is a one-line ``AssetError`` naming the file, so the CLI prints it without a traceback.

**Face limit**: an import is refused above ``MAX_FACES`` triangles (measured on this project's machines:
a 1.3 M-face STL takes ~10 s and ~1.2 GB to import, so 1 M faces is ~8 s and ~1 GB; scanned products such
as YCB and HOPE have tens of thousands). Refused rather than decimated: decimation would need another
dependency and silently move UV seams and silhouettes; the tool that made the mesh decimates better.
The count a file declares (STL, PLY and glTF headers, OBJ face lines) is checked before parsing, so a
huge file is refused without reading it into memory; the parsed triangle count is checked after.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from PIL import Image

from synth.errors import AssetError
from synth.mesh.units import FORMAT_NAME

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl")
MAX_FACES = 1_000_000

_FORMAT_HINT = {
    ".obj": "binary data where OBJ text with 'v' and 'f' lines was expected",
    ".stl": "neither binary STL (84-byte header, then 50 bytes per triangle) nor ASCII 'solid ... facet'",
    ".ply": "no 'ply' header",
}


def first_line(e: BaseException) -> str:
    """An exception as one short line (parsers raise multi-line essays)."""
    text = str(e).strip() or type(e).__name__
    line = text.splitlines()[0]
    line = re.sub(r"\s+", " ", line)
    return line[:160]


def check_file(path: Path) -> str:
    """The file's (lower-case) suffix, once it is a readable, non-empty file of a supported format."""
    if not path.exists():
        raise AssetError(path, "file not found")
    if not path.is_file():
        raise AssetError(path, "not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise AssetError(
            path,
            f"unsupported format '{path.suffix or '(none)'}' (supported: {' '.join(SUPPORTED_SUFFIXES)})",
        )
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as e:
        raise AssetError(path, f"cannot be read ({e.strerror or e})") from None
    if size == 0:
        raise AssetError(path, "file is empty")
    return suffix


def check_image(path: Path, what: str) -> None:
    try:
        with Image.open(path) as im:
            im.verify()
    except Image.UnidentifiedImageError:
        raise AssetError(path, f"{what} is not a readable image (unknown format or corrupt data)") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad image
        raise AssetError(path, f"{what} is not a readable image ({first_line(e)})") from None


def check_face_count(path: Path, faces: int) -> None:
    if faces > MAX_FACES:
        raise AssetError(
            path,
            f"{faces:,} faces is over the import limit of {MAX_FACES:,}; decimate it first "
            f"(e.g. Blender's Decimate modifier or MeshLab's quadric edge collapse)",
        )


def check_declared_faces(path: Path, suffix: str) -> None:
    """Refuse a file whose own header (or face lines) already says it is over the face limit."""
    try:
        faces = _declared_faces(path, suffix)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return  # malformed: the parser gives the precise error
    check_face_count(path, faces)


def _declared_faces(path: Path, suffix: str) -> int:
    """A lower bound on the triangles a file holds, without parsing its geometry (0 when unknown)."""
    if suffix == ".stl":
        with path.open("rb") as f:
            head = f.read(84)
        size = path.stat().st_size
        count = struct.unpack_from("<I", head, 80)[0] if len(head) == 84 else 0
        return count if size == 84 + 50 * count else 0  # ASCII STL: no count in the header
    if suffix == ".ply":
        with path.open("rb") as f:
            for raw in f:
                words = raw.split()
                if words[:2] == [b"element", b"face"] and len(words) == 3:
                    return int(words[2])
                if words[:1] == [b"end_header"]:
                    break
        return 0
    if suffix == ".obj":
        with path.open("rb") as f:
            return sum(1 for line in f if line.startswith((b"f ", b"f\t")))
    return 0  # glTF: counted from its JSON by the reference checks (gltf_face_count)


def gltf_face_count(tree: dict) -> int:
    """Triangles a glTF's meshes declare (each mesh once, however many nodes use it)."""
    accessors = tree.get("accessors", [])
    total = 0
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            if prim.get("mode", 4) != 4:
                continue
            index = prim.get("indices", prim.get("attributes", {}).get("POSITION"))
            if isinstance(index, int) and 0 <= index < len(accessors):
                total += int(accessors[index].get("count", 0)) // 3
    return total


def looks_binary_garbage(path: Path, suffix: str) -> bool:
    """Whether a file that parsed to nothing is not even shaped like its format (for a clearer message)."""
    head = path.read_bytes()[:4096]
    if suffix == ".stl":
        size = path.stat().st_size
        binary_ok = size >= 84 and size == 84 + 50 * struct.unpack_from("<I", head, 80)[0]
        return not binary_ok and not head.lstrip().lower().startswith(b"solid")
    if suffix == ".ply":
        return not head.startswith(b"ply")
    text = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return text < 0.95 * len(head)


def not_a_valid_file(path: Path, suffix: str) -> AssetError:
    return AssetError(path, f"not a valid {FORMAT_NAME[suffix]} file ({_FORMAT_HINT[suffix]})")


def read_gltf_json(path: Path, suffix: str) -> dict:
    """The JSON tree of a .gltf file or of a .glb's first chunk, checked to be glTF 2.0."""
    data = path.read_bytes()
    if suffix == ".glb":
        if len(data) < 20 or data[:4] != b"glTF":
            raise AssetError(path, "not a binary glTF (missing 'glTF' header)")
        version, length = struct.unpack_from("<II", data, 4)
        chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
        if version != 2:
            raise AssetError(path, f"glTF version {version} is not supported (need 2.0)")
        if chunk_type != 0x4E4F534A or 20 + chunk_len > len(data):
            raise AssetError(path, "truncated or malformed GLB (first chunk is not JSON)")
        raw = data[20 : 20 + chunk_len]
    else:
        raw = data
    try:
        tree = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AssetError(path, f"not valid glTF JSON ({first_line(e)})") from None
    if not isinstance(tree, dict) or "asset" not in tree:
        raise AssetError(path, "not a glTF 2.0 file (no 'asset' object)")
    check_gltf_shape(path, tree)
    return tree


# the parts of a glTF tree the reference and face checks read, with the JSON type each must have
_GLTF_ARRAYS = ("buffers", "bufferViews", "accessors", "images", "textures", "materials", "meshes", "nodes")
_GLTF_FIELDS = {
    "buffers": {"uri": str, "byteLength": int},
    "accessors": {"count": int},
    "images": {"uri": str},
    "textures": {"source": int},
    "materials": {"pbrMetallicRoughness": dict},
    "meshes": {"primitives": list},
}
_GLTF_PRIMITIVE_FIELDS = {"attributes": dict, "mode": int, "indices": int, "material": int}


def check_gltf_shape(path: Path, tree: dict) -> None:
    """The arrays and fields that are read before trimesh parses the file have their glTF types, so a
    malformed file stops here with one line naming the place, not deep inside a check."""
    for key in _GLTF_ARRAYS:
        items = tree.get(key, [])
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise AssetError(path, f"glTF '{key}' must be a list of objects")
        for i, item in enumerate(items):
            _check_fields(path, f"{key}[{i}]", item, _GLTF_FIELDS.get(key, {}))
    for m, mesh in enumerate(tree.get("meshes", [])):
        for p, prim in enumerate(mesh.get("primitives", [])):
            if not isinstance(prim, dict):
                raise AssetError(path, f"glTF meshes[{m}].primitives[{p}] must be an object")
            _check_fields(path, f"meshes[{m}].primitives[{p}]", prim, _GLTF_PRIMITIVE_FIELDS)


def _check_fields(path: Path, where: str, item: dict, fields: dict) -> None:
    for name, kind in fields.items():
        value = item.get(name)
        if name in item and (not isinstance(value, kind) or isinstance(value, bool)):
            raise AssetError(path, f"glTF {where}.{name} must be a JSON {kind.__name__}")
