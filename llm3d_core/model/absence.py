"""Abstention: "nothing in the map matches '<text>'" as a learned, calibrated decision.

The object pointer (object_pointer.py) always picks one of the map's objects: asked for a giraffe
in a kitchen, it points at the likeliest lamp. 3D-LLM (Hong et al. 2023, sec. 3.4) grounds by
writing a box and has no way to say "none"; benchmarks of referring expressions with absent
targets (generalised referring, "no-target" expressions) add an explicit empty answer. Here the
empty answer is a small head on what the pointer has already computed:
- the pointer's query slot after its transformer: it attended to the expression's words and to
  every object, so it can notice that no object has the asked colour or relation;
- the shape of the pointer's choice: top probability, top-1 minus top-2 logit, normalised entropy;
- the open-vocabulary map evidence: the best cosine between the request's MiniLM embedding and the
  objects' text-aligned features, and that of the pointer's choice (a word the model never
  learned, "giraffe", still has an embedding far from every object's).
It outputs P(absent). It trains on the frozen model (`train.stage: absent`) from referring records
whose target is in the scene and generated ones whose target is not (sim/datagen: a category the
scene lacks, a thing no scene holds, a made-up word, a present category in a wrong colour or
relation), each decoded exactly as at inference, so the head sees what the reasoner will give it.
The threshold is calibrated on val: the lowest that rejects at most `absence_max_false_reject` of
val's present targets.
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
    from llm3d_core.model.modeling_llm3d import Llm3dModel
    from llm3d_core.model.train import TrainConfig

log = logging.getLogger(__name__)
NUM_STATS = 5  # choice_stats columns
ABSENCE_STATE = "absence_state.json"  # beside the checkpoint: scores, threshold, history


class AbsenceHead(nn.Module):
    """Pointer query state (B, d) + choice statistics (B, NUM_STATS) -> P(absent) logit (B,)."""

    def __init__(self, d_model: int, hidden: int = 64) -> None:
        super().__init__()
        self.state = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, hidden))
        self.stats = nn.Linear(NUM_STATS, hidden)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, state: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        dtype = self.stats.weight.dtype
        return self.out(self.state(state.to(dtype)) + self.stats(stats.to(dtype)))[:, 0].float()


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
    """Decodes every record's ground answer as the reasoner does and keeps what the head reads:
    state (R, d), stats (R, NUM_STATS), absent (R,) bool, hit (R,) bool (present targets: the
    pointer's box overlaps the annotated one by IoU >= 0.25), record (R,) index into `records`.
    One session per scene (its prefix is encoded once)."""
    from llm3d_core.model.data import SceneStore
    from llm3d_core.model.modeling_llm3d import InputTooLongError
    from llm3d_core.model.univlg_losses import box_iou_3d, ordered_boxes
    from llm3d_core.progress import progress_bar

    model.eval()
    store = SceneStore(data_dir, model.config.num_points)
    cols: dict[str, list] = {n: [] for n in ("state", "stats", "absent", "hit", "record")}
    by_scene: dict[str, list[int]] = {}
    for n, rec in enumerate(records):
        by_scene.setdefault(str(rec["scene_id"]), []).append(n)
    bar = progress_bar(len(records), desc)
    for scene_id, rows in by_scene.items():
        session = model.session(store.get(scene_id), scene_id)
        for n in rows:
            rec = records[n]
            bar.update(1)
            try:
                gen = model.generate(session.prefix, session.prefix_mask,
                                     model.make_sample("ground", str(rec["question"])), "ground", objects=session.batch)
            except InputTooLongError as err:
                log.warning("skipping record %s: %s", rec.get("id"), err)
                continue
            if gen.absence_inputs is None:  # the model wrote its box itself (no map object in reach)
                continue
            state, stats = gen.absence_inputs
            hit = False
            if not is_absent(rec):
                box = session.batch["object_boxes"][0, gen.pointed]
                gt = ordered_boxes(torch.tensor(rec["boxes"][0], dtype=torch.float32))
                hit = bool(box_iou_3d(box[None].float(), gt[None])[0] >= 0.25)
            cols["state"].append(state)
            cols["stats"].append(stats)
            cols["absent"].append(is_absent(rec))
            cols["hit"].append(hit)
            cols["record"].append(n)
    bar.close()
    if not cols["record"]:
        raise ValueError("no record could be decoded with the object pointer (are the maps there?)")
    return {"state": torch.stack(cols["state"]).float(), "stats": torch.stack(cols["stats"]).float(),
            "absent": torch.tensor(cols["absent"]), "hit": torch.tensor(cols["hit"]),
            "record": torch.tensor(cols["record"])}


def frozen_hash(model_dir: str | Path) -> "hashlib._Hash":
    """SHA-256 over the checkpoint's tensors but the absence head's and the mask head's (the
    examples depend on everything the decoding and the pointer use)."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    weights = load_file(str(Path(model_dir) / "model.safetensors"))
    for name in sorted(k for k in weights if not k.startswith(("pointer.absence.", "mask_head."))):
        h.update(name.encode())
        h.update(weights[name].float().numpy().tobytes())
    return h


def cached_examples(model: "Llm3dModel", data_dir: str | Path, names: list[str],
                    weights: "hashlib._Hash") -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """extract_examples for DATA/<name>.jsonl per name, cached in DATA/absence_states/<name>.safetensors
    (rebuilt when the frozen weights or the records change); concatenated, with their records."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

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
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, records


# ---------------------------------------------------------------------- calibration and scores
def calibrate(p_absent: np.ndarray, absent: np.ndarray, max_false_reject: float) -> float:
    """The lowest threshold that rejects at most `max_false_reject` of the present targets
    (p >= threshold is rejected), so that as many absent ones as possible are rejected."""
    present = np.sort(p_absent[~absent])
    if len(present) == 0:
        return 0.5
    allowed = int(math.floor(max_false_reject * len(present)))  # present targets that may be rejected
    above = present[len(present) - allowed - 1]  # the highest present score that must stay accepted
    return float(min(1.0, np.nextafter(np.float32(above), np.float32(2.0))))


def absence_scores(p_absent: np.ndarray, absent: np.ndarray, hit: np.ndarray, threshold: float,
                   kinds: list[str] | None = None) -> dict[str, Any]:
    """Rejection of absent targets, false rejection of present ones, and present-target Acc@0.25
    before and after abstention (a rejected present target counts as a miss); per absent kind too."""
    reject = p_absent >= threshold
    present = ~absent
    out: dict[str, Any] = {
        "threshold": round(float(threshold), 4), "absent": int(absent.sum()), "present": int(present.sum()),
        "absent_rejected": round(float(reject[absent].mean()), 4) if absent.any() else None,
        "present_rejected": round(float(reject[present].mean()), 4) if present.any() else None,
        "present_acc25_before": round(float(hit[present].mean()), 4) if present.any() else None,
        "present_acc25_after": round(float((hit & ~reject)[present].mean()), 4) if present.any() else None}
    if kinds is not None:
        by_kind: dict[str, list[bool]] = {}
        for k, a, r in zip(kinds, absent, reject):
            if a:
                by_kind.setdefault(k, []).append(bool(r))
        out["absent_rejected_by_kind"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())}
    return out


def head_probabilities(head: AbsenceHead, ex: dict[str, torch.Tensor]) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        device = next(head.parameters()).device
        return torch.sigmoid(head(ex["state"].to(device), ex["stats"].to(device))).cpu().numpy()


# ---------------------------------------------------------------------- the stage
def train_absence(cfg: "TrainConfig", model: "Llm3dModel | None" = None) -> dict[str, Any]:
    """Stage `absent`: load cfg.init_from (a checkpoint with an object pointer), decode the referring
    records of cfg.absence_data and cfg.absence_val, train only the absence head, calibrate its
    threshold on val, save the checkpoint (pointer.absence on, threshold in its config) to cfg.out."""
    from dataclasses import replace

    from llm3d_core.model.modeling_llm3d import Llm3dModel, read_checkpoint_config
    from llm3d_core.progress import progress

    if not cfg.init_from:
        raise ValueError("train.stage absent needs train.init_from: a trained checkpoint with an object pointer")
    base = read_checkpoint_config(cfg.init_from)
    if not base.object_pointer:
        raise ValueError(f"{cfg.init_from} has no object pointer; the absence head reads the pointer's state")
    if model is None:
        pointer = replace(base.pointer, absence=True)
        model = Llm3dModel.build(replace(base, pointer=pointer, device=cfg.model.device))
    if model.pointer is None or model.pointer.absence is None:
        raise ValueError("the model passed to train_absence has no absence head (pointer.absence: false)")
    model.load_trainable(Path(cfg.init_from) / "model.safetensors", missing_ok=("pointer.absence.",))
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    weights = frozen_hash(cfg.init_from)
    train_ex, train_recs = cached_examples(model, cfg.data, list(cfg.absence_data), weights)
    val_ex, val_recs = cached_examples(model, cfg.data, [cfg.absence_val], weights)
    extract_s = time.perf_counter() - t0
    n, n_absent = len(train_ex["absent"]), int(train_ex["absent"].sum())
    if n_absent == 0 or n_absent == n:
        raise ValueError(f"the absence head needs present and absent targets; {cfg.absence_data} has {n_absent} "
                         f"absent of {n} (generate them with `llm3d data generate ... --absent N`)")
    log.info("absence: %d training examples (%d absent), %d val; decoded in %.0f s", n, n_absent,
             len(val_ex["absent"]), extract_s)
    head = model.pointer.absence
    for p in head.parameters():  # a fresh start: init_from may already hold a head
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.absence_lr, weight_decay=cfg.weight_decay)
    pos_weight = torch.tensor((n - n_absent) / n_absent)  # absent and present count alike
    device = next(head.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    history, best, best_state = [], -1.0, None
    val_absent = val_ex["absent"].numpy()
    for epoch in progress(range(cfg.absence_epochs), desc="absence", total=cfg.absence_epochs):
        head.train()
        order = torch.randperm(n, generator=gen)
        losses = []
        for i in range(0, n, cfg.pointer_batch):
            idx = order[i: i + cfg.pointer_batch]
            logit = head(train_ex["state"][idx].to(device), train_ex["stats"][idx].to(device))
            loss = F.binary_cross_entropy_with_logits(logit, train_ex["absent"][idx].float().to(device),
                                                      pos_weight=pos_weight.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        p_val = head_probabilities(head, val_ex)
        t = calibrate(p_val, val_absent, cfg.absence_max_false_reject)
        rejected = float((p_val[val_absent] >= t).mean())
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5),
                        "val_absent_rejected": round(rejected, 4), "threshold": round(t, 4)})
        if rejected > best:  # the epoch that rejects most absent targets at the allowed false rejection
            best, best_state = rejected, {k: v.detach().clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    p_val = head_probabilities(head, val_ex)
    threshold = calibrate(p_val, val_absent, cfg.absence_max_false_reject)
    kinds = lambda ex, recs: [str(recs[int(i)]["qtype"]).split("/", 1)[-1] for i in ex["record"]]  # noqa: E731
    scores = {"train": absence_scores(head_probabilities(head, train_ex), train_ex["absent"].numpy(),
                                      train_ex["hit"].numpy(), threshold, kinds(train_ex, train_recs)),
              "val": absence_scores(p_val, val_absent, val_ex["hit"].numpy(), threshold, kinds(val_ex, val_recs))}
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
    log.info("absence: threshold %.3f; val absent rejected %.1f %%, present rejected %.1f %%", threshold,
             100 * scores["val"]["absent_rejected"], 100 * scores["val"]["present_rejected"])
    return {"steps": cfg.absence_epochs, "history": [{"step": h["epoch"], "loss": h["loss"]} for h in history],
            "seconds": summary["seconds"], "step_seconds_median": 0.0, "parameters": model.parameter_counts(),
            "out": str(out), "absent": summary}
