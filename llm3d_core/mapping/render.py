"""Pictures and exports of a map: top-down PNGs (a map's objects; what RViz shows of a live stack), coloured PLY."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm3d_core.mapping.layers import MapLayers
from llm3d_core.mapping.objects import MapObject


def atomic_target(path: Path) -> Path:
    """A temporary sibling of `path` with the same suffix, to write and then os.replace."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path, **savefig_kwargs) -> Path:
    """Writes the figure to `path` atomically (a temporary sibling, then os.replace) and closes it."""
    import os

    tmp = atomic_target(path)
    try:
        fig.savefig(tmp, **savefig_kwargs)
    finally:
        _pyplot().close(fig)
    os.replace(tmp, path)
    return path


def export_ply(path: str | Path, points: np.ndarray, colors: np.ndarray) -> Path:
    """Writes a coloured point cloud (N, 3) + (N, 3) in [0, 1] as PLY, atomically."""
    import os

    import open3d as o3d

    path = Path(path)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, np.float64), 0, 1))
    tmp = atomic_target(path)
    if not o3d.io.write_point_cloud(str(tmp), cloud):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)
    return path


def topdown_png(path: str | Path, points: np.ndarray, colors: np.ndarray, objects: Sequence[MapObject] = (),
                highlight: Sequence[int] = (), title: str = "", up_axis: int = 2,
                extra_boxes: Sequence[tuple[np.ndarray, np.ndarray, str, str]] = (),
                path_xy: np.ndarray | None = None) -> Path:
    """Top-down view along `up_axis`: points in their colours, object boxes with labels.

    highlight: object ids drawn in red; extra_boxes: (min, max, label, colour) such as ground truth;
    path_xy: (T, 2) a trajectory to draw.
    """
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    path = Path(path)
    axes = [a for a in range(3) if a != up_axis]
    pts = np.asarray(points)
    order = np.argsort(pts[:, up_axis]) if len(pts) else np.zeros(0, int)  # higher points drawn last
    fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
    if len(pts):
        ax.scatter(pts[order, axes[0]], pts[order, axes[1]], c=np.clip(colors[order], 0, 1), s=2, linewidths=0)
    for obj in objects:
        red = obj.id in highlight
        lo, hi = obj.box_min[axes], obj.box_max[axes]
        ax.add_patch(Rectangle(lo, *(hi - lo), fill=False, lw=2.0 if red else 1.0, ec="red" if red else "deepskyblue"))
        ax.text(lo[0], hi[1], f"{obj.id}:{obj.label}", fontsize=7, color="red" if red else "navy", va="bottom")
    for lo3, hi3, label, colour in extra_boxes:
        lo, hi = np.asarray(lo3)[axes], np.asarray(hi3)[axes]
        ax.add_patch(Rectangle(lo, *(hi - lo), fill=False, lw=1.2, ls="--", ec=colour))
        ax.text(lo[0], lo[1], label, fontsize=7, color=colour, va="top")
    if path_xy is not None and len(path_xy):
        ax.plot(path_xy[:, 0], path_xy[:, 1], "-", color="orange", lw=1.5)
        ax.plot(path_xy[-1, 0], path_xy[-1, 1], "*", color="orange", ms=12)
    ax.set_aspect("equal")
    names = "xyz"
    ax.set_xlabel(f"{names[axes[0]]} (m)")
    ax.set_ylabel(f"{names[axes[1]]} (m)")
    ax.set_title(title)
    fig.tight_layout()
    return _save_figure(fig, path)


# Layer colours, the same as launch/llm3d.rviz gives its displays (orange reads better on a grey map
# than the Path display's default green).
_GROUNDING_COLOR = "red"
_TRAJECTORY_COLOR = "darkorange"
_GOAL_COLOR = "magenta"
_ROBOT_COLOR = "royalblue"
_FREE_GREY, _OCCUPIED_GREY = 0.93, 0.30


def occupancy_rgba(values: np.ndarray) -> np.ndarray:
    """(rows, cols) nav_msgs values -> (rows, cols, 4) RGBA in [0, 1]: free light grey, occupied dark
    grey, values in between shaded linearly (a cost or probability), unknown (-1) transparent."""
    values = np.asarray(values, np.float32)
    known = (values >= 0) & (values <= 100)
    grey = _FREE_GREY + (_OCCUPIED_GREY - _FREE_GREY) * np.clip(values, 0, 100) / 100.0  # (rows, cols)
    rgba = np.empty(values.shape + (4,), np.float32)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = known.astype(np.float32)
    return rgba


def layers_png(path: str | Path, layers: MapLayers, title: str = "", width_in: float = 10.0, dpi: int = 110,
               point_size_m: float = 0.04, margin_m: float = 0.3) -> Path:
    """Top-down picture of what RViz shows (launch/llm3d.rviz), written atomically.

    Bottom to top: occupancy grid (grey, unknown left white), the map cloud in its colours as
    squares of point_size_m (higher points drawn last, as seen from above), object boxes with
    labels, grounding boxes in red, the trajectory, the goal (star + heading), the robot (arrow);
    the fixed frame's x/y axes at its origin, a legend of what each layer holds, axes in metres.
    Raises ValueError when every layer is empty.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bounds = layers.bounds_xy()
    if bounds is None:
        raise ValueError("nothing to draw: every layer is empty")
    lo, hi = bounds[0] - margin_m, bounds[1] + margin_m
    span = np.maximum(hi - lo, 1e-3)
    plt = _pyplot()
    height_in = float(np.clip(width_in * span[1] / span[0], 0.5 * width_in, 1.4 * width_in)) + 0.8
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=dpi)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal", adjustable="box")
    ax.apply_aspect()  # the axes box is final now: sizes in metres convert to points
    pt_per_m = ax.get_position().width * width_in * 72.0 / span[0]
    handles: list = []
    grid = layers.occupancy
    if grid is not None:
        rows, cols = grid.data.shape
        ax.imshow(occupancy_rgba(grid.data), origin="lower", interpolation="nearest", zorder=0,
                  extent=(grid.origin[0], grid.origin[0] + cols * grid.cell,
                          grid.origin[1], grid.origin[1] + rows * grid.cell))
        ax.set_xlim(lo[0], hi[0])  # imshow resets the limits to the grid's
        ax.set_ylim(lo[1], hi[1])
        handles += [Patch(fc=str(_FREE_GREY), ec="0.6", label=f"map: free ({cols}x{rows} @ {grid.cell:g} m)"),
                    Patch(fc=str(_OCCUPIED_GREY), label="map: occupied")]
    if len(layers.points):
        order = np.argsort(layers.points[:, 2])  # (N,) highest last: what a camera above sees
        ax.scatter(layers.points[order, 0], layers.points[order, 1], c=np.clip(layers.colors[order], 0, 1), marker="s",
                   s=max(point_size_m * pt_per_m, 0.8) ** 2, linewidths=0, zorder=1, rasterized=True)
        handles.append(Line2D([], [], ls="", marker="s", ms=5, color="0.45",
                              label=f"map cloud ({len(layers.points)} points)"))
    labels = _LabelPlacer(ax, pt_per_m)
    for box in layers.objects:
        _draw_box(ax, box, box.color, False, labels)
    for box in layers.grounding:
        _draw_box(ax, box, _GROUNDING_COLOR, True, labels)
    if layers.objects:
        handles.append(Patch(fill=False, ec="tab:blue", label=f"objects ({len(layers.objects)})"))
    if layers.grounding:
        handles.append(Patch(fill=False, ec=_GROUNDING_COLOR, lw=2, label=f"grounding ({len(layers.grounding)})"))
    if len(layers.trajectory):
        ax.plot(layers.trajectory[:, 0], layers.trajectory[:, 1], "-", color=_TRAJECTORY_COLOR, lw=2.0, zorder=4)
        ax.plot(*layers.trajectory[0, :2], "o", ms=5, color=_TRAJECTORY_COLOR, mec="white", zorder=4)  # its start
        handles.append(Line2D([], [], color=_TRAJECTORY_COLOR, lw=2.0, marker="o", ms=4, mec="white",
                              label=f"trajectory ({len(layers.trajectory)} poses)"))
    handles += _draw_poses(ax, layers, lo, hi, arrow=float(np.clip(0.04 * max(span), 0.25, 1.0)))  # metres
    ax.set_facecolor("white")
    ax.grid(True, color="0.8", lw=0.5)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"x in {layers.frame} (m)")
    ax.set_ylabel(f"y in {layers.frame} (m)")
    ax.set_title(title or f"top-down view of the {layers.frame} frame")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False,
              borderaxespad=0.0)
    return _save_figure(fig, Path(path), bbox_inches="tight", pad_inches=0.1)


def _draw_poses(ax, layers: MapLayers, lo: np.ndarray, hi: np.ndarray, arrow: float) -> list:
    """The goal (star + heading), the robot (arrow) and the fixed frame's axes; their legend handles."""
    from matplotlib.lines import Line2D

    handles = []
    if layers.goal is not None:
        x, y, yaw = layers.goal
        ax.plot(x, y, "*", ms=18, color=_GOAL_COLOR, mec="white", mew=1.0, zorder=7)  # above a robot that reached it
        ax.annotate("", (x + arrow * np.cos(yaw), y + arrow * np.sin(yaw)), (x, y), zorder=7,
                    arrowprops={"arrowstyle": "-|>", "color": _GOAL_COLOR, "lw": 2.0})
        handles.append(Line2D([], [], ls="", marker="*", ms=12, color=_GOAL_COLOR, label="goal pose"))
    if layers.robot is not None:
        x, y, yaw = layers.robot
        ax.arrow(x, y, arrow * np.cos(yaw), arrow * np.sin(yaw), width=0.35 * arrow, length_includes_head=True,
                 head_width=0.8 * arrow, head_length=0.5 * arrow, color=_ROBOT_COLOR, ec="white", lw=0.8, alpha=0.9,
                 zorder=6)
        handles.append(Line2D([], [], ls="", marker=">", ms=9, color=_ROBOT_COLOR, label="robot (TF)"))
    if lo[0] <= 0 <= hi[0] and lo[1] <= 0 <= hi[1]:  # the fixed frame's origin, as RViz's TF display draws it
        for (dx, dy), colour in (((1, 0), "red"), ((0, 1), "green")):
            ax.annotate("", (dx * arrow, dy * arrow), (0, 0), zorder=5,
                        arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.8})
        handles.append(Line2D([], [], color="red", lw=1.8, label=f"{layers.frame} x (red), y (green)"))
    return handles


class _LabelPlacer:
    """Puts each label just above its box (else just below it), a line further out while it would cover
    a label already placed, so labels of neighbouring boxes stay readable; long labels wrap. Text sizes
    are estimated from the font size."""

    WRAP = 34  # characters per line

    def __init__(self, ax, pt_per_m: float) -> None:
        self.ax, self.pt_per_m = ax, pt_per_m
        self.placed: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1 in metres

    def add(self, x: float, above: float, below: float, text: str, fontsize: float, **kwargs) -> None:
        import textwrap

        lines = textwrap.wrap(text, self.WRAP) or [text]
        w = (0.6 * max(map(len, lines)) + 0.6) * fontsize / self.pt_per_m  # metres
        h = 1.4 * fontsize * len(lines) / self.pt_per_m
        line = 1.4 * fontsize / self.pt_per_m
        x_min, x_max = self.ax.get_xlim()
        x = max(x_min, min(x, x_max - w))  # a label near the right edge moves left instead of being cut
        candidates = [above + k * line for k in range(3)] + [below - h - k * line for k in range(3)]
        y = next((c for c in candidates if not self._covers(x, c, w, h)), candidates[0])
        self.placed.append((x, y, x + w, y + h))
        self.ax.text(x, y, "\n".join(lines), fontsize=fontsize, va="bottom", ha="left", clip_on=True, **kwargs)

    def _covers(self, x: float, y: float, w: float, h: float) -> bool:
        return any(x < x1 and x0 < x + w and y < y1 and y0 < y + h for x0, y0, x1, y1 in self.placed)


def _draw_box(ax, box, colour, emphasised: bool, labels: _LabelPlacer) -> None:
    """A box's footprint and label; a label without a box (min == max) is drawn at its point."""
    from matplotlib.patches import Rectangle

    lo, hi = np.asarray(box.box_min, np.float64), np.asarray(box.box_max, np.float64)
    size = hi[:2] - lo[:2]
    if (size > 1e-6).any():
        ax.add_patch(Rectangle(lo[:2], *size, fill=False, ec=colour, lw=2.4 if emphasised else 1.4,
                               zorder=3 + emphasised))
    if box.label:
        labels.add(lo[0], hi[1], lo[1], box.label, 8.0 if emphasised else 7.0, color=colour if emphasised else "black",
                   zorder=8 + emphasised,
                   bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": colour, "lw": 0.6, "alpha": 0.85})
