"""Pictures and exports of a map: top-down PNG with object boxes and labels, coloured PLY."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm3d_core.mapping.objects import MapObject


def atomic_target(path: Path) -> Path:
    """A temporary sibling of `path` with the same suffix, to write and then os.replace."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


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
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

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
    tmp = atomic_target(path)
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
