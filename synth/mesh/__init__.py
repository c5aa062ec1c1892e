"""Meshes in and out of the catalog: import a user's file (``load_mesh``), store and read the catalog's
single-primitive GLB (``write_glb`` / ``read_glb``), and the colour facts both sides agree on.

Modules, one concern each: ``load`` (the import pipeline), ``units`` and ``orient`` (the decisions it
notes), ``references``/``obj_refs``/``gltf_refs`` (what a file may pull in), ``checks`` (format, images,
face limit), ``parts`` (a scene to one clean mesh), ``atlas`` (the one texture-atlas packer), ``glb``
(the catalog file) and ``material`` (colours and factors).
"""

from synth.mesh.atlas import bake_atlas, paste_with_gutter, shelf_pack, square_row_width
from synth.mesh.checks import MAX_FACES, SUPPORTED_SUFFIXES
from synth.mesh.glb import read_glb, write_glb
from synth.mesh.load import ImportedMesh, load_mesh
from synth.mesh.material import (
    base_color_texture,
    linear_to_srgb,
    srgb_to_linear,
    stored_factors,
    with_factors,
)
from synth.mesh.orient import UpArg, footprint_yaw, levelling_rotation
from synth.mesh.parts import split_sharp_edges
from synth.mesh.units import UnitsArg, resolve_units, size_label

__all__ = [
    "MAX_FACES",
    "SUPPORTED_SUFFIXES",
    "ImportedMesh",
    "UnitsArg",
    "UpArg",
    "bake_atlas",
    "base_color_texture",
    "footprint_yaw",
    "levelling_rotation",
    "linear_to_srgb",
    "load_mesh",
    "paste_with_gutter",
    "read_glb",
    "resolve_units",
    "shelf_pack",
    "size_label",
    "split_sharp_edges",
    "square_row_width",
    "srgb_to_linear",
    "stored_factors",
    "with_factors",
    "write_glb",
]
