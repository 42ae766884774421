"""Rasteriser on moderngl with a headless EGL context (Mesa llvmpipe on CPU, any GPU driver too).

One draw call fills three render targets at once: shaded colour (RGBA8), camera-frame depth
(R32F, the interpolated view-space z, so it is metric and not the non-linear z-buffer value) and
instance id + 1 (R32I, cleared to 0 so "no hit" reads back as -1). The projection is built from
the OpenCV intrinsics directly (see `opencv_projection`), which keeps image rows top-down in the
read-back buffer with no flips.
"""

from __future__ import annotations

import numpy as np

from sim.config import RenderConfig
from sim.render.base import RenderOutput, Renderer, shade
from sim.scenes.scene import SceneMesh

_VERTEX = """
#version 330
uniform mat4 mvp;        // projection * T_camera_world
uniform mat4 view;       // T_camera_world
in vec3 in_pos;
in vec3 in_color;
in int in_id;
out vec3 v_color;
out float v_z;
flat out int v_id;
void main() {
    vec4 p = vec4(in_pos, 1.0);
    gl_Position = mvp * p;
    v_z = (view * p).z;  // OpenCV camera z: metric depth along the optical axis
    v_color = in_color;
    v_id = in_id;
}
"""
_FRAGMENT = """
#version 330
in vec3 v_color;
in float v_z;
flat in int v_id;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;
layout(location = 2) out int f_id;
void main() {
    f_color = vec4(v_color, 1.0);
    f_depth = v_z;
    f_id = v_id + 1;  // 0 stays "nothing drawn"
}
"""


def opencv_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """(4, 4) clip-from-camera matrix for an OpenCV camera (x right, y down, z forward).

    Pixel u (centre at integer u) maps to NDC x = 2 (u + 0.5) / W - 1; v likewise, *without* the
    usual y flip: image row v = 0 lands at the bottom of the framebuffer, which is the first row
    glReadPixels returns, so the read-back array is already in image order. Depth maps near -> -1,
    far -> +1 with w = z.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array([
        [2 * fx / width, 0.0, 2 * (cx + 0.5) / width - 1.0, 0.0],
        [0.0, 2 * fy / height, 2 * (cy + 0.5) / height - 1.0, 0.0],
        [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)],
        [0.0, 0.0, 1.0, 0.0],
    ])


class EglRenderer(Renderer):
    """moderngl + EGL renderer; raises RuntimeError when no EGL context can be created."""

    name = "egl"

    def __init__(self, config: RenderConfig) -> None:
        super().__init__(config)
        import moderngl

        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as err:  # no libEGL / no driver: the caller may fall back to raycasting
            raise RuntimeError(f"no EGL context ({type(err).__name__}: {err}); install libegl1 libegl-mesa0 "
                               "libgl1-mesa-dri or use render backend 'raycast'") from err
        self._moderngl = moderngl
        size = (config.width, config.height)
        self.targets = [self.ctx.renderbuffer(size, 4), self.ctx.renderbuffer(size, 1, dtype="f4"),
                        self.ctx.renderbuffer(size, 1, dtype="i4")]
        self.fbo = self.ctx.framebuffer(color_attachments=self.targets, depth_attachment=self.ctx.depth_renderbuffer(size))
        self.program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self.vao = None
        self.vbo = None

    def set_mesh(self, mesh: SceneMesh) -> None:
        # Un-indexed corners so each face keeps its own flat colour and id.
        corners = mesh.faces.reshape(-1)  # (3F,)
        colors = shade(mesh.face_colors, mesh.face_normals(), self.config)  # (F, 3)
        data = np.empty(len(corners), dtype=[("pos", "f4", 3), ("color", "f4", 3), ("id", "i4")])
        data["pos"] = mesh.vertices[corners]
        data["color"] = np.repeat(colors, 3, axis=0)  # (3F, 3)
        data["id"] = np.repeat(mesh.face_instance, 3)  # (3F,)
        if self.vao is not None:
            self.vao.release()
            self.vbo.release()
        self.vbo = self.ctx.buffer(data.tobytes())
        self.vao = self.ctx.vertex_array(self.program, [(self.vbo, "3f 3f 1i", "in_pos", "in_color", "in_id")])

    def _render(self, K: np.ndarray, T_world_camera: np.ndarray) -> RenderOutput:
        if self.vao is None:
            raise RuntimeError("EglRenderer.render called before set_mesh")
        c = self.config
        view = np.linalg.inv(T_world_camera)  # T_camera_world
        mvp = opencv_projection(K, c.width, c.height, c.near, c.far) @ view
        # GLSL matrices are column-major: upload the transpose of the row-major numpy matrix.
        self.program["mvp"].write(mvp.T.astype("f4").tobytes())
        self.program["view"].write(view.T.astype("f4").tobytes())
        self.fbo.use()
        self.ctx.enable(self._moderngl.DEPTH_TEST)
        self.ctx.disable(self._moderngl.CULL_FACE)  # user meshes have arbitrary winding
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.vao.render(self._moderngl.TRIANGLES)
        h, w = c.height, c.width
        rgb = np.frombuffer(self.fbo.read(components=3, attachment=0), np.uint8).reshape(h, w, 3)
        depth = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="f4"), np.float32).reshape(h, w)
        ids = np.frombuffer(self.fbo.read(components=1, attachment=2, dtype="i4"), np.int32).reshape(h, w) - 1
        depth = depth.copy()
        depth[ids < 0] = 0.0  # cleared float target is 0 already; be explicit for "no hit"
        return RenderOutput(rgb.copy(), depth, ids)

    def close(self) -> None:
        if getattr(self, "ctx", None) is not None:
            self.ctx.release()
            self.ctx = None
