"""Evaluation of the 3D-LLM on a data split: ScanQA/ScanRefer-style metrics, per task.

- answers (qa, caption, dialog): BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap, as in ScanQA,
  Azuma et al. 2022; METEOR runs on Java) and EM@1 after normalisation (lowercase, no
  punctuation, no articles);
- grounding: Acc@0.25 / Acc@0.5 of the 3D axis-aligned box IoU, split unique / multiple /
  overall (ScanRefer, Chen et al. 2020); an answer that breaks the location grammar counts as a miss;
- grounding_mask: the same for UniVLG's mask head (box of the decoded mask) on the same records,
  when the model has one (grounding_head: mask), over its own denser sample of each map
  (mask_head.num_points; the encoder's sample where no map is at hand); an empty mask counts as a miss;
- plan: step accuracy (position-wise normalised match of numbered steps);
- navigate: distance of the decoded goal to the true goal (metres) and success within 0.5 m;
- latency per task (p50 / mean seconds per answer).
"""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llm3d_core.geometry import box_iou_3d
from llm3d_core.model.configuration_llm3d import is_absent
from llm3d_core.model.data import dialog_history, question_text, read_records
from llm3d_core.model.location_tokens import LocationDecodeError, decode_box, decode_point
from llm3d_core.model.modeling_llm3d import InputTooLongError, Llm3dModel
from llm3d_core.model.session import Llm3dSession

log = logging.getLogger(__name__)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_STEP = re.compile(r"^\s*\d+[.)]\s*(.*)$")


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation and articles, collapse spaces (SQuAD/ScanQA EM normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


# An answer that states its verdict first: "No, there is no giraffe here." / "0: there are no mugs here."
_VERDICT = re.compile(r"\s*(yes|no|\d+)\s*[,:;.!]", re.IGNORECASE)


def verdict(text: str) -> str | None:
    """The leading yes / no / number of an answer that states it first and explains after a comma,
    colon or full stop (the reasoner's map-checked refusals); None for any other answer."""
    m = _VERDICT.match(text)
    return m.group(1).lower() if m else None


def exact_match(prediction: str, answers: list[str]) -> bool:
    """EM@1 after normalisation. For yes/no and count questions (every reference a yes, no or a
    number), an answer that states its verdict first and explains it counts by that verdict: "No,
    there is no giraffe here." answers "Is there a giraffe?" as "no" does."""
    p = normalize_answer(prediction)
    refs = [normalize_answer(a) for a in answers]
    if any(p == r for r in refs):
        return True
    short = refs and all(r in ("yes", "no") or r.isdigit() for r in refs)
    return bool(short) and verdict(prediction) in refs


def parse_steps(text: str) -> list[str]:
    """Numbered steps ("1. go to the sink") of a plan answer, in order."""
    return [m.group(1).strip() for line in text.splitlines() if (m := _STEP.match(line))]


def step_accuracy(predicted: list[str], truth: list[str]) -> float:
    if not truth:
        return 0.0
    hits = sum(i < len(predicted) and normalize_answer(predicted[i]) == normalize_answer(t) for i, t in enumerate(truth))
    return hits / len(truth)


def caption_metrics(refs: dict[str, list[str]], preds: dict[str, str], meteor: bool = True) -> dict[str, float | None]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr over normalised texts (METEOR None when Java fails)."""
    if not refs:
        return {}
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {k: [normalize_answer(r) or "empty" for r in v] for k, v in refs.items()}
    res = {k: [normalize_answer(preds[k]) or "empty"] for k in refs}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out: dict[str, float | None] = {f"bleu{i + 1}": float(b) for i, b in enumerate(bleu)}
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    out["meteor"] = None
    if not meteor:
        return out
    try:
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()
        out["meteor"] = float(scorer.compute_score(gts, res)[0])
        del scorer
    except Exception as err:  # Java missing or the subprocess failed
        log.warning("METEOR unavailable: %s", err)
    return out


def evaluate(model: Llm3dModel, data_dir: str | Path, split: str = "val", limit: int = 0,
             tasks: list[str] | None = None, predictions_out: str | Path | None = None,
             meteor: bool = True, skip_missing_scenes: bool = False) -> dict[str, Any]:
    """Runs the model on DIR/<split>.jsonl and returns the metrics (see module docstring)."""
    from llm3d_core.model.data import dense_scene_store, scene_store_for
    from llm3d_core.progress import progress

    model.eval()
    path = Path(data_dir) / f"{split}.jsonl"
    store = scene_store_for(data_dir, model.config, capacity=4)
    mask_store = dense_scene_store(data_dir, model.config.mask_head.num_points, capacity=2,
                                   object_points=model.config.mask_head.object_points)
    records = [r for r in read_records(path) if (not tasks or r["task"] in tasks)
               and (not skip_missing_scenes or store.available(str(r["scene_id"])))]
    # Interleave scenes by record index so that a --limit still covers every task; consecutive
    # records of one scene share its prefix.
    records.sort(key=lambda r: str(r["scene_id"]))
    if limit:
        by_task: dict[str, list] = defaultdict(list)
        for r in records:
            by_task[r["task"]].append(r)
        picked = []
        while len(picked) < limit and any(by_task.values()):
            for t in sorted(by_task):
                if by_task[t] and len(picked) < limit:
                    picked.append(by_task[t].pop(0))
        records = sorted(picked, key=lambda r: str(r["scene_id"]))
    session: Llm3dSession | None = None
    latency: dict[str, list[float]] = defaultdict(list)
    refs, preds, em = {}, {}, defaultdict(list)
    ground = {"unique": [], "multiple": []}
    ground_mask = {"unique": [], "multiple": []}  # UniVLG's mask head on the same records, when the model has one
    plan_acc, nav_dist, grammar_errors, rows = [], [], 0, []
    abstention: list[tuple[bool, float | None, bool, str]] = []  # (absent target, P(absent), hit@0.25, kind)
    for rec in progress(records, desc=f"eval {split}", total=len(records)):
        sid = str(rec["scene_id"])
        if session is None or session.scene_id != sid:
            session = model.session(store.get(sid), sid)
        task = rec["task"]
        history = dialog_history(rec) if task == "dialog" else None
        try:
            sample = model.make_sample(task, question_text(rec, session.bounds), history)
        except InputTooLongError as err:
            log.warning("record %s: %s", rec["id"], err)
            continue
        with torch.no_grad():
            gen = model.generate(session.prefix, session.prefix_mask, sample, task, objects=session.batch,
                                 cache=session.prefix_cache(sample.before))
        latency[task].append(gen.seconds)
        row: dict[str, Any] = {"id": rec["id"], "task": task, "prediction": gen.text}
        if task in ("qa", "caption", "dialog"):
            key = str(rec["id"])
            refs[key], preds[key] = list(rec["answers"]), gen.text
            em[task].append(exact_match(gen.text, rec["answers"]))
            row["em"] = em[task][-1]
        elif task == "ground" and is_absent(rec):  # the target is not in the scene: was it rejected?
            row["absent_prob"] = gen.absent_prob
            abstention.append((True, gen.absent_prob, False, str(rec["qtype"]).split("/", 1)[-1]))
        elif task == "ground":
            try:
                _, box = decode_box(gen.text, session.bounds)
                iou = box_iou_3d(box, rec["boxes"][0])
            except LocationDecodeError:
                grammar_errors, iou = grammar_errors + 1, 0.0
            ground["unique" if rec.get("unique", True) else "multiple"].append(iou)
            row["iou"] = iou
            abstention.append((False, gen.absent_prob, iou >= 0.25, ""))
            if model.mask_head is not None:
                dense = mask_store.get(sid) if mask_store.available(sid) else session.scene
                t0 = time.perf_counter()
                found = model.ground_mask(dense, str(rec.get("question") or "object"), gen.pointer_logits)
                latency["ground_mask"].append(time.perf_counter() - t0)
                row["iou_mask"] = box_iou_3d(found.box, rec["boxes"][0]) if found.box is not None else 0.0
                ground_mask["unique" if rec.get("unique", True) else "multiple"].append(row["iou_mask"])
        elif task == "plan":
            truth = rec["steps"] or parse_steps(rec["answers"][0])
            plan_acc.append(step_accuracy(parse_steps(gen.text), truth))
            row["step_acc"] = plan_acc[-1]
        elif task == "navigate":
            try:
                dist = float(np.linalg.norm(decode_point(gen.text, session.bounds) - np.asarray(rec["goal"], float)))
            except LocationDecodeError:
                grammar_errors, dist = grammar_errors + 1, float("nan")
            nav_dist.append(dist)
            row["distance_m"] = dist
        rows.append(row)
    metrics: dict[str, Any] = {"split": split, "records": len(rows), "grammar_errors": grammar_errors}
    metrics["answers"] = caption_metrics(refs, preds, meteor)
    metrics["em@1"] = {t: float(np.mean(v)) for t, v in em.items()}
    if refs:
        metrics["em@1"]["overall"] = float(np.mean([x for v in em.values() for x in v]))
    for key, by_kind in (("grounding", ground), ("grounding_mask", ground_mask)):
        if by_kind["unique"] or by_kind["multiple"]:
            g: dict[str, Any] = {}
            for name, ious in (("unique", by_kind["unique"]), ("multiple", by_kind["multiple"]),
                               ("overall", by_kind["unique"] + by_kind["multiple"])):
                if ious:
                    g[name] = {"acc@0.25": float(np.mean(np.array(ious) >= 0.25)),
                               "acc@0.5": float(np.mean(np.array(ious) >= 0.5)), "n": len(ious)}
            metrics[key] = g
    if any(a for a, *_ in abstention):
        metrics["abstention"] = abstention_metrics(abstention, model.config.pointer.absent_threshold)
    if plan_acc:
        metrics["plan_step_acc"] = float(np.mean(plan_acc))
    if nav_dist:
        d = np.array(nav_dist)
        ok = d[np.isfinite(d)]
        metrics["navigate"] = {"mean_distance_m": float(ok.mean()) if len(ok) else None,
                               "median_distance_m": float(np.median(ok)) if len(ok) else None,
                               "success@0.5m": float(np.mean(np.nan_to_num(d, nan=1e9) <= 0.5)), "n": len(d)}
    metrics["latency_s"] = {t: {"p50": float(np.median(v)), "mean": float(np.mean(v)), "n": len(v)}
                            for t, v in latency.items()}
    if predictions_out:
        Path(predictions_out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return metrics


def abstention_metrics(rows: list[tuple[bool, float | None, bool, str]], threshold: float) -> dict[str, Any]:
    """absence_scores over (absent target, P(absent), hit@0.25, kind) rows; a model without an
    absence head (P None) never abstains: every absent target counts as accepted."""
    from llm3d_core.model.absence import absence_scores

    absent = np.array([a for a, *_ in rows])
    head = all(p is not None for _, p, _, _ in rows)
    p_absent = np.array([p if p is not None else 0.0 for _, p, _, _ in rows])
    out = absence_scores(p_absent, absent, np.array([h for _, _, h, _ in rows]), threshold if head else 1.1,
                         [k for *_, k in rows])
    out["head"] = head
    return out


def phrasing_table(templates: dict[str, Any], heldout: dict[str, Any]) -> str:
    """Template vs held-out phrasing, side by side: QA EM@1 per task and grounding Acc@0.25."""
    def pick(m: dict[str, Any]) -> dict[str, float | None]:
        out = {f"EM@1 {k}": v for k, v in (m.get("em@1") or {}).items()}
        out["ground Acc@0.25"] = ((m.get("grounding") or {}).get("overall") or {}).get("acc@0.25")
        if "abstention" in m:
            out["absent rejected"] = m["abstention"]["absent_rejected"]
        return out

    a, b = pick(templates), pick(heldout)
    lines = [f"  {'phrasing':<22} {'templates':>10} {'held out':>10} {'change':>8}"]
    for key in a:
        x, y = a[key], b.get(key)
        change = f"{100 * (y - x):+.1f} pt" if x is not None and y is not None else "-"
        lines.append(f"  {key:<22} {'-' if x is None else f'{100 * x:.1f} %':>10} "
                     f"{'-' if y is None else f'{100 * y:.1f} %':>10} {change:>8}")
    return "\n".join(lines)


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table of the headline numbers."""
    lines = [f"split {metrics['split']}: {metrics['records']} records, {metrics['grammar_errors']} grammar errors"]

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    for k, v in (metrics.get("answers") or {}).items():
        lines.append(f"  {k:<22} {fmt(v)}")
    for k, v in (metrics.get("em@1") or {}).items():
        lines.append(f"  {'EM@1 ' + k:<22} {fmt(v)}")
    for key, title in (("grounding", "ground "), ("grounding_mask", "ground mask ")):
        for name, g in (metrics.get(key) or {}).items():
            lines.append(f"  {title + name:<22} Acc@0.25 {fmt(g['acc@0.25'])}  Acc@0.5 {fmt(g['acc@0.5'])}  "
                         f"(n={g['n']})")
    if "abstention" in metrics:
        a = metrics["abstention"]
        lines.append(f"  {'absent targets':<22} rejected {fmt(a['absent_rejected'])} (n={a['absent']})  present "
                     f"rejected {fmt(a['present_rejected'])}  Acc@0.25 {fmt(a['present_acc25_before'])} -> "
                     f"{fmt(a['present_acc25_after'])}" + ("" if a["head"] else "  (no absence head)"))
        for kind, rate in (a.get("absent_rejected_by_kind") or {}).items():
            lines.append(f"  {'  absent ' + kind:<22} rejected {fmt(rate)}")
    if "plan_step_acc" in metrics:
        lines.append(f"  {'plan step acc':<22} {fmt(metrics['plan_step_acc'])}")
    if "navigate" in metrics:
        n = metrics["navigate"]
        lines.append(f"  {'navigate':<22} mean {fmt(n['mean_distance_m'])} m  median {fmt(n['median_distance_m'])} m  "
                     f"success@0.5m {fmt(n['success@0.5m'])}")
    for t, lat in (metrics.get("latency_s") or {}).items():
        lines.append(f"  {'latency ' + t:<22} p50 {lat['p50']:.3f} s  mean {lat['mean']:.3f} s  (n={lat['n']})")
    return "\n".join(lines)

