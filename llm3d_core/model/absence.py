"""Abstention: "nothing in the map matches '<text>'" as a learned, calibrated decision.

The object pointer (object_pointer.py) always picks one of the map's objects: asked for a giraffe
in a kitchen, it points at the likeliest lamp. 3D-LLM (Hong et al. 2023, sec. 3.4) grounds by
writing a box and has no way to say "none"; benchmarks of referring expressions with absent
targets (generalised referring, "no-target" expressions) add an explicit empty answer. Here the
empty answer is a learned "none" choice: a copy of the trained pointer (the same inputs: the LLM's
query state where the box is due, the object tokens' states, the objects' own features and the
expression's words) fine-tuned with one more slot, whose logit reads the copy's query state, the
shape of its choice (top probability, top-1 minus top-2 logit, normalised entropy) and the
open-vocabulary map evidence (the best cosine between the request's MiniLM embedding and the
objects' text-aligned features, and that of the chosen object: a word the model never learned,
"giraffe", still has an embedding far from every object's). The softmax over [objects; none]
gives P(absent). The copy learns whether any object matches at all; the pointer that chooses the
box stays as it was, so present targets are grounded exactly as before unless rejected.

It trains on the frozen model (`train.stage: absent`) from referring records whose target is in
the scene and generated ones whose target is not (sim/datagen: a category the scene lacks, a
thing no scene holds, a made-up word, a present category in a wrong colour or relation), each
decoded exactly as at inference (the label the model writes before its box changes the query
state). The threshold is calibrated on val: the lowest that rejects at most
`absence_max_false_reject` of the present targets the pointer grounds correctly (each such
rejection costs Acc@0.25; refusing a present target it would ground wrongly saves a drive to the
wrong object).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from llm3d_core.model.configuration_llm3d import is_absent

if TYPE_CHECKING:
    from llm3d_core.model.configuration_llm3d import Llm3dConfig
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.training.train import TrainConfig

log = logging.getLogger(__name__)
NUM_STATS = 5  # choice_stats columns
ABSENT = -2  # an example's target when the expression's target is not in the scene
ABSENCE_STATE = "absence_state.json"  # beside the checkpoint: scores, threshold, history


class AbsencePointer(nn.Module):
    """A second object pointer with a "none" slot: logits (B, K + 1), the last one for "absent"."""

    def __init__(self, config: "Llm3dConfig", llm_hidden: int, hidden: int = 64) -> None:
        from dataclasses import replace

        from llm3d_core.model.object_pointer import ObjectPointer

        super().__init__()
        d = config.pointer.d_model
        self.pointer = ObjectPointer(replace(config, pointer=replace(config.pointer, absence=False)), llm_hidden)
        self.none = nn.Sequential(nn.LayerNorm(d + NUM_STATS), nn.Linear(d + NUM_STATS, hidden), nn.GELU(),
                                  nn.Linear(hidden, 1))

    def forward(self, query: torch.Tensor, objects: torch.Tensor, inputs: dict[str, torch.Tensor],
                map_scores: torch.Tensor) -> torch.Tensor:
        """The pointer's inputs (see ObjectPointer.forward) and map_scores (B, K) -> logits (B, K + 1)."""
        logits, state = self.pointer.encode(query, objects, inputs)  # (B, K), (B, d)
        stats = choice_stats(logits, map_scores)  # (B, NUM_STATS)
        none = self.none(torch.cat([state, stats], dim=1).to(self.none[1].weight.dtype)).float()  # (B, 1)
        return torch.cat([logits, none], dim=1)

    def probability(self, query: torch.Tensor, objects: torch.Tensor, inputs: dict[str, torch.Tensor],
                    map_scores: torch.Tensor) -> torch.Tensor:
        """P(absent) (B,): the none slot's share of the softmax."""
        return self(query, objects, inputs, map_scores).softmax(-1)[:, -1]


def choice_stats(logits: torch.Tensor, map_scores: torch.Tensor) -> torch.Tensor:
    """How sure the pointer's choice is and how well the words match the map.

    logits (B, K) with -inf at padding; map_scores (B, K) cosines of the request's text embedding
    with each object's text feature (0 for maps without them) -> (B, NUM_STATS): top probability,
    top-1 minus top-2 logit (capped at 10; 10 with one object), entropy / log(objects), best map
    score, the map score of the pointer's choice."""
    valid = torch.isfinite(logits)  # (B, K)
    probs = logits.softmax(-1)
    top = logits.topk(min(2, logits.shape[1]), dim=-1).values  # (B, <=2)
    margin = (top[:, 0] - top[:, 1]) if top.shape[1] > 1 else torch.full_like(top[:, 0], 10.0)
    margin = torch.nan_to_num(margin, posinf=10.0).clamp(max=10.0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1) / valid.sum(-1).clamp_min(2).float().log()
    scores = map_scores.float().masked_fill(~valid, -1.0)
    choice = logits.argmax(-1)
    chosen = scores.gather(1, choice[:, None])[:, 0]
    return torch.stack([probs.max(-1).values, margin, entropy, scores.max(-1).values, chosen], dim=1)


def map_scores(object_text: torch.Tensor, question: str, text_dim: int) -> torch.Tensor:
    """Cosines (B, K) of the question's MiniLM embedding with object_text (B, K, T) (unit rows or zeros)."""
    from llm3d_core.encoders.text import get_text_encoder

    device = object_text.device
    q = get_text_encoder(str(device)).encode([question or "object"])[0].to(device)  # (384,)
    t = object_text[..., :text_dim].float()
    if t.shape[-1] != q.shape[0]:  # a map without text-aligned features: no map evidence
        return torch.zeros(t.shape[:2], device=device)
    return t @ q


# ---------------------------------------------------------------------- training data
def absence_records(path: str | Path) -> list[dict[str, Any]]:
    """Referring records of a file for the head: ground/navigate records with a box (present
    targets, navigate instructions asked as ground requests) and absent-target records."""
    from llm3d_core.model.data import read_records

    out = []
    for rec in read_records(path):
        present = rec["task"] in ("ground", "navigate") and rec.get("boxes") and len(rec["boxes"][0]) == 6
        if rec.get("question") and (present or is_absent(rec)):
            out.append({**rec, "task": "ground"})
    return out


@torch.no_grad()
def extract_examples(model: "Llm3dModel", data_dir: str | Path, records: list[dict[str, Any]],
                     desc: str = "absence") -> dict[str, torch.Tensor]:
    """Decodes every record's ground answer as the reasoner does and keeps what the pointer read:
    query (R, H) and objects (R, K, H) fp16 (K = max_objects), target (R,) = the slot of the map
    object overlapping the annotated box by IoU >= pointer.match_iou (-1: none does; ABSENT for an
    absent target), gt (R, 6), hit (R,) = the shipped pointer's box overlaps gt by IoU >= 0.25,
    record (R,) index into `records`. One session per scene (its prefix is encoded once)."""
    from llm3d_core.model.data import SceneStore
    from llm3d_core.model.modeling_llm3d import InputTooLongError
    from llm3d_core.model.object_pointer import pointer_targets
    from llm3d_core.model.univlg_losses import box_iou_3d, ordered_boxes
    from llm3d_core.progress import progress_bar

    model.eval()
    store = SceneStore(data_dir, model.config.num_points)
    k_max = model.config.max_objects
    cols: dict[str, list] = {n: [] for n in ("query", "objects", "target", "gt", "hit", "record")}
    by_scene: dict[str, list[int]] = {}
    for n, rec in enumerate(records):
        by_scene.setdefault(str(rec["scene_id"]), []).append(n)
    bar = progress_bar(len(records), desc)
    for scene_id, rows in by_scene.items():
        session = model.session(store.get(scene_id), scene_id)
        boxes, mask = session.batch["object_boxes"][0], session.batch["object_mask"][0]
        for n in rows:
            rec = records[n]
            bar.update(1)
            try:
                sample = model.make_sample("ground", str(rec["question"]))
                gen = model.generate(session.prefix, session.prefix_mask, sample, "ground", objects=session.batch,
                                     cache=session.prefix_cache(sample.before))
            except InputTooLongError as err:
                log.warning("skipping record %s: %s", rec.get("id"), err)
                continue
            if gen.pointer_inputs is None:  # the model wrote its box itself (no map object in reach)
                continue
            h, states = gen.pointer_inputs  # (1, H), (1, P, H)
            if is_absent(rec):
                target, gt, hit = ABSENT, torch.zeros(6), False
            else:
                gt = ordered_boxes(torch.tensor(rec["boxes"][0], dtype=torch.float32))
                p = states.shape[1]
                target = int(pointer_targets(boxes[None, :p], mask[None, :p], [gt], model.config.pointer.match_iou)[0])
                hit = bool(box_iou_3d(boxes[gen.pointed][None].float(), gt[None])[0] >= 0.25)
            cols["query"].append(h[0].half().cpu())
            cols["objects"].append(F.pad(states[0], (0, 0, 0, k_max - states.shape[1])).half().cpu())
            cols["target"].append(target)
            cols["gt"].append(gt.float())
            cols["hit"].append(hit)
            cols["record"].append(n)
    bar.close()
    if not cols["record"]:
        raise ValueError("no record could be decoded with the object pointer (are the maps there?)")
    return {"query": torch.stack(cols["query"]), "objects": torch.stack(cols["objects"]),
            "target": torch.tensor(cols["target"]), "gt": torch.stack(cols["gt"]), "hit": torch.tensor(cols["hit"]),
            "record": torch.tensor(cols["record"])}


def frozen_hash(model_dir: str | Path) -> "hashlib._Hash":
    """training.pointer.weights_hash over every tensor but the absence pointer's and the mask head's
    (the examples depend on everything the decoding and the pointer use)."""
    from llm3d_core.training.pointer import weights_hash

    return weights_hash(model_dir, skip=("pointer.absence.", "mask_head."))


def cached_examples(model: "Llm3dModel", data_dir: str | Path, names: list[str],
                    weights: "hashlib._Hash") -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """extract_examples for DATA/<name>.jsonl per name, cached in DATA/absence_states/<name>.safetensors
    (rebuilt when the frozen weights or the records change); concatenated, with the objects' own
    inputs and the questions' words attached (training.pointer.attach_object_inputs) and `qtext`
    (R, 384), the questions' MiniLM embeddings for the map evidence; and the records."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from llm3d_core.encoders.text import get_text_encoder
    from llm3d_core.training.pointer import attach_object_inputs

    parts, records = [], []
    for name in names:
        recs = absence_records(Path(data_dir) / f"{name}.jsonl")
        if not recs:
            raise ValueError(f"{Path(data_dir) / (name + '.jsonl')} has no referring records")
        h = weights.copy()
        h.update(json.dumps([[r["id"], r["question"]] for r in recs]).encode())
        key = h.hexdigest()[:16]
        path = Path(data_dir) / "absence_states" / f"{name}.safetensors"
        ex = None
        if path.is_file():
            try:
                with safe_open(str(path), framework="pt") as f:
                    if (f.metadata() or {}).get("fingerprint") == key:
                        ex = load_file(str(path))
                        log.info("reusing %s", path)
            except Exception as err:  # a torn cache is rebuilt, never trusted
                log.warning("ignoring unreadable %s (%s)", path, err)
        if ex is None:
            ex = extract_examples(model, data_dir, recs, desc=f"{name} absence")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in ex.items()}, str(tmp), metadata={"fingerprint": key})
            os.replace(tmp, path)
        parts.append({**ex, "record": ex["record"] + len(records)})
        records += recs
    merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    merged = attach_object_inputs(model, data_dir, records, merged)
    questions = [str(records[int(n)]["question"]) for n in merged["record"]]
    merged["qtext"] = get_text_encoder(str(model.device)).encode(questions).cpu()  # (R, 384)
    return merged, records


def example_batch(model: "Llm3dModel", ex: dict[str, torch.Tensor], idx: torch.Tensor
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rows `idx` as the pointer's inputs (training.pointer.batch_inputs) and their map scores (b, K)."""
    from llm3d_core.training.pointer import batch_inputs

    s = batch_inputs(model, ex, idx)
    text = s["object_text"][..., : model.config.text_dim].float()  # (b, K, T)
    q = ex["qtext"][idx].to(text.device)  # (b, 384)
    scores = (text @ q[:, :, None])[..., 0] if text.shape[-1] == q.shape[-1] else torch.zeros(text.shape[:2])
    return s, scores.to(text.device)


def absent_probabilities(model: "Llm3dModel", ex: dict[str, torch.Tensor], batch: int = 256) -> np.ndarray:
    """P(absent) (R,) of every example under the model's absence pointer."""
    head = model.pointer.absence
    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ex["record"]), batch):
            s, scores = example_batch(model, ex, torch.arange(i, min(i + batch, len(ex["record"]))))
            out.append(head.probability(s["query"], s["objects"], s, scores).cpu())
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------- calibration and scores
def calibrate(p_absent: np.ndarray, absent: np.ndarray, max_false_reject: float,
              among: np.ndarray | None = None) -> float:
    """The lowest threshold that rejects at most `max_false_reject` of the present targets
    (p >= threshold is rejected), so that as many absent ones as possible are rejected.
    among: the present targets that count (e.g. those grounded correctly); default: all of them."""
    keep = ~absent if among is None else (~absent & among)
    present = np.sort(p_absent[keep])
    if len(present) == 0:
        return 0.5
    allowed = int(math.floor(max_false_reject * len(present)))  # present targets that may be rejected
    above = present[len(present) - allowed - 1]  # the highest present score that must stay accepted
    return float(min(1.0, np.nextafter(np.float32(above), np.float32(2.0))))


def absence_scores(p_absent: np.ndarray, absent: np.ndarray, hit: np.ndarray, threshold: float,
                   kinds: list[str] | None = None, in_map: np.ndarray | None = None) -> dict[str, Any]:
    """Rejection of absent targets, false rejection of present ones (all of them, and those a map
    object matches), and present-target Acc@0.25 before and after abstention (a rejected present
    target counts as a miss); per absent kind too."""
    reject = p_absent >= threshold
    present = ~absent
    matched = present if in_map is None else present & in_map
    out: dict[str, Any] = {
        "threshold": round(float(threshold), 4), "absent": int(absent.sum()), "present": int(present.sum()),
        "absent_rejected": round(float(reject[absent].mean()), 4) if absent.any() else None,
        "present_rejected": round(float(reject[present].mean()), 4) if present.any() else None,
        "present_in_map": int(matched.sum()),
        "present_in_map_rejected": round(float(reject[matched].mean()), 4) if matched.any() else None,
        "present_hit_rejected": round(float(reject[present & hit].mean()), 4) if (present & hit).any() else None,
        "present_acc25_before": round(float(hit[present].mean()), 4) if present.any() else None,
        "present_acc25_after": round(float((hit & ~reject)[present].mean()), 4) if present.any() else None}
    if kinds is not None:
        by_kind: dict[str, list[bool]] = {}
        for k, a, r in zip(kinds, absent, reject):
            if a:
                by_kind.setdefault(k, []).append(bool(r))
        out["absent_rejected_by_kind"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())}
    return out


# ---------------------------------------------------------------------- the stage
def train_absence(cfg: "TrainConfig", model: "Llm3dModel | None" = None) -> dict[str, Any]:
    """Stage `absent`: load cfg.init_from (a checkpoint with an object pointer), decode the referring
    records of cfg.absence_data and cfg.absence_val, start the absence pointer as a copy of the
    pointer, train it (only it) over [objects; none], calibrate the threshold on val, and save the
    checkpoint (pointer.absence on, its threshold in the config) to cfg.out."""
    from dataclasses import replace

    from llm3d_core.model.checkpoint_io import read_checkpoint_config
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.progress import progress

    if not cfg.init_from:
        raise ValueError("train.stage absent needs train.init_from: a trained checkpoint with an object pointer")
    base = read_checkpoint_config(cfg.init_from)
    if not base.object_pointer:
        raise ValueError(f"{cfg.init_from} has no object pointer; the absence pointer starts from it")
    if model is None:
        pointer = replace(base.pointer, absence=True)
        model = Llm3dModel.build(replace(base, pointer=pointer, device=cfg.model.device))
    if model.pointer is None or model.pointer.absence is None:
        raise ValueError("the model passed to train_absence has no absence pointer (pointer.absence: false)")
    model.load_trainable(Path(cfg.init_from) / "model.safetensors", missing_ok=("pointer.absence.",))
    head = model.pointer.absence
    head.pointer.load_state_dict({k: v for k, v in model.pointer.state_dict().items() if not k.startswith("absence.")})
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    weights = frozen_hash(cfg.init_from)
    train_ex, train_recs = cached_examples(model, cfg.data, list(cfg.absence_data), weights)
    val_ex, val_recs = cached_examples(model, cfg.data, [cfg.absence_val], weights)
    extract_s = time.perf_counter() - t0
    target = train_ex["target"]
    usable = torch.nonzero(target != -1).flatten()  # present targets a map object matches, and absent ones
    n_absent, n_present = int((target == ABSENT).sum()), int((target >= 0).sum())
    if n_absent == 0 or n_present == 0:
        raise ValueError(f"the absence pointer needs present and absent targets; {cfg.absence_data} has {n_absent} "
                         f"absent and {n_present} matched present (`llm3d data generate ... --absent N` writes them)")
    log.info("absence: %d training examples (%d absent, %d present with a matching object), %d val; decoded in "
             "%.0f s", len(target), n_absent, n_present, len(val_ex["target"]), extract_s)
    params = list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.absence_lr, weight_decay=cfg.weight_decay)
    k = model.config.max_objects  # the none slot's index in the logits
    class_weight = torch.ones(k + 1, device=model.device)
    class_weight[k] = n_present / n_absent  # absent and present targets weigh alike
    gen = torch.Generator().manual_seed(cfg.seed)
    history, best, best_state = [], -1.0, None
    val_absent = (val_ex["target"] == ABSENT).numpy()
    # Calibrated on the present targets the pointer grounds correctly: rejecting one costs
    # Acc@0.25; rejecting one it would ground wrongly (or that no map object holds) saves a drive
    # to the wrong object.
    val_hit = val_ex["hit"].numpy()
    for epoch in progress(range(cfg.absence_epochs), desc="absence", total=cfg.absence_epochs):
        head.train()
        order = usable[torch.randperm(len(usable), generator=gen)]
        losses = []
        for i in range(0, len(order), cfg.pointer_batch):
            s, scores = example_batch(model, train_ex, order[i: i + cfg.pointer_batch])
            logits = head(s["query"], s["objects"], s, scores)  # (b, K + 1)
            goal = torch.where(s["target"] == ABSENT, torch.full_like(s["target"], k), s["target"])
            loss = F.cross_entropy(logits, goal, weight=class_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        p_val = absent_probabilities(model, val_ex)
        t = calibrate(p_val, val_absent, cfg.absence_max_false_reject, val_hit)
        rejected = float((p_val[val_absent] >= t).mean())
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5),
                        "val_absent_rejected": round(rejected, 4), "threshold": round(t, 4)})
        log.info("absence epoch %d: loss %.4f, val absent rejected %.1f %% at threshold %.3f", epoch + 1,
                 history[-1]["loss"], 100 * rejected, t)
        if rejected > best:  # the epoch that rejects most absent targets at the allowed false rejection
            best, best_state = rejected, {n: v.detach().clone() for n, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    p_val = absent_probabilities(model, val_ex)
    threshold = calibrate(p_val, val_absent, cfg.absence_max_false_reject, val_hit)

    def scores_of(ex: dict[str, torch.Tensor], recs: list[dict[str, Any]], p: np.ndarray) -> dict[str, Any]:
        kinds = [str(recs[int(i)]["qtype"]).split("/", 1)[-1] for i in ex["record"]]
        return absence_scores(p, (ex["target"] == ABSENT).numpy(), ex["hit"].numpy(), threshold, kinds,
                              (ex["target"] >= 0).numpy())

    scores = {"train": scores_of(train_ex, train_recs, absent_probabilities(model, train_ex)),
              "val": scores_of(val_ex, val_recs, p_val)}
    model.config.pointer = replace(model.config.pointer, absence=True, absent_threshold=threshold)
    out = Path(cfg.out)
    model.save_pretrained(out, extra={"stage": "absent", "init_from": str(cfg.init_from)})
    summary = {"stage": "absent", "init_from": str(cfg.init_from), "data": list(cfg.absence_data),
               "val_data": cfg.absence_val, "max_false_reject": cfg.absence_max_false_reject, **scores,
               "best_epoch": max(history, key=lambda h: h["val_absent_rejected"])["epoch"], "history": history,
               "extract_seconds": round(extract_s, 1), "seconds": round(time.perf_counter() - t0, 1)}
    tmp = out / f".{ABSENCE_STATE}.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / ABSENCE_STATE)
    log.info("absence: threshold %.3f; val absent rejected %.1f %%, present rejected %.1f %% (%.1f %% of those "
             "in the map)", threshold, 100 * scores["val"]["absent_rejected"], 100 * scores["val"]["present_rejected"],
             100 * scores["val"]["present_in_map_rejected"])
    return {"steps": cfg.absence_epochs, "history": [{"step": h["epoch"], "loss": h["loss"]} for h in history],
            "seconds": summary["seconds"], "step_seconds_median": 0.0, "parameters": model.parameter_counts(),
            "out": str(out), "absent": summary}
