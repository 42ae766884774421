"""Training UniVLG's mask head on a trained 3D-LLM's frozen parts (`train.stage: mask`).

The mask head (mask_head.py; UniVLG, Jain et al., ICML 2025, sec. 3) reads the scene's points and
the referring expression's LLM states. With the rest of the model frozen, the question states are
fixed per record, so they are computed once (one short LLM pass per question) and only the head
trains, on the losses of the paper (mask BCE + Dice after Hungarian matching, the query score, and
the box L1 + GIoU on the box enclosing each predicted mask). Every other weight is untouched, so
the model's answers, its location tokens and its object pointer stay exactly as they were.

Decisions where the paper's setting differs:
- Points: the head reads `mask_head.num_points` points sampled from each map (scene caches at
  that density, scene_cache_<N>/), more than the scene encoder's 2048, since the box of a mask
  is only as tight as the points in it.
- Batches are questions about one scene: the scene's points are embedded once per batch and all
  questions' queries attend to them together (MaskGroundingHead.forward), which is what makes a
  CPU epoch take minutes.
- Records: `ground` records, and `navigate` records as referring expressions (as the pointer
  stage). The epoch with the best Acc@0.25 on the validation split is kept.
- The box loss joins at epoch `train.mask_box_from_epoch`: from random masks, whose enclosing
  boxes span the scene, it dominated the loss and the masks did not form (Acc@0.25 on the training
  scenes after 180 steps: 0 % with it from the start, 5 % without); once masks cover their
  objects it does what the paper uses it for, trimming stray points.
- Two-stage queries (`mask_head.query_init: pointer`, see mask_head.py): each record's prior is
  the frozen pointer's logits over its scene's objects, computed once from the pointer stage's
  cached LLM states (DATA/pointer_states/). The pointer was trained on the same training records
  and is surer of them than of new ones (slot accuracy 96 % on train, 64 % on val), so the score
  prior is added with a fixed weight, not a learned one the head would inflate.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm3d_core.model.data import dense_scene_store
from llm3d_core.model.modeling_llm3d import Llm3dModel
from llm3d_core.training.pointer import (batch_inputs, cached_states, referring_records, save_head_stage,
                                               weights_hash)
from llm3d_core.model.univlg_losses import box_iou_3d, ordered_boxes

if TYPE_CHECKING:
    from llm3d_core.model.data import SceneStore
    from llm3d_core.training.train import TrainConfig

log = logging.getLogger(__name__)
MASK_STATE = "mask_state.json"  # beside the checkpoint; trainer_state.json stays the base model's


@torch.no_grad()
def question_states(model: Llm3dModel, questions: list[str], batch: int = 64) -> list[torch.Tensor]:
    """Each question's token states (L_i, H), fp16 on the CPU (the head's text input, computed once)."""
    from llm3d_core.progress import progress

    out: list[torch.Tensor] = []
    chunks = [questions[i: i + batch] for i in range(0, len(questions), batch)]
    for chunk in progress(chunks, desc="question states", total=len(chunks)):
        states, pad = model.question_states(chunk)  # (b, L, H), (b, L)
        out += [s[~p].half().cpu() for s, p in zip(states, pad)]
    return out


def pad_states(states: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacks (L_i, H) states into (B, L, H) and the padding (B, L) (True = padding)."""
    text = torch.nn.utils.rnn.pad_sequence([s.float() for s in states], batch_first=True).to(device)  # (B, L, H)
    lengths = torch.tensor([s.shape[0] for s in states], device=device)
    return text, torch.arange(text.shape[1], device=device)[None] >= lengths[:, None]


@torch.no_grad()
def pointer_priors(model: Llm3dModel, cfg: "TrainConfig", names: list[str], count: int, batch: int = 256
                   ) -> list[torch.Tensor | None]:
    """The frozen pointer's logits (K,) over the object slots for each of the `count` referring
    records of DATA/<name>.jsonl, the names' records concatenated in order; None for a record the
    pointer stage skipped (an over-long prompt). The LLM states come from the pointer stage's caches."""
    if model.pointer is None:
        raise ValueError("mask_head.query_init pointer needs a checkpoint with a trained object pointer")
    states = cached_states(model, cfg, names, weights_hash(cfg.init_from))
    out: list[torch.Tensor | None] = [None] * count
    model.pointer.eval()
    n = states["query"].shape[0]
    for i in range(0, n, batch):
        idx = torch.arange(i, min(i + batch, n))
        s = batch_inputs(model, states, idx)
        logits = model.pointer(s["query"], s["objects"], s).cpu()  # (b, K)
        for rec, row in zip(states["record"][idx].tolist(), logits):
            out[rec] = row
    return out


class ReferringSet:
    """Referring records with their question states (and pointer priors), grouped by scene for one-scene batches."""

    def __init__(self, model: Llm3dModel, records: list[dict[str, Any]], store: "SceneStore",
                 priors: list[torch.Tensor | None] | None = None) -> None:
        keep = [i for i, r in enumerate(records) if store.available(str(r["scene_id"]))
                and (priors is None or priors[i] is not None)]
        self.records = [records[i] for i in keep]
        self.priors = [priors[i] for i in keep] if priors is not None else None
        if len(self.records) < len(records):
            log.warning("%d referring records have no scene map (or no pointer prior) and are left out",
                        len(records) - len(self.records))
        self.store = store
        self.states = question_states(model, [str(r["question"]) for r in self.records])
        self.boxes = [ordered_boxes(torch.as_tensor(r["boxes"][0], dtype=torch.float32).reshape(6))
                      for r in self.records]
        self.by_scene: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.records):
            self.by_scene[str(r["scene_id"])].append(i)

    def __len__(self) -> int:
        return len(self.records)

    def batches(self, size: int, rng: random.Random | None = None) -> list[tuple[str, list[int]]]:
        """(scene_id, record indices) batches of at most `size` questions about one scene; shuffled with rng."""
        out = []
        for sid in sorted(self.by_scene):
            idx = list(self.by_scene[sid])
            if rng is not None:
                rng.shuffle(idx)
            out += [(sid, idx[i: i + size]) for i in range(0, len(idx), size)]
        if rng is not None:
            rng.shuffle(out)
        return out

    def inputs(self, model: Llm3dModel, sid: str, idx: list[int]
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The scene batch (1, …), the questions' text (B, L, H) and padding (B, L), and their
        pointer priors (B, K) (None without priors)."""
        scene = {k: v.to(model.device) for k, v in model.collate_scenes([self.store.get(sid)]).items()}
        text, pad = pad_states([self.states[i] for i in idx], model.device)
        prior = torch.stack([self.priors[i] for i in idx]).to(model.device) if self.priors is not None else None
        return scene, text, pad, prior


@torch.no_grad()
def mask_accuracy(model: Llm3dModel, data: ReferringSet, batch: int = 32) -> dict[str, float]:
    """Acc@0.25 / Acc@0.5 of the decoded masks' boxes (an empty mask is a miss), and the mean IoU."""
    head = model.mask_head
    head.eval()
    ious = []
    for sid, idx in data.batches(batch):
        scene, text, pad, prior = data.inputs(model, sid, idx)
        logits, scores = head(scene, text, pad, prior)[-1]  # (B, Q, N), (B, Q)
        for j, i in enumerate(idx):
            found = head.decode(scene["points"][0], logits[j], scores[j])
            ious.append(float(box_iou_3d(torch.as_tensor(found.box, dtype=torch.float32), data.boxes[i]))
                        if found.box is not None else 0.0)
    iou = np.asarray(ious) if ious else np.zeros(1)
    return {"acc25": float((iou >= 0.25).mean()), "acc50": float((iou >= 0.5).mean()), "mean_iou": float(iou.mean()),
            "records": len(ious)}


def train_mask_head(cfg: "TrainConfig", model: Llm3dModel | None = None) -> dict[str, Any]:
    """Stage `mask`: load cfg.init_from, add (or keep) the mask head, train only it, save to cfg.out.

    `model` may be passed pre-built with its mask head (tests inject a tiny LLM); the weights of
    cfg.init_from are loaded into it either way (a mask head they hold is trained further).
    """
    from llm3d_core.model.checkpoint_io import read_checkpoint_config
    from llm3d_core.progress import progress

    if not cfg.init_from:
        raise ValueError("train.stage mask needs train.init_from: the trained checkpoint whose parts it keeps")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        base = read_checkpoint_config(cfg.init_from)
        model = Llm3dModel.build(replace(base, grounding_head="mask", mask_head=cfg.model.mask_head,
                                         device=cfg.model.device))
    if model.mask_head is None:
        raise ValueError("the model passed to train_mask_head has no mask head (grounding_head is not mask)")
    model.load_trainable(Path(cfg.init_from) / "model.safetensors", missing_ok=("mask_head.",))
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    t0 = time.perf_counter()
    m = model.config.mask_head
    store = dense_scene_store(cfg.data, m.num_points, capacity=256, object_points=m.object_points)
    model.eval()  # the frozen parts; the head switches to train mode per epoch
    train_names = [cfg.split, *cfg.pointer_extra]
    train_recs = [r for name in train_names for r in referring_records(Path(cfg.data) / f"{name}.jsonl")]
    val_recs = referring_records(Path(cfg.data) / f"{cfg.pointer_val_split}.jsonl")
    train_priors = val_priors = None
    if model.mask_head.needs_prior:
        train_priors = pointer_priors(model, cfg, train_names, len(train_recs))
        val_priors = pointer_priors(model, cfg, [cfg.pointer_val_split], len(val_recs))
    train_set = ReferringSet(model, train_recs, store, train_priors)
    val_set = ReferringSet(model, val_recs, store, val_priors)
    if not len(train_set):
        raise ValueError(f"no referring records with a scene map in {cfg.data} ({cfg.split}, {cfg.pointer_extra})")
    prep_s = time.perf_counter() - t0
    log.info("mask head: %d training records in %d scenes, %d val records; prepared in %.0f s", len(train_set),
             len(train_set.by_scene), len(val_set), prep_s)
    params = list(model.mask_head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.mask_lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_set.batches(cfg.mask_batch))
    total = steps_per_epoch * cfg.mask_epochs
    warmup = max(1, steps_per_epoch // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    best, best_state, history = -1.0, None, []
    for epoch in range(cfg.mask_epochs):
        model.mask_head.train()
        losses, terms = [], defaultdict(list)
        for sid, idx in progress(train_set.batches(cfg.mask_batch, rng), desc=f"mask epoch {epoch + 1}",
                                 total=steps_per_epoch):
            scene, text, pad, prior = train_set.inputs(model, sid, idx)
            got = model.mask_head.losses(model.mask_head(scene, text, pad, prior), scene, [train_set.boxes[i] for i in idx],
                                         box_scale=float(epoch + 1 >= cfg.mask_box_from_epoch))
            if float(got["scenes"]) == 0:  # no target holds a sampled point: nothing to learn here
                continue
            opt.zero_grad(set_to_none=True)
            got["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(got["total"].detach()))
            for k, v in got.items():
                if k not in ("total", "scenes"):
                    terms[k].append(float(v.detach()))
        val = mask_accuracy(model, val_set)
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)) if losses else float("nan"), 5),
                        **{k: round(float(np.mean(v)), 4) for k, v in terms.items()},
                        **{f"val_{k}": round(v, 4) for k, v in val.items() if k != "records"}})
        log.info("mask epoch %d: loss %.4f, val Acc@0.25 %.3f, Acc@0.5 %.3f, mean IoU %.3f", epoch + 1,
                 history[-1]["loss"], val["acc25"], val["acc50"], val["mean_iou"])
        if val["acc25"] > best:
            best = val["acc25"]
            best_state = {k: v.detach().clone() for k, v in model.mask_head.state_dict().items()}
            # The best head so far is on disk: a run stopped early still leaves a usable checkpoint.
            model.save_pretrained(out, extra={"stage": "mask", "init_from": str(cfg.init_from), "epoch": epoch + 1})
    model.mask_head.load_state_dict(best_state)
    val_acc = mask_accuracy(model, val_set)
    return save_head_stage(model, cfg, "mask", MASK_STATE, {"num_points": m.num_points,
                                                          "train_records": len(train_set), "val": val_acc},
                           history, total, t0, prepare_seconds=round(prep_s, 1))
