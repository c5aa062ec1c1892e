"""Read Cycles render passes back as numpy arrays.

Blender cannot hand out the pixels of its in-memory render result, so the label pass is written as a
32-bit float multilayer EXR (each pass a part named ``<ViewLayer>.<Pass>``) and read with the
OpenImageIO Python module that the bpy wheel itself ships (``bpy/<version>/python/.../site-packages``),
which avoids another dependency. The file is written interleaved (one EXR part): Blender 5.0.1 fails to
write the one-part-per-pass layout whenever the pixel aspect is not 1 (conflicting 'pixelAspectRatio'
headers), which non-square pixels (fx != fy) need. 32-bit float matters: half floats hold integers exactly only up to
2048, and instance ids go to 65535.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from synth.errors import AssetError


def _oiio():
    try:
        import OpenImageIO
    except ImportError:
        import bpy

        bundled = (
            Path(bpy.utils.resource_path("LOCAL"))
            / "python"
            / "lib"
            / f"python{sys.version_info.major}.{sys.version_info.minor}"
            / "site-packages"
        )
        if str(bundled) not in sys.path:
            sys.path.append(str(bundled))
        import OpenImageIO
    return OpenImageIO


def read_exr_passes(path: str | os.PathLike, wanted: dict[str, str]) -> dict[str, np.ndarray]:
    """Passes of a Blender multilayer EXR, as float32 HxW arrays with row 0 at the top of the image.

    ``wanted`` maps a pass name to the channel to take from it, e.g. {"Object Index": "X", "Depth": "Z"};
    channels are named ``<view layer>.<pass>.<channel>`` whether the file is one interleaved part or one
    part per pass. A missing pass raises: it means the view layer was set up wrongly.
    """
    oiio = _oiio()
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise AssetError(path, f"cannot open render pass file ({oiio.geterror()})")
    found: dict[str, np.ndarray] = {}
    try:
        sub = 0
        while inp.seek_subimage(sub, 0):
            spec = inp.spec()
            hits = []
            for c, full in enumerate(spec.channelnames):
                fields = full.split(".")
                if len(fields) >= 2 and fields[-2] in wanted and fields[-1] == wanted[fields[-2]]:
                    hits.append((fields[-2], c))
            if hits:
                px = inp.read_image(oiio.FLOAT)
                if px is None:
                    raise AssetError(path, f"cannot read render passes ({inp.geterror()})")
                px = np.asarray(px, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
                for name, c in hits:
                    found[name] = np.ascontiguousarray(px[:, :, c])
            sub += 1
    finally:
        inp.close()
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise AssetError(path, f"render passes missing: {', '.join(missing)}")
    return found
