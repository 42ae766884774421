"""Training of the 3D-LLM: the scene encoder, projector and location-token rows (LLM frozen).

3D-LLM (Hong et al. 2023, sec. 3.4) trains the 3D-to-language bridge with the LLM frozen; so do
we by default (LoRA optional). `train(cfg)` only orchestrates: data, model, optimiser, the loop
of `train_step()` calls, logging and checkpoints. The same code runs on one CPU, one GPU, or
several GPUs under torchrun/accelerate (DDP is used when torch.distributed is initialised or
WORLD_SIZE > 1); only rank 0 writes.

Checkpoint folder: model.safetensors (trainable part) + config.json, plus trainer_state.pt
(optimiser, scheduler, step, RNG; loaded with weights_only=True) and trainer_state.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from llm3d_core.model.configuration_llm3d import TASKS, Llm3dConfig
from llm3d_core.model.data import (DatasetError, JsonlSceneDataset, dialog_history, ground_label, question_text,
                                   scene_store_for, target_text)
from llm3d_core.model.modeling_llm3d import InputTooLongError, Llm3dModel, Sample
from llm3d_core.model.scene import SceneInput

log = logging.getLogger(__name__)
STATE_PT, STATE_JSON = "trainer_state.pt", "trainer_state.json"
# The training stages, in the order the shipped checkpoint runs them, and the function that runs
# each (module, name): joint trains here; the others train one head on the frozen model.
STAGE_RUNNERS = {
    "joint": ("llm3d_core.training.train", "train_joint"),  # encoder, projector, token rows, LoRA
    "pointer": ("llm3d_core.training.pointer", "train_pointer"),  # the object pointer (cached LLM states)
    "mask": ("llm3d_core.training.mask", "train_mask_head"),  # UniVLG's mask head
    "absent": ("llm3d_core.model.absence", "train_absence"),  # the absence pointer's "none" slot
}
STAGES = tuple(STAGE_RUNNERS)


@dataclass
class TrainConfig:
    data: str = ""  # folder with <split>.jsonl and maps/
    out: str = ""  # checkpoint folder
    split: str = "train"
    model: Llm3dConfig = field(default_factory=Llm3dConfig)
    tasks: list[str] = field(default_factory=list)  # empty: all tasks
    batch_size: int = 8  # per device and micro-step
    grad_accum: int = 1  # micro-steps per optimiser step
    max_steps: int = 1000  # optimiser steps
    lr: float = 3e-4
    weight_decay: float = 0.01
    loc_lr_scale: float = 10.0  # the 256 new location-token rows start far from fit: a larger step size
    warmup_steps: int = 20
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | no
    log_every: int = 10
    save_every: int = 200
    seed: int = 0
    num_workers: int = 0  # DataLoader workers (0: in-process)
    shuffle_buffer: int = 2048
    skip_missing_scenes: bool = False  # train on the records whose scene map exists (maps still being generated)
    resume: bool = False
    # joint: the LM loss (and enabled heads) over all parts | pointer: only the object pointer, on the
    # frozen states of init_from (training/pointer.py) | mask: only UniVLG's mask head (training/mask.py)
    stage: str = "joint"
    init_from: str = ""  # checkpoint folder whose weights start the model (parts it lacks start fresh)
    # prefixes of init_from's tensors not loaded (those parts start fresh): e.g. ["scene_encoder."] to
    # train another scene encoder on the same LoRA adapters and location-token rows
    init_skip: list[str] = field(default_factory=list)
    pointer_epochs: int = 40
    pointer_lr: float = 1e-3
    pointer_batch: int = 64
    pointer_val_split: str = "val"  # the pointer (and the mask head) keep their best epoch on this split
    # more record files DATA/<name>.jsonl for the pointer and mask stages
    pointer_extra: list[str] = field(default_factory=list)
    mask_epochs: int = 6
    mask_lr: float = 3e-4
    mask_batch: int = 32  # questions about one scene per step (the scene's points are embedded once)
    mask_box_from_epoch: int = 1  # the mask head's box loss (L1 + GIoU) counts from this epoch on (1: always)
    # UniVLG's 2D-3D co-training (training/cotrain.py): record files DATA/<name>.jsonl about single views
    # (`llm3d data views`), mixed into the joint stage's stream as this share of its samples (0: scenes only)
    frame_data: list[str] = field(default_factory=list)
    frame_fraction: float = 0.0
    # absent: only the absence head (model/absence.py) on the frozen model and pointer of init_from, from
    # the referring records of DATA/<name>.jsonl (present and absent targets; `llm3d data generate --absent`)
    absence_data: list[str] = field(default_factory=lambda: ["train_absent"])
    absence_val: str = "val_absent"  # the threshold is calibrated on it
    absence_epochs: int = 4
    absence_lr: float = 3e-4
    absence_max_false_reject: float = 0.03  # share of val's correctly grounded present targets it may reject

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not 0.0 <= self.absence_max_false_reject < 1.0:
            raise ValueError(f"absence_max_false_reject must be in [0, 1), got {self.absence_max_false_reject}")
        for name in ("pointer_epochs", "pointer_batch", "mask_epochs", "mask_batch", "mask_box_from_epoch",
                     "absence_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pointer_lr", "mask_lr", "absence_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "max_steps", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.loc_lr_scale > 0:
            raise ValueError(f"loc_lr_scale must be > 0, got {self.loc_lr_scale}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError(f"need lr > 0, weight_decay/warmup_steps/num_workers >= 0, got {self.lr}, "
                             f"{self.weight_decay}, {self.warmup_steps}, {self.num_workers}")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ValueError(f"mixed_precision must be auto, bf16 or no, got {self.mixed_precision!r}")
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"tasks must be among {TASKS}, got {bad}")
        if not 0.0 <= self.frame_fraction <= 1.0:
            raise ValueError(f"frame_fraction must be in [0, 1], got {self.frame_fraction}")
        if self.frame_fraction > 0 and not self.frame_data:
            raise ValueError("frame_fraction > 0 needs frame_data: the single-view record files (llm3d data views)")


# ---------------------------------------------------------------------- pieces
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_batch(model: Llm3dModel, items: list[tuple[dict[str, Any], SceneInput]]
               ) -> tuple[dict[str, torch.Tensor], list[Sample]] | None:
    """Tokenises (record, scene) pairs; over-long records are skipped with a warning."""
    scenes, samples = [], []
    for rec, scene in items:
        try:
            history = dialog_history(rec) if rec["task"] == "dialog" else None
            bounds = scene.scene_bounds
            samples.append(model.make_sample(rec["task"], question_text(rec, bounds), history, target_text(rec, bounds)))
            if rec["task"] == "ground" and model.config.grounding_head == "mask":
                # UniVLG sec. 3: the mask head learns the same referring expressions, from their boxes.
                samples[-1].ground_question = str(rec.get("question") or ground_label(rec))
                samples[-1].ground_boxes = torch.tensor(rec["boxes"], dtype=torch.float32).reshape(-1, 6)  # (T, 6)
            if rec["task"] == "ground" and model.config.object_pointer:
                samples[-1].pointer_box = torch.tensor(rec["boxes"][0], dtype=torch.float32)  # (6,)
            scenes.append(scene)
        except InputTooLongError as err:
            log.warning("skipping record %s: %s", rec.get("id"), err)
    if not samples:
        return None
    return model.collate_scenes(scenes), samples


def training_stream(cfg: TrainConfig, model_config: Llm3dConfig, seed: int) -> IterableDataset:
    """The joint stage's endless (record, SceneInput) stream: DATA/<split>.jsonl shuffled, with the
    single-view files of cfg.frame_data mixed in at cfg.frame_fraction (UniVLG's co-training)."""
    from llm3d_core.training.cotrain import CoTrainingConfig, CoTrainingMixer, RoundRobin

    store = scene_store_for(cfg.data, model_config)

    def stream(name: str) -> JsonlSceneDataset:
        return JsonlSceneDataset(cfg.data, name, model_config.num_points, shuffle=True, repeat=True, seed=seed,
                                 buffer_size=cfg.shuffle_buffer, tasks=cfg.tasks or None,
                                 skip_missing_scenes=cfg.skip_missing_scenes, store=store)

    scenes = stream(cfg.split)
    if cfg.frame_fraction <= 0:
        return scenes
    if model_config.scene_input != "map":
        raise ValueError(f"co-training on single views needs scene_input 'map' (views are lifted points), "
                         f"got {model_config.scene_input!r}")
    log.info("co-training: %.0f %% of samples are single views from %s", 100 * cfg.frame_fraction,
             ", ".join(f"{n}.jsonl" for n in cfg.frame_data))
    frames = RoundRobin([stream(name) for name in cfg.frame_data])
    return CoTrainingMixer(frames, scenes, CoTrainingConfig(cfg.frame_fraction, seed=seed))


def autocast_for(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (auto/bf16), plain fp32 elsewhere."""
    if device.type == "cuda" and mode in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model: torch.nn.Module, micro_batches: list[tuple[dict[str, torch.Tensor], list[Sample]]],
               optimizer: torch.optim.Optimizer, scheduler: Any = None, grad_clip: float = 1.0,
               amp: contextlib.AbstractContextManager | None = None) -> float:
    """One optimiser step over `micro_batches` (gradient accumulation); returns the mean loss.

    `model` may be DDP-wrapped: gradients are synchronised only on the last micro-batch.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (scene, samples) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with amp or contextlib.nullcontext():
                loss = model(scene, samples)
            (loss / len(micro_batches)).backward()
        total += float(loss.detach())
    params = [p for p in model.parameters() if p.requires_grad]
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return total / len(micro_batches)


def make_optimizer(model: Llm3dModel, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    decay, no_decay, loc = [], [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (loc if name.startswith("loc_") else no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0},
                             {"params": loc, "weight_decay": 0.0, "lr": cfg.lr * cfg.loc_lr_scale}],
                            lr=cfg.lr, betas=(0.9, 0.98))

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def save_checkpoint(model: Llm3dModel, optimizer: torch.optim.Optimizer, scheduler: Any, step: int,
                    out: Path, history: list[dict[str, float]], start: dict[str, Any] | None = None) -> None:
    """start: where the weights began (init_from, init_skip), recorded in config.json."""
    model.save_pretrained(out, extra={"step": step, **(start or {})})
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
             "torch_rng": torch.get_rng_state(), "np_rng_seed": int(np.random.randint(0, 2**31 - 1))}
    tmp = out / f".{STATE_PT}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_PT)
    (out / STATE_JSON).write_text(json.dumps({"step": step, "history": history[-2000:]}, indent=0))


def _init_distributed() -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group under torchrun when needed."""
    dist = torch.distributed
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


# ---------------------------------------------------------------------- orchestration
def train(cfg: TrainConfig, model: Llm3dModel | None = None) -> dict[str, Any]:
    """Runs the stage cfg.stage (STAGE_RUNNERS); returns its summary (losses, timings, parameter counts).

    `model` may be passed pre-built (tests inject a tiny LLM); otherwise it is built from cfg.model.
    """
    import importlib

    if not cfg.data or not cfg.out:
        raise ValueError("TrainConfig needs data and out folders")
    module, name = STAGE_RUNNERS[cfg.stage]
    return getattr(importlib.import_module(module), name)(cfg, model)


def train_joint(cfg: TrainConfig, model: Llm3dModel | None = None) -> dict[str, Any]:
    """The joint stage: cfg.max_steps optimiser steps over the records (3D-LLM sec. 3.4)."""
    from torch.utils.data import DataLoader

    from llm3d_core.device import resolve_device
    from llm3d_core.progress import progress

    rank, world, local_rank = _init_distributed()
    seed_everything(cfg.seed + rank)
    out = Path(cfg.out)
    device = resolve_device(cfg.model.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    resume = cfg.resume and (out / STATE_PT).is_file()
    if model is None:
        model = Llm3dModel.build(cfg.model, str(device))
    model.to(device)
    if resume:
        model.load_trainable(out / "model.safetensors")
    elif cfg.init_from:
        # Parts the starting checkpoint lacks (a head added on top of it) keep their fresh initialisation.
        model.load_trainable(Path(cfg.init_from) / "model.safetensors", missing_ok=("pointer.", "mask_head."),
                             skip=tuple(cfg.init_skip))
        if cfg.init_skip:
            log.info("warm start from %s; fresh: %s", cfg.init_from, ", ".join(cfg.init_skip))
    optimizer, scheduler = make_optimizer(model, cfg)
    step, history = 0, []
    if resume:
        state = torch.load(out / STATE_PT, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        np.random.seed(int(state["np_rng_seed"]))
        if (out / STATE_JSON).is_file():
            history = json.loads((out / STATE_JSON).read_text()).get("history", [])
        log.info("resumed from %s at step %d", out, step)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    dataset = training_stream(cfg, model.config, seed=cfg.seed + step)
    loader = iter(DataLoader(dataset, batch_size=cfg.batch_size, collate_fn=list, num_workers=cfg.num_workers))
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(out / "tb"))
        counts = model.parameter_counts()
        log.info("parameters: %d trainable, %d frozen; device %s, world %d", counts["trainable"], counts["frozen"],
                 device, world)
    amp = autocast_for(device, cfg.mixed_precision)
    t_start, step_times = time.perf_counter(), []
    steps = range(step, cfg.max_steps)
    for step in progress(steps, desc="train", total=len(steps)) if rank == 0 else steps:
        micro = []
        while len(micro) < cfg.grad_accum:
            try:
                items = next(loader)
            except StopIteration:
                raise DatasetError(f"no record of {Path(cfg.data) / (cfg.split + '.jsonl')} has a scene map under "
                                   f"{Path(cfg.data) / 'maps'}; build maps with `llm3d data generate --maps`") from None
            batch = make_batch(model, items)
            if batch is not None:
                micro.append(batch)
        t0 = time.perf_counter()
        loss = train_step(net, micro, optimizer, scheduler, cfg.grad_clip, amp)
        step_times.append(time.perf_counter() - t0)
        if rank == 0:
            history.append({"step": step + 1, "loss": round(loss, 5)})
            writer.add_scalar("train/loss", loss, step + 1)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step + 1)
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
                recent = [h["loss"] for h in history[-cfg.log_every:]]
                log.info("step %d loss %.4f (%.2f s/step)", step + 1, sum(recent) / len(recent),
                         sum(step_times[-cfg.log_every:]) / len(step_times[-cfg.log_every:]))
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.max_steps:
                start = {"init_from": cfg.init_from, "init_skip": cfg.init_skip} if cfg.init_from else None
                save_checkpoint(model, optimizer, scheduler, step + 1, out, history, start)
    if writer is not None:
        writer.close()
    return {"steps": cfg.max_steps, "history": history, "seconds": time.perf_counter() - t_start,
            "step_seconds_median": float(np.median(step_times)) if step_times else 0.0,
            "parameters": model.parameter_counts(), "out": str(out)}


def load_train_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a YAML file: `train:` holds TrainConfig fields and the model config comes
    from `llm3d_reasoner: ros__parameters: model:` (or a top-level `model:`), then `overrides`."""
    from llm3d_core.config import DEFAULT_CONFIG, config_from_dict, load_yaml, node_parameters

    data = load_yaml(path or DEFAULT_CONFIG)
    if path and Path(path).resolve() != DEFAULT_CONFIG.resolve():
        base = node_parameters(load_yaml(DEFAULT_CONFIG), "llm3d_reasoner").get("model", {}) or {}
    else:
        base = {}
    model = {**base, **(node_parameters(data, "llm3d_reasoner").get("model", {}) or {}), **(data.get("model") or {})}
    params = {**(data.get("train") or {}), "model": model}
    cfg = config_from_dict(TrainConfig, params, "train")
    model_over = overrides.pop("model", {})
    if model_over:
        cfg = replace(cfg, model=replace(cfg.model, **model_over))
    return replace(cfg, **overrides)
