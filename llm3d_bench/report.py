"""The demo's report: a top-down map with true and predicted boxes, the robot's paths and goal,
first-person frames, and every question beside its answer, as one HTML page with PNGs.

Written to a temporary name and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llm3d_core.mapping.render import atomic_target

if TYPE_CHECKING:
    from llm3d_bench.demo import DemoResult


def _save_fig(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = atomic_target(path)
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def draw_map(path: Path, points: np.ndarray, colors: np.ndarray, result: "DemoResult", objects: list) -> Path:
    """Top-down: map points in colour, map objects (thin blue), grounding truth (green, dashed) vs
    prediction (red), exploration path (grey), navigation path (orange) to the goal (star)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(9, 9), dpi=100)
    if len(points):
        order = np.argsort(points[:, 2])  # higher points drawn last: furniture over floor
        ax.scatter(points[order, 0], points[order, 1], c=np.clip(colors[order], 0, 1), s=3, linewidths=0)
    for obj in objects:
        lo, hi = obj.box_min[:2], obj.box_max[:2]
        ax.add_patch(Rectangle(lo, *(hi - lo), fill=False, lw=0.6, ec="steelblue", alpha=0.7))
    for i, g in enumerate(result.grounding, 1):
        t = np.asarray(g["truth_box"])
        ax.add_patch(Rectangle(t[:2], *(t[3:5] - t[:2]), fill=False, lw=2.0, ls="--", ec="limegreen"))
        ax.text(t[0], t[1], f"G{i} true: {g['truth_label']}", fontsize=8, color="darkgreen", va="top")
        if g["box"] is not None:
            b = np.asarray(g["box"])
            ax.add_patch(Rectangle(b[:2], *(b[3:5] - b[:2]), fill=False, lw=2.0, ec="red"))
            ax.text(b[0], b[4], f"G{i} pred: {g['label']} (IoU {g['iou']:.2f})", fontsize=8, color="red", va="bottom")
    if len(result.explore_path_xy):
        p = result.explore_path_xy
        ax.plot(p[:, 0], p[:, 1], "-", color="dimgray", lw=0.8, alpha=0.8, label="exploration")
    nav = result.navigation
    if nav is not None:
        if len(nav.path_xy):
            ax.plot(nav.path_xy[:, 0], nav.path_xy[:, 1], "-", color="darkorange", lw=2.5, label="navigation")
            ax.plot(*nav.path_xy[0], "o", color="darkorange", ms=8)
        if nav.goal:
            ax.plot(nav.goal[0], nav.goal[1], "*", color="magenta", ms=18, label="goal")
            ax.arrow(nav.goal[0], nav.goal[1], 0.4 * np.cos(nav.goal[2]), 0.4 * np.sin(nav.goal[2]),
                     color="magenta", width=0.02)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{result.scene_id}: green dashed = truth, red = predicted")
    fig.tight_layout()
    return _save_fig(fig, path)


def save_frame(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    tmp = atomic_target(path)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp)
    os.replace(tmp, path)
    return path


def _row(*cells: str, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _mark(ok: bool) -> str:
    return '<span class="ok">&#10003;</span>' if ok else '<span class="bad">&#10007;</span>'


def write_report(out_dir: str | Path, result: "DemoResult", mapper: Any) -> Path:
    """Writes map.png, frame_*.png, demo.json and report.html into out_dir; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points, colors = mapper.colored_points()
    draw_map(out / "map.png", np.asarray(points), np.asarray(colors), result, list(mapper.objects))
    frames = []
    for i, rgb in enumerate(result.thumbnails):
        frames.append(save_frame(out / f"frame_{i}.png", rgb).name)
    if result.final_view is not None:
        frames.append(save_frame(out / "frame_goal.png", result.final_view).name)
    summary = result.summary()
    data = {"summary": summary, "caption": result.caption, "qa": result.qa, "grounding": result.grounding,
            "plans": result.plans, "navigation": None,
            "explore_path_xy": np.asarray(result.explore_path_xy).round(3).tolist()}
    nav = result.navigation
    if nav is not None:
        data["navigation"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(nav).items()}
        data["navigation"]["shortest_m"] = nav.shortest_m if np.isfinite(nav.shortest_m) else None
    tmp = atomic_target(out / "demo.json")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, out / "demo.json")

    e = html.escape
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>llm3d demo: {e(result.scene_id)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} th{{background:#f3f3f3}} .ok{{color:green;font-weight:bold}}
.bad{{color:#c00;font-weight:bold}} img{{max-width:100%}} .frames img{{width:24%;margin:.2%}} code{{background:#f5f5f5}}</style>
</head><body><h1>llm3d demo — {e(result.scene_id)} ({e(result.split)} split, never trained on)</h1>
<p>Run: {e(summary['stack'])}. Model: <code>{e(summary['checkpoint'])}</code>. Explored {result.frames} frames, fused {result.fused}
({summary['mapper_fps']} fused frames/s), coverage {summary['coverage']}, {result.objects} objects in the map.
QA {summary['qa_correct']} exact, grounding {summary['grounding_acc@0.25']} at IoU&ge;0.25,
answer p50 {summary['answer_p50_s']} s.</p>
<h2>Map</h2><img src="map.png" alt="top-down map">
<h2>What the robot saw</h2><div class="frames">"""]
    parts += [f'<img src="{e(f)}" alt="{e(f)}">' for f in frames]
    parts.append("</div>")
    if result.caption:
        parts.append(f"<h2>Scene caption</h2><p><b>model:</b> {e(result.caption['answer'])}<br>"
                     f"<b>truth:</b> {e(result.caption['truth'])}</p>")
    parts.append("<h2>Questions</h2><table>" + _row("", "question", "answer", "truth", "type", head=True))
    for q in result.qa:
        parts.append(_row(_mark(q["correct"]), e(q["question"]), e(q["answer"]), e(" / ".join(q["truth"][:3])),
                          e(q["qtype"])))
    parts.append("</table><h2>Grounding</h2><table>" + _row("", "query", "predicted", "truth", "3D IoU", head=True))
    for i, g in enumerate(result.grounding, 1):
        parts.append(_row(_mark(g["iou"] >= 0.25), f"G{i}: {e(g['query'])}", e(g["label"] or "-"), e(g["truth_label"]),
                          f"{g['iou']:.2f}"))
    parts.append("</table>")
    for p in result.plans:
        parts.append(f"<h2>Task decomposition</h2><p><b>{e(p['instruction'])}</b></p><table>"
                     + _row("model", "truth", head=True)
                     + _row("<ol>" + "".join(f"<li>{e(s)}</li>" for s in p["steps"]) + "</ol>",
                            "<ol>" + "".join(f"<li>{e(s)}</li>" for s in p["truth"]) + "</ol>") + "</table>")
    if nav is not None:
        parts.append(f"<h2>Navigation</h2><p><b>{e(nav.instruction)}</b> &rarr; grounded <i>{e(nav.target_label or '-')}</i> "
                     f"(truth: {e(nav.truth_label)}); {_mark(nav.success)} {e(nav.state)}: {e(nav.message)}.<br>"
                     f"Final distance to the target {nav.distance_to_target:.2f} m (success within "
                     f"{nav.success_distance:.1f} m), driven {nav.driven_m:.1f} m, shortest {nav.shortest_m:.1f} m, SPL {nav.spl:.2f}.</p>")
    if result.errors:
        parts.append("<h2>Errors</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in result.errors) + "</ul>")
    parts.append("</body></html>")
    tmp = atomic_target(out / "report.html")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out / "report.html")
    return out / "report.html"
