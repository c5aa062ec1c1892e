"""Which length unit a mesh file is in, and whether the result is a plausible product or part.

``units="auto"``: the file's format decides first when it has a convention and that convention gives a
plausible size (largest extent between 3 mm and 1.5 m): glTF/GLB are metres by spec, STL is millimetres by
CAD / 3D-printing habit. Otherwise the size decides, from the largest extent ``L`` in file units:
``L > 20`` -> mm, ``2 < L <= 20`` -> cm, ``L <= 2`` -> m. Inches are never guessed (they overlap
centimetres); pass ``units="in"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import trimesh

from synth.catalog import UNIT_SCALE, Units
from synth.errors import AssetError

UnitsArg = Literal["auto", "m", "cm", "mm", "in"]

# Preferred units of a format, used by units="auto" when they give a plausible size.
FORMAT_UNITS: dict[str, Units] = {".glb": "m", ".gltf": "m", ".stl": "mm"}
FORMAT_NAME = {".glb": "glTF", ".gltf": "glTF", ".obj": "OBJ", ".ply": "PLY", ".stl": "STL"}

PLAUSIBLE_LARGEST_M = (0.003, 1.5)  # a product or part: a 3 mm washer .. a 1.5 m appliance
ACCEPTED_LARGEST_M = (0.001, 10.0)  # outside: certainly wrong units (or wrong file)
MIN_THICKNESS_M = 1e-4  # thinner than 0.1 mm is a flat, zero-volume surface (SkuRecord's lower bound)


def check_units_arg(path: Path | None, units: str) -> None:
    if units not in ("auto", *UNIT_SCALE):
        raise AssetError(path, f"units must be one of auto, {', '.join(UNIT_SCALE)} (got '{units}')")


def resolve_units(largest_extent: float, suffix: str, units: UnitsArg = "auto") -> tuple[Units, str]:
    """The units of a file and why: given explicitly, the format's convention, or the size heuristic."""
    if units != "auto":
        check_units_arg(None, units)
        return units, "given"
    preferred = FORMAT_UNITS.get(suffix)
    if preferred and plausible(largest_extent * UNIT_SCALE[preferred]):
        return preferred, f"{FORMAT_NAME[suffix]} convention"
    if largest_extent > 20:
        guess: Units = "mm"
    elif largest_extent > 2:
        guess = "cm"
    else:
        guess = "m"
    why = "inferred from the size"
    if preferred:
        why += f"; {FORMAT_NAME[suffix]} would be {preferred} but that gives an implausible size"
    return guess, why


def plausible(largest_m: float) -> bool:
    return PLAUSIBLE_LARGEST_M[0] <= largest_m <= PLAUSIBLE_LARGEST_M[1]


def check_size(mesh: trimesh.Trimesh, path: Path, units: Units) -> None:
    """Refuse sizes no product can have (wrong units or a wrong file) and flat, zero-volume surfaces."""
    ext = mesh.extents
    mm = " x ".join(_human_length(float(e)) for e in ext)
    largest = float(ext.max())
    lo, hi = ACCEPTED_LARGEST_M
    if largest > hi or largest < lo:
        raise AssetError(
            path,
            f"absurd size {_human_length(largest)} after units={units} "
            f"(extents {mm}; expected {PLAUSIBLE_LARGEST_M[0] * 1000:g} mm .. "
            f"{PLAUSIBLE_LARGEST_M[1]:g} m); pass the right units",
        )
    if float(ext.min()) < MIN_THICKNESS_M:
        raise AssetError(
            path,
            f"degenerate: flat or zero-volume (extents {mm}; the thinnest side is below "
            f"{MIN_THICKNESS_M * 1000:g} mm)",
        )


def implausible_size_note(largest_m: float) -> str | None:
    """A warning for a size that is accepted but unusual for a product or part (likely wrong units)."""
    if plausible(largest_m):
        return None
    return (
        f"warning: largest extent {largest_m * 1000:.4g} mm is unusual for a product "
        f"or part ({PLAUSIBLE_LARGEST_M[0] * 1000:g} mm .. {PLAUSIBLE_LARGEST_M[1]:g} m); "
        f"check units"
    )


def size_label(size_m, unit: bool = True) -> str:
    """'71.8 x 164 x 213 mm': extents (x, y, z) to three significant digits, never in e-notation."""

    def mm(v: float) -> str:
        v *= 1000.0
        return f"{v:.0f}" if v >= 1000 else f"{v:.3g}"

    return " x ".join(mm(float(s)) for s in size_m) + (" mm" if unit else "")


def _human_length(m: float) -> str:
    if m >= 1000:
        return f"{m / 1000:.4g} km"
    if m >= 1:
        return f"{m:.4g} m"
    return f"{m * 1000:.4g} mm"
