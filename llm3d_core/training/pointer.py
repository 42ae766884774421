"""Training the object pointer on a trained 3D-LLM's frozen hidden states (`train.stage: pointer`).

The pointer (object_pointer.py) reads two things from the LLM: its state where a grounding
answer's first location token is due, and its states at the object tokens. With the rest of the
model frozen these are fixed per record, so they are extracted once (one forward pass per record,
no backward) and the pointer then trains for many epochs on them in seconds per epoch; this is
3D-LLM's recipe of training a light 3D-to-language part on a frozen LLM, applied to one head.
The other weights are untouched, so every non-grounding answer stays exactly as before.

Records: `ground` records, and `navigate` records as referring expressions (the robot's
navigation grounds its instruction with the ground task; see Reasoner.navigation_goal).
The best epoch on the validation split's box accuracy (Acc@0.25) is kept.
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
import torch.nn.functional as F

from llm3d_core.model.checkpoint_io import HEAD_PREFIXES, WEIGHTS_NAME, read_weights
from llm3d_core.model.data import SceneStore, ground_label, read_records
from llm3d_core.model.location_tokens import encode_box
from llm3d_core.model.object_pointer import object_inputs
from llm3d_core.model.modeling_llm3d import InputTooLongError, Llm3dModel, Sample
from llm3d_core.model.univlg_losses import box_iou_3d, ordered_boxes

if TYPE_CHECKING:
    from llm3d_core.training.train import TrainConfig

log = logging.getLogger(__name__)
POINTER_TASKS = ("ground", "navigate")
POINTER_STATE = "pointer_state.json"  # beside the checkpoint; trainer_state.json stays the base model's


def referring_records(path: str | Path) -> list[dict[str, Any]]:
    """ground records, and navigate records (instruction + target box) re-cast as ground records."""
    out = []
    for rec in read_records(path):
        if rec["task"] in POINTER_TASKS and rec.get("boxes") and len(rec["boxes"][0]) == 6 and rec.get("question"):
            out.append({**rec, "task": "ground"})
    return out


def weights_hash(model_dir: str | Path, skip: tuple[str, ...] = HEAD_PREFIXES) -> "hashlib._Hash":
    """SHA-256 over the checkpoint's tensors but those starting with a prefix in `skip` (default: the
    pointer's and the mask head's, which the extracted states do not depend on, so retraining the
    pointer reuses them). Read once per run, extended per record file."""
    h = hashlib.sha256()
    weights = read_weights(Path(model_dir) / WEIGHTS_NAME)
    for name in sorted(k for k in weights if not k.startswith(skip)):
        h.update(name.encode())
        h.update(weights[name].float().numpy().tobytes())
    return h


def _fingerprint(weights: "hashlib._Hash", records: list[dict[str, Any]]) -> str:
    """Changes when the frozen model's weights or the records change (the extracted states would)."""
    h = weights.copy()
    h.update(json.dumps([r["id"] for r in records]).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def extract_states(model: Llm3dModel, data_dir: str | Path, records: list[dict[str, Any]], batch_size: int,
                   desc: str = "states") -> dict[str, torch.Tensor]:
    """The LLM's side of the pointer's inputs for every record: query (R, H) and objects (R, K, H)
    (fp16, K = max_objects), target (R,) slot (-1 none), gt (R, 6) annotated box, record (R,) index
    into `records` (an over-long record is skipped)."""
    from llm3d_core.progress import progress

    model.eval()
    store = SceneStore(data_dir, model.config.num_points)
    k_max = model.config.max_objects
    cols: dict[str, list[torch.Tensor]] = {n: [] for n in ("query", "objects", "target", "gt", "record")}
    batches = [list(range(i, min(i + batch_size, len(records)))) for i in range(0, len(records), batch_size)]
    for batch in progress(batches, desc=desc, total=len(batches)):
        scenes, samples, kept = [], [], []
        for n in batch:
            rec = records[n]
            scene = store.get(str(rec["scene_id"]))
            box = ordered_boxes(torch.tensor(rec["boxes"][0], dtype=torch.float64))
            try:
                sample = model.make_sample("ground", str(rec["question"]), None,
                                           f"{ground_label(rec)} {encode_box(box.numpy(), scene.scene_bounds)}")
            except InputTooLongError as err:
                log.warning("skipping record %s: %s", rec.get("id"), err)
                continue
            sample.pointer_box = box.float()
            scenes.append(scene)
            samples.append(sample)
            kept.append(n)
        if not samples:
            continue
        scene_batch = model.collate_scenes(scenes)
        hidden, _, plen = model.hidden_states(scene_batch, samples)  # (B, T, H)
        rows, inp = model.pointer_inputs(hidden, scene_batch, samples, plen)
        pad = k_max - plen
        cols["query"].append(inp["query"].half().cpu())
        cols["objects"].append(F.pad(inp["objects"], (0, 0, 0, pad)).half().cpu())  # (R, K, H)
        cols["target"].append(inp["target"].cpu())
        cols["gt"].append(torch.stack([samples[i].pointer_box for i in rows]))
        cols["record"].append(torch.tensor([kept[i] for i in rows]))
    return {n: torch.cat(v) for n, v in cols.items()}


def attach_object_inputs(model: Llm3dModel, data_dir: str | Path, records: list[dict[str, Any]],
                         states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adds the objects' own tensors (object_inputs; read from the scene caches, one collated row per
    scene) and `scene` (R,), each record's row among them, to the extracted states."""
    store = SceneStore(data_dir, model.config.num_points)
    scene_ids = sorted({str(records[int(n)]["scene_id"]) for n in states["record"]})
    batch = model.collate_scenes([store.get(sid) for sid in scene_ids])
    row = {sid: i for i, sid in enumerate(scene_ids)}
    objects = object_inputs(batch, model.config.max_objects)
    out = {**states, **{f"scene_{k}": v for k, v in objects.items()},
           "scene": torch.tensor([row[str(records[int(n)]["scene_id"])] for n in states["record"]])}
    if model.config.pointer.question_tokens:
        ids, pad = model.question_ids([str(records[int(n)]["question"]) for n in states["record"]])
        out.update({"word_ids": ids, "words_pad": pad})
    return out


def batch_inputs(model: Llm3dModel, states: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows `idx` of the states, with their scenes' object inputs gathered under their own names
    (and the questions' word embeddings when the pointer reads them)."""
    device = model.device
    scene = states["scene"][idx]
    out = {k: states[k][idx].to(device) for k in ("query", "objects", "target", "gt")}
    out["query"], out["objects"] = out["query"].float(), out["objects"].float()
    out.update({k[len("scene_"):]: v[scene].to(device) for k, v in states.items() if k.startswith("scene_")})
    if "word_ids" in states:
        ids, pad = states["word_ids"][idx], states["words_pad"][idx]
        keep = int((~pad).sum(1).max())  # drop padding columns no row of the batch uses
        out.update(model.question_words([], (ids[:, :keep], pad[:, :keep])))
    return out


def cached_states(model: Llm3dModel, cfg: "TrainConfig", names: list[str],
                  weights: "hashlib._Hash") -> dict[str, torch.Tensor]:
    """extract_states for the records of DATA/<name>.jsonl for each name, each cached in
    DATA/pointer_states/<name>.safetensors (beside the scene caches: hundreds of MB that do not
    belong in a checkpoint folder), concatenated, with their object inputs attached.
    weights: weights_hash(cfg.init_from), which keys the caches."""
    records: list[dict[str, Any]] = []
    parts = []
    for name in names:
        recs = referring_records(Path(cfg.data) / f"{name}.jsonl")
        states = _cached_llm_states(model, cfg, name, recs, weights)
        parts.append({**states, "record": states["record"] + len(records)})
        records += recs
    merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return attach_object_inputs(model, cfg.data, records, merged)


def _cached_llm_states(model: Llm3dModel, cfg: "TrainConfig", split: str, records: list[dict[str, Any]],
                       weights: "hashlib._Hash") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file, save_file

    if not records:
        raise ValueError(f"{Path(cfg.data) / (split + '.jsonl')} has no ground or navigate records with boxes")
    key = _fingerprint(weights, records)
    path = Path(cfg.data) / "pointer_states" / f"{split}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                same = (f.metadata() or {}).get("fingerprint") == key
            if same:
                log.info("reusing %s", path)
                states = load_file(str(path))
                if "record" in states:
                    return {k: states[k] for k in ("query", "objects", "target", "gt", "record")}
        except Exception as err:  # a torn cache is rebuilt, never trusted
            log.warning("ignoring unreadable %s (%s)", path, err)
    states = extract_states(model, cfg.data, records, cfg.batch_size, desc=f"{split} states")
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in states.items()}, str(tmp), metadata={"fingerprint": key})
    os.replace(tmp, path)
    return states


def pointer_accuracy(model: Llm3dModel, states: dict[str, torch.Tensor], batch: int = 256) -> dict[str, float]:
    """Slot accuracy (records with a target) and box Acc@0.25 / Acc@0.5 of the chosen object's box."""
    model.pointer.eval()
    hits, acc25, acc50 = 0, 0, 0
    n = states["query"].shape[0]
    with torch.no_grad():
        for i in range(0, n, batch):
            s = batch_inputs(model, states, torch.arange(i, min(i + batch, n)))
            logits = model.pointer(s["query"], s["objects"], s)
            choice = logits.argmax(-1)  # (b,)
            hits += int((choice == s["target"]).sum())
            chosen = s["object_boxes"][torch.arange(len(choice)), choice]  # (b, 6)
            iou = box_iou_3d(chosen, s["gt"])  # (b,)
            acc25 += int((iou >= 0.25).sum())
            acc50 += int((iou >= 0.5).sum())
    with_target = max(1, int((states["target"] >= 0).sum()))
    return {"slot_acc": hits / with_target, "acc25": acc25 / max(1, n), "acc50": acc50 / max(1, n), "records": n}


def train_pointer(cfg: "TrainConfig", model: Llm3dModel | None = None) -> dict[str, Any]:
    """Stage `pointer`: load cfg.init_from, extract frozen states, train only the pointer, save to cfg.out.

    `model` may be passed pre-built with its pointer (tests inject a tiny LLM); the weights of
    cfg.init_from are loaded into it either way.
    """
    from dataclasses import replace

    from llm3d_core.model.checkpoint_io import read_checkpoint_config
    from llm3d_core.progress import progress

    if not cfg.init_from:
        raise ValueError("train.stage pointer needs train.init_from: the trained checkpoint whose states it reads")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    base = read_checkpoint_config(cfg.init_from)
    if base.scene_encoder != "objects":
        raise ValueError(f"{cfg.init_from} uses the {base.scene_encoder} scene encoder; the pointer needs objects")
    if model is None:
        model = Llm3dModel.build(replace(base, object_pointer=True, pointer=cfg.model.pointer, device=cfg.model.device))
    if model.pointer is None:
        raise ValueError("the model passed to train_pointer has no object pointer (object_pointer: false)")
    model.load_trainable(Path(cfg.init_from) / "model.safetensors", missing_ok=("pointer.",))
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    weights = weights_hash(cfg.init_from)
    train_states = cached_states(model, cfg, [cfg.split, *cfg.pointer_extra], weights)
    val_states = cached_states(model, cfg, [cfg.pointer_val_split], weights)
    extract_s = time.perf_counter() - t0
    n = train_states["query"].shape[0]
    usable = torch.nonzero(train_states["target"] >= 0).flatten()
    log.info("pointer: %d training records (%d with a matching proposal), %d val records; states in %.0f s",
             n, len(usable), val_states["query"].shape[0], extract_s)
    if len(usable) == 0:
        raise ValueError(f"no {cfg.split} record's box overlaps a map object by IoU >= "
                         f"{model.config.pointer.match_iou}: the pointer has nothing to learn (check the maps)")
    params = list(model.pointer.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.pointer_lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(usable) / cfg.pointer_batch))
    total = steps_per_epoch * cfg.pointer_epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps_per_epoch)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, history = -1.0, None, []
    for epoch in progress(range(cfg.pointer_epochs), desc="pointer", total=cfg.pointer_epochs):
        model.pointer.train()
        order = usable[torch.randperm(len(usable), generator=gen)]
        losses = []
        for i in range(0, len(order), cfg.pointer_batch):
            s = batch_inputs(model, train_states, order[i: i + cfg.pointer_batch])
            logits = model.pointer(s["query"], s["objects"], s)
            loss = F.cross_entropy(logits, s["target"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val = pointer_accuracy(model, val_states)
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5),
                        **{f"val_{k}": round(v, 4) for k, v in val.items() if k != "records"}})
        log.info("pointer epoch %d: loss %.4f, val slot acc %.3f, Acc@0.25 %.3f, Acc@0.5 %.3f", epoch + 1,
                 history[-1]["loss"], val["slot_acc"], val["acc25"], val["acc50"])
        if val["acc25"] > best:
            best = val["acc25"]
            best_state = {k: v.detach().clone() for k, v in model.pointer.state_dict().items()}
    model.pointer.load_state_dict(best_state)
    train_acc = pointer_accuracy(model, train_states)
    val_acc = pointer_accuracy(model, val_states)
    return save_head_stage(model, cfg, "pointer", POINTER_STATE, {"train": train_acc, "val": val_acc},
                           history, total, t0, extract_seconds=round(extract_s, 1))


def save_head_stage(model: Llm3dModel, cfg: "TrainConfig", stage: str, state_name: str, scores: dict[str, Any],
                    history: list[dict[str, Any]], steps: int, t0: float, **extra: Any) -> dict[str, Any]:
    """Saves a head stage's checkpoint to cfg.out with its summary (scores, best epoch by val Acc@0.25,
    the epochs' history, timings) as `state_name` beside it; returns train()'s summary with it under `stage`."""
    out = Path(cfg.out)
    model.save_pretrained(out, extra={"stage": stage, "init_from": str(cfg.init_from)})
    summary = {"stage": stage, "init_from": str(cfg.init_from), **scores,
               "best_epoch": max(history, key=lambda h: h["val_acc25"])["epoch"], "history": history, **extra,
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / state_name).write_text(json.dumps(summary, indent=1))
    return {"steps": steps, "history": [{"step": h["epoch"], "loss": h["loss"]} for h in history],
            "seconds": summary["seconds"], "step_seconds_median": 0.0, "parameters": model.parameter_counts(),
            "out": str(out), stage: summary}
