"""GL work pyrender repeats every frame that a worker can skip: uniform values, texture uploads,
multisample writes and sorting hidden nodes. None of it changes what is drawn, so pixels are unchanged.

- ``StickyUniformProgram``: pyrender looks up every uniform's location and sends its value on every draw
  (about 25 uniforms per object and pass, lights included). A GL program keeps its uniform values until
  they are set again, so a program that remembers what it last sent can skip the lookup and any value
  that has not changed. Half of the per-image Python time of the colour pass went there.
- ``ResidentTexture``: pyrender deletes a texture from GL as soon as no material in the scene uses it
  and uploads it again (with its mipmaps) when one does. Randomized scenes swap textures every image,
  so a worker kept re-uploading the same few dozen textures. A resident texture stays in GL while its
  owner (the backend's texture cache) holds it and is freed by ``release``.
- ``OpaqueTexture``: pyrender copies every texture it is given through a dtype conversion, even when
  it already is the uint8 RGBA it uploads; an opaque RGBA byte array is kept as given instead. A mesh
  file's texture, as OpenCV decodes it (BGR), is uploaded as BGR: GL stores the same RGBA texels without
  the RGBA conversion, flip and flatten pyrender would make (three full copies of every label).
- ``SingleSampleRenderer``: passes without multisampling draw into a single-sample framebuffer, and the
  per-pass draw sort skips hidden (parked) nodes instead of finding every one's pose.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyrender
import pyrender.renderer as _pyrender_renderer
from OpenGL.GL import (
    GL_BGR,
    GL_DRAW_FRAMEBUFFER,
    GL_LINEAR,
    GL_LINEAR_MIPMAP_LINEAR,
    GL_RGBA,
    GL_TEXTURE_2D,
    GL_TEXTURE_BORDER_COLOR,
    GL_TEXTURE_MAG_FILTER,
    GL_TEXTURE_MIN_FILTER,
    GL_TEXTURE_WRAP_S,
    GL_TEXTURE_WRAP_T,
    GL_UNPACK_ALIGNMENT,
    GL_UNSIGNED_BYTE,
    glBindFramebuffer,
    glBindTexture,
    glGenerateMipmap,
    glGenTextures,
    glGetUniformLocation,
    glPixelStorei,
    glTexImage2D,
    glTexParameterfv,
    glTexParameteri,
    glUniform1f,
    glUniform1i,
    glUniform1ui,
)
from pyrender.constants import RenderFlags
from pyrender.renderer import Renderer
from pyrender.shader_program import ShaderProgram


class StickyUniformProgram(ShaderProgram):
    """A pyrender program that caches uniform locations and skips re-sending unchanged values.

    Value conversion follows ``ShaderProgram.set_uniform`` exactly (same dtypes, same GL functions), so
    what GL holds is what pyrender would have set."""

    def set_uniform(self, name, value, unsigned=False):
        state = self.__dict__.setdefault("_uniform_state", {})
        entry = state.get(name)
        if entry is None:
            entry = state[name] = [glGetUniformLocation(self._program_id, name), None]
        loc = entry[0]
        if loc == -1:
            return  # pyrender ignores uniforms the shader does not use
        if isinstance(value, np.ndarray):
            if value.ndim == 1:
                if np.issubdtype(value.dtype, np.unsignedinteger) or unsigned:
                    dtype, value = "u", value.astype(np.uint32)
                elif np.issubdtype(value.dtype, np.integer):
                    dtype, value = "i", value.astype(np.int32)
                else:
                    dtype, value = "f", value.astype(np.float32)
                key, func, args = (dtype, value.shape, value.tobytes()), (value.shape[0], dtype), ()
            else:
                key, func, args = ("m", value.shape, value.dtype.str, value.tobytes()), value.shape, (True,)
            if entry[1] != key and func in self._FUNC_MAP:  # pyrender skips shapes it has no call for
                self._FUNC_MAP[func](loc, 1, *args, value)
                entry[1] = key
            return
        key = (type(value), unsigned, value)
        if entry[1] == key:
            return
        if isinstance(value, float):
            glUniform1f(loc, value)
        elif isinstance(value, (int, bool)):
            (glUniform1ui if unsigned else glUniform1i)(loc, int(value))
        else:
            return
        entry[1] = key

    def _remove_from_context(self):
        self.__dict__.pop("_uniform_state", None)
        super()._remove_from_context()


def make_sticky(program: ShaderProgram) -> ShaderProgram:
    """Turn a program pyrender's cache just built into a ``StickyUniformProgram`` (same object)."""
    if type(program) is ShaderProgram:
        program.__class__ = StickyUniformProgram
    return program


class OpaqueTexture(pyrender.Texture):
    """A texture whose source, when it already is uint8 RGBA (H, W, 4), is kept as given instead of
    through the copy pyrender's ``format_texture_source`` makes (~5 ms for a 1.5 Mpx label, per label and
    worker); the bytes are the ones pyrender would hold. ``gl_texture`` makes such sources opaque.

    ``from_bgr`` keeps a decoded image's BGR bytes instead and uploads them as they are (``GL_BGR``, rows
    flipped bottom-up on the way): the texels GL stores, mipmaps included, are the RGBA ones pyrender
    would upload, without its RGBA conversion, flip and flatten (about 0.3 s of a worker's first images
    on the default catalog). ``source`` still reads as the RGBA image, made on request."""

    _bgr: np.ndarray | None = None  # (H, W, 3) uint8, top row first, as OpenCV decodes

    @classmethod
    def from_bgr(cls, bgr: np.ndarray) -> OpaqueTexture:
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 BGR, got {bgr.dtype} {bgr.shape}")
        tex = cls(source=None, source_channels="RGBA")
        tex._bgr = bgr
        tex._is_transparent = False
        return tex

    @property
    def source(self):
        if self._source is None and self._bgr is not None:
            return cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGBA)
        return self._source

    @source.setter
    def source(self, value):
        if (
            isinstance(value, np.ndarray)
            and value.dtype == np.uint8
            and value.ndim == 3
            and value.shape[2] == 4
            and self.source_channels == "RGBA"
        ):
            self._source = value
            self._is_transparent = False
        else:
            pyrender.Texture.source.fset(self, value)

    def _add_to_context(self):
        if self._bgr is None:
            return super()._add_to_context()
        if self._texid is not None:
            raise ValueError("Texture already loaded into OpenGL context")
        h, w = self._bgr.shape[:2]
        self._texid = glGenTextures(1)
        glBindTexture(GL_TEXTURE_2D, self._texid)
        glPixelStorei(GL_UNPACK_ALIGNMENT, 1)  # BGR rows need not be 4-byte aligned
        try:
            glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w, h, 0, GL_BGR, GL_UNSIGNED_BYTE, cv2.flip(self._bgr, 0))
        finally:
            glPixelStorei(GL_UNPACK_ALIGNMENT, 4)
        glGenerateMipmap(GL_TEXTURE_2D)
        # the sampler state pyrender gives a texture with pixels
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, self.sampler.magFilter or GL_LINEAR)
        glTexParameteri(
            GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, self.sampler.minFilter or GL_LINEAR_MIPMAP_LINEAR
        )
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, self.sampler.wrapS)
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, self.sampler.wrapT)
        glTexParameterfv(GL_TEXTURE_2D, GL_TEXTURE_BORDER_COLOR, np.full(4, 255, np.uint8))
        glBindTexture(GL_TEXTURE_2D, 0)
        return None


class ResidentTexture(OpaqueTexture):
    """A texture that stays in GL when pyrender would delete it, until ``release``."""

    resident = True

    def _add_to_context(self):
        if self._texid is None:  # pyrender adds it again each time it reappears in the scene
            super()._add_to_context()

    def delete(self):
        if not self.resident:
            super().delete()

    def release(self) -> None:
        """Let GL free it: now if no material of the scene still shows it (the caller's GL context must
        be current), else when pyrender drops it."""
        self.resident = False


class SingleSampleRenderer(Renderer):
    """pyrender draws every pass into a 4x multisampled framebuffer and resolves it with a blit, even
    when multisampling is off for the pass (its SEG pass; colour without MSAA). On a CPU rasteriser that
    quadruples the depth and colour writes and adds the resolve. With ``single_sample`` set, a pass
    draws straight into the resolve target instead: with GL_MULTISAMPLE off every sample of a pixel
    holds the pixel-centre value, so the resolved image is the same one."""

    single_sample = False

    def _configure_forward_pass_viewport(self, flags):
        super()._configure_forward_pass_viewport(flags)
        if self.single_sample and flags & RenderFlags.OFFSCREEN:
            glBindFramebuffer(GL_DRAW_FRAMEBUFFER, self._main_fb)

    def _sorted_mesh_nodes(self, scene):
        """pyrender's back-to-front draw order, of the visible meshes only. pyrender sorts every mesh node
        and walks the scene graph for each one's pose; a worker keeps hundreds of parked (hidden) nodes
        that every pass skips anyway (a shelf scene: ~500 nodes, ~140 shown). Same order as pyrender's:
        a stable sort of the scene's node order, opaque before transparent, far before near."""
        eye = scene.get_pose(scene.main_camera_node)[:3, 3]
        solid, transparent = [], []
        for node in scene.mesh_nodes:
            if node.mesh.is_visible:
                (transparent if node.mesh.is_transparent else solid).append(node)

        def far_first(node):
            return -np.linalg.norm(scene.get_pose(node)[:3, 3] - eye)

        return sorted(solid, key=far_first) + sorted(transparent, key=far_first)

    def _read_main_framebuffer(self, scene, flags):
        if not self.single_sample:
            return super()._read_main_framebuffer(scene, flags)
        _BLIT.skip = True  # the image already is in the resolve target
        try:
            return super()._read_main_framebuffer(scene, flags)
        finally:
            _BLIT.skip = False


class _BlitSwitch:
    """The ``glBlitFramebuffer`` pyrender's renderer module calls, skipped while ``skip`` is set."""

    def __init__(self, blit):
        self.blit = blit
        self.skip = False

    def __call__(self, *args):
        if not self.skip:
            return self.blit(*args)
        return None


def make_single_sample_capable(renderer: pyrender.OffscreenRenderer) -> SingleSampleRenderer:
    """Turn an offscreen renderer's inner pyrender ``Renderer`` into a ``SingleSampleRenderer``."""
    inner = renderer._renderer
    if type(inner) is Renderer:
        inner.__class__ = SingleSampleRenderer
    return inner


if not isinstance(_pyrender_renderer.glBlitFramebuffer, _BlitSwitch):
    _pyrender_renderer.glBlitFramebuffer = _BlitSwitch(_pyrender_renderer.glBlitFramebuffer)
_BLIT = _pyrender_renderer.glBlitFramebuffer
