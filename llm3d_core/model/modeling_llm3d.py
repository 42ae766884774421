"""The 3D-LLM: scene encoder + projector + (frozen) LLM, with location tokens (decoding: generation.py).

3D-LLM (Hong et al. 2023, section 3): 3D features enter a pretrained LLM as a prefix of input
embeddings produced by a perceiver over the scene's points (or, Chat-Scene style, one token per
object); the LLM stays frozen and location tokens are added to its vocabulary (section 3.4).

The 256 location tokens live in a separate small embedding (`loc_embed`) and output head
(`loc_head`), so only their rows train while the LLM's own vocabulary stays frozen. In model id
space, ids < V are the LLM's, ids V..V+255 are `<loc_0..255>` (V = the LLM's embedding rows);
the tokenizer's ids for them are mapped onto that range.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from llm3d_core.model.checkpoint_io import (WEIGHTS_NAME, CheckpointError, load_trainable_into, read_checkpoint_config,
                                            save_checkpoint)
from llm3d_core.model.configuration_llm3d import TASKS, Llm3dConfig
from llm3d_core.model.generation import GenerationMixin
from llm3d_core.model.location_tokens import NUM_BINS, add_location_tokens
from llm3d_core.model.mask_head import MaskGrounding, MaskGroundingHead
from llm3d_core.model.object_pointer import ObjectPointer, object_inputs, pointer_targets
from llm3d_core.model.prompting import end_of_turn_id, render_prompt, task_instruction
from llm3d_core.model.scene import SceneInput, collate_scenes
from llm3d_core.model.scene_encoder import build_scene_encoder

if TYPE_CHECKING:
    from llm3d_core.model.session import Llm3dSession

IGNORE = -100


class InputTooLongError(ValueError):
    """The prompt (scene prefix + history + instruction) exceeds config.max_input_tokens."""


@dataclass
class Sample:
    """One tokenised example: prompt ids around the scene prefix, and the answer ids (training)."""

    before: list[int]
    after: list[int]
    target: list[int] = field(default_factory=list)
    # Mask-head training (grounding_head "mask"): the referring expression and its target boxes (T, 6).
    ground_question: str = ""
    ground_boxes: torch.Tensor | None = None
    # Object-pointer training (config.object_pointer): the box (6,) the answer's location tokens point at.
    pointer_box: torch.Tensor | None = None


class Llm3dModel(GenerationMixin, nn.Module):
    """Scene encoder + projector + LLM. Build with `Llm3dModel.build(config)` or inject (llm, tokenizer)."""

    def __init__(self, config: Llm3dConfig, llm: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        emb = llm.get_input_embeddings().weight  # (V, H)
        vocab, hidden = int(emb.shape[0]), int(emb.shape[1])
        for name, have in (("llm_hidden_size", hidden), ("llm_vocab_size", vocab)):
            want = getattr(config, name)
            if want and want != have:
                raise CheckpointError(f"config {name}={want} but the LLM ({config.llm_path or 'default SmolLM2'}) "
                                      f"has {have}: the checkpoint was trained with another LLM")
        self.config = replace(config, llm_hidden_size=hidden, llm_vocab_size=vocab)
        self.tokenizer = tokenizer
        tok_loc = add_location_tokens(tokenizer)
        if tok_loc[0] > vocab:
            raise ValueError(f"tokenizer has {tok_loc[0]} base tokens but the LLM only {vocab} embeddings")
        self.tok_loc_start = tok_loc[0]
        self.vocab = vocab
        self.eot_tok = end_of_turn_id(tokenizer)
        for p in llm.parameters():
            p.requires_grad_(not config.freeze_llm)
        if config.lora:
            from peft import LoraConfig, get_peft_model

            llm = get_peft_model(llm, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                 lora_dropout=config.lora_dropout,
                                                 target_modules=list(config.lora_targets)))
        self.llm = llm
        torch.manual_seed(config.seed)
        self.scene_encoder = build_scene_encoder(self.config, hidden)
        # LLMs that scale their token embeddings inside the embedding layer (Gemma: x sqrt(H)) get
        # the scene prefix and location tokens at the same scale; 1.0 for SmolLM2 and Llama.
        self.embed_scale = float(getattr(llm.get_input_embeddings(), "scalar_embed_scale", 1.0))
        # New vocabulary rows (3D-LLM sec. 3.4), initialised near the LLM's mean embedding.
        mean, std = emb.detach().float().mean(0), emb.detach().float().std()
        self.loc_embed = nn.Embedding(NUM_BINS, hidden)
        self.loc_head = nn.Linear(hidden, NUM_BINS, bias=False)
        with torch.no_grad():
            init = mean[None] + torch.randn(NUM_BINS, hidden) * std
            self.loc_embed.weight.copy_(init)
            self.loc_head.weight.copy_(init)
        # UniVLG's mask head exists only when enabled, so checkpoints without it load unchanged;
        # it is built after every older part so their initialisation (same seed) is unchanged too.
        self.mask_head = MaskGroundingHead(self.config, hidden) if config.grounding_head == "mask" else None
        self.pointer = ObjectPointer(self.config, hidden) if config.object_pointer else None
        self.use_pointer = True  # False: ground answers generate their location tokens (an ablation switch)
        self.to(emb.device)

    # ------------------------------------------------------------------ construction and parts
    @classmethod
    def build(cls, config: Llm3dConfig, device: str | None = None) -> "Llm3dModel":
        """Loads the configured LLM (converting SmolLM2 on first use) and builds the model on `device`."""
        from llm3d_core.device import resolve_device
        from llm3d_core.model.llm import load_llm, resolve_llm_dtype

        dev = resolve_device(device or config.device)
        # A trained LLM keeps float32 weights; LoRA adapters are added in float32 over a bf16 frozen base
        # (peft upcasts adapter weights and casts the input to them), so they stay float32 too.
        dtype = resolve_llm_dtype(config.llm_dtype if config.freeze_llm else "float32", dev)
        llm, tokenizer = load_llm(config.llm_path, config.llm_cache or None, dtype=dtype, device=dev)
        return cls(config, llm, tokenizer).to(dev)

    @property
    def device(self) -> torch.device:
        return self.loc_embed.weight.device

    def base_llm(self) -> nn.Module:
        """The causal LM (inside the peft wrapper when LoRA is on; adapters are injected in place)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def decoder(self) -> nn.Module:
        return self.base_llm().get_decoder()

    def parameter_counts(self) -> dict[str, int]:
        seen: set[int] = set()
        counts = {"trainable": 0, "frozen": 0}
        for p in self.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            counts["trainable" if p.requires_grad else "frozen"] += p.numel()
        return counts

    # ------------------------------------------------------------------ ids and embeddings
    def to_model_ids(self, tok_ids: list[int]) -> list[int]:
        s, v = self.tok_loc_start, self.vocab
        return [i - s + v if s <= i < s + NUM_BINS else i for i in tok_ids]

    def to_tokenizer_ids(self, model_ids: list[int]) -> list[int]:
        s, v = self.tok_loc_start, self.vocab
        return [i - v + s if i >= v else i for i in model_ids]

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Model-space ids (B, T) -> input embeddings (B, T, H); location ids use `loc_embed`."""
        is_loc = ids >= self.vocab  # (B, T)
        base = self.llm.get_input_embeddings()(ids.clamp(max=self.vocab - 1))  # (B, T, H)
        loc = self.loc_embed((ids - self.vocab).clamp(min=0, max=NUM_BINS - 1)) * self.embed_scale  # (B, T, H)
        return torch.where(is_loc[..., None], loc.to(base.dtype), base)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, H) -> (…, V + 256): the LLM's head for its vocabulary, `loc_head` for location tokens."""
        head = self.base_llm().get_output_embeddings()
        return torch.cat([head(hidden), self.loc_head(hidden.to(self.loc_head.weight.dtype)).to(hidden.dtype)], dim=-1)

    # ------------------------------------------------------------------ scenes and prompts
    def encode_scene(self, scene: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched scene tensors (see scene.collate_scenes) -> prefix (B, P, H) and mask (B, P)."""
        c = self.config
        d = scene["features"].shape[-1]
        if d != c.feature_dim:
            raise ValueError(f"scene features have D={d} but the model expects feature_dim={c.feature_dim}; "
                             "use a map built with the same encoder, or retrain with feature_dim={d}")
        scene = {k: v.to(self.device) for k, v in scene.items()}
        prefix, mask = self.scene_encoder(scene)  # (B, P, H), (B, P)
        prefix = prefix * self.embed_scale
        # Object slots are padded at the end up to max_objects; a column no scene of the batch uses
        # would only cost LLM compute, so the prefix stops at the last slot in use.
        used = torch.nonzero(mask.any(dim=0)).flatten()
        keep = int(used.max()) + 1 if used.numel() else 1
        return prefix[:, :keep], mask[:, :keep]

    def collate_scenes(self, scenes: list[SceneInput]) -> dict[str, torch.Tensor]:
        return collate_scenes(scenes, self.config.max_objects)

    def prefix_length(self) -> int:
        return self.config.num_queries if self.config.scene_encoder == "points" else self.config.max_objects

    def make_sample(self, task: str, question: str, history: list[tuple[str, str]] | None = None,
                    target: str | None = None) -> Sample:
        """Tokenises one example; raises InputTooLongError when the prompt is longer than allowed."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        ids = render_prompt(self.tokenizer, self.config.system_prompt, task_instruction(task, question), history)
        before, after = self.to_model_ids(ids.before_scene), self.to_model_ids(ids.after_scene)
        length = len(before) + self.prefix_length() + len(after)
        if length > self.config.max_input_tokens:
            raise InputTooLongError(f"the prompt is {length} tokens (scene prefix {self.prefix_length()}, "
                                    f"text {length - self.prefix_length()}) but max_input_tokens is "
                                    f"{self.config.max_input_tokens}; shorten the question or the dialog history")
        tgt: list[int] = []
        if target is not None:
            tgt = self.to_model_ids(self.tokenizer(target, add_special_tokens=False)["input_ids"]) + [self.eot_tok]
            tgt = tgt[: self.config.max_new_tokens + 1]
        sample = Sample(before, after, tgt)
        if task == "ground":
            sample.ground_question = question  # the referring expression, for the pointer and the mask head
        return sample

    def assemble(self, samples: list[Sample], prefix: torch.Tensor, prefix_mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[before | scene prefix | after | target], right-padded.

        Returns inputs_embeds (B, T, H), attention_mask (B, T) and labels (B, T) (IGNORE off-target).
        """
        rows, masks, labels = [], [], []
        for i, s in enumerate(samples):
            ids = torch.tensor(s.before + s.after + s.target, dtype=torch.long, device=self.device)
            tok = self.embed_ids(ids[None])[0]  # (L, H)
            nb = len(s.before)
            rows.append(torch.cat([tok[:nb], prefix[i].to(tok.dtype), tok[nb:]], dim=0))  # (T_i, H)
            masks.append(torch.cat([torch.ones(nb, dtype=torch.bool, device=self.device), prefix_mask[i],
                                    torch.ones(len(ids) - nb, dtype=torch.bool, device=self.device)]))
            lab = torch.full((rows[-1].shape[0],), IGNORE, dtype=torch.long, device=self.device)
            if s.target:
                lab[-len(s.target):] = torch.tensor(s.target, device=self.device)
            labels.append(lab)
        embeds = nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, T, H)
        mask = nn.utils.rnn.pad_sequence(masks, batch_first=True, padding_value=False)  # (B, T)
        lab = nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=IGNORE)  # (B, T)
        return embeds, mask.long(), lab

    # ------------------------------------------------------------------ training
    def hidden_states(self, scene: dict[str, torch.Tensor], samples: list[Sample]
                      ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The LLM's last hidden states (B, T, H) over [before | scene prefix | after | target], the
        labels (B, T) and the prefix length P."""
        prefix, prefix_mask = self.encode_scene(scene)  # (B, P, H), (B, P)
        embeds, mask, labels = self.assemble(samples, prefix, prefix_mask)
        hidden = self.decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state  # (B, T, H)
        return hidden, labels, prefix.shape[1]

    def forward(self, scene: dict[str, torch.Tensor], samples: list[Sample]) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens (the prompt and scene are not scored),
        plus the object pointer's and the mask head's losses where those are enabled."""
        hidden, labels, prefix_len = self.hidden_states(scene, samples)  # (B, T, H), (B, T)
        scored = labels[:, 1:] != IGNORE  # (B, T-1): position t predicts token t+1
        h = hidden[:, :-1][scored]  # (M, H): only answer positions reach the 49k-way head
        loss = F.cross_entropy(self.logits(h).float(), labels[:, 1:][scored])
        if self.pointer is not None:
            ptr_loss = self.pointer_loss(hidden, scene, samples, prefix_len)
            if ptr_loss is not None:
                loss = loss + self.config.pointer.loss_weight * ptr_loss
            elif torch.distributed.is_available() and torch.distributed.is_initialized():
                loss = loss + 0.0 * sum(p.sum() for p in self.pointer.parameters())
        if self.mask_head is None:
            return loss
        rows = [i for i, s in enumerate(samples) if s.ground_boxes is not None]
        if rows:
            sub = {k: v[rows] for k, v in scene.items()}
            mask_loss = self.mask_grounding_loss(sub, [samples[i].ground_question for i in rows],
                                                 [samples[i].ground_boxes for i in rows])
            return loss + self.config.mask_head.loss_weight * mask_loss
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # DDP needs a gradient for every parameter on every rank, also when a batch has no ground record.
            loss = loss + 0.0 * sum(p.sum() for p in self.mask_head.parameters())
        return loss

    # ------------------------------------------------------------------ object pointer
    def pointer_inputs(self, hidden: torch.Tensor, scene: dict[str, torch.Tensor], samples: list[Sample],
                       prefix_len: int) -> tuple[list[int], dict[str, torch.Tensor]]:
        """What the pointer sees for the samples whose target has location tokens and a pointer box.

        hidden (B, T, H) from hidden_states(). Returns the rows used and a dict of tensors over
        them: query (R, H) = the state that predicts the first location token; objects (R, P, H)
        = the states at the object tokens; the objects' own tensors (object_inputs: object_boxes
        (R, P, 6), object_mask (R, P), bounds (R, 2, 3), …); target (R,) = slot of the pointer box
        (-1: no proposal matches it).
        """
        rows, query_pos = [], []
        for i, s in enumerate(samples):
            first = next((j for j, t in enumerate(s.target) if t >= self.vocab), None)
            if s.pointer_box is None or first is None:
                continue
            rows.append(i)
            query_pos.append(len(s.before) + prefix_len + len(s.after) + first - 1)
        if not rows:
            return [], {}
        idx = torch.tensor(rows, device=hidden.device)
        starts = torch.tensor([len(samples[i].before) for i in rows], device=hidden.device)  # (R,)
        gather = starts[:, None] + torch.arange(prefix_len, device=hidden.device)[None]  # (R, P)
        objects = hidden[idx[:, None], gather]  # (R, P, H)
        query = hidden[idx, torch.tensor(query_pos, device=hidden.device)]  # (R, H)
        inputs = object_inputs(scene, prefix_len, rows, hidden.device)
        if self.config.pointer.question_tokens:
            inputs.update(self.question_words([samples[i].ground_question for i in rows]))
        target = pointer_targets(inputs["object_boxes"], inputs["object_mask"], [samples[i].pointer_box for i in rows],
                                 self.config.pointer.match_iou)
        return rows, {"query": query, "objects": objects, "target": target, **inputs}

    def question_ids(self, questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-space token ids (B, L) of referring expressions (at most pointer.max_question_tokens;
        an empty question is one end-of-turn token) and their padding (B, L), True = padding."""
        limit = self.config.pointer.max_question_tokens
        ids = [self.to_model_ids(self.tokenizer(q, add_special_tokens=False)["input_ids"])[:limit] or [self.eot_tok]
               for q in questions]
        padded = nn.utils.rnn.pad_sequence([torch.tensor(i) for i in ids], batch_first=True)  # (B, L)
        lengths = torch.tensor([len(i) for i in ids])
        return padded, torch.arange(padded.shape[1])[None] >= lengths[:, None]

    def question_words(self, questions: list[str], ids: tuple[torch.Tensor, torch.Tensor] | None = None
                       ) -> dict[str, torch.Tensor]:
        """The pointer's word inputs: the LLM's input embeddings of the questions (B, L, H), padding (B, L)."""
        padded, pad = ids if ids is not None else self.question_ids(questions)
        with torch.no_grad():  # the LLM's embeddings are frozen
            words = self.embed_ids(padded.to(self.device))
        return {"words": words, "words_pad": pad.to(self.device)}

    def pointer_loss(self, hidden: torch.Tensor, scene: dict[str, torch.Tensor], samples: list[Sample],
                     prefix_len: int) -> torch.Tensor | None:
        """Cross-entropy of the pointer over object slots (None when no sample has a matched target)."""
        rows, inp = self.pointer_inputs(hidden, scene, samples, prefix_len)
        if not rows or not bool((inp["target"] >= 0).any()):
            return None
        keep = inp["target"] >= 0
        sub = {k: v[keep] for k, v in inp.items()}
        logits = self.pointer(sub["query"], sub["objects"], sub)  # (R', P)
        return F.cross_entropy(logits, sub["target"])

    # ------------------------------------------------------------------ mask grounding (UniVLG sec. 3)
    def question_states(self, questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The questions' token states (B, L, H) and padding (B, L) (True = padding) for the mask head:
        the LLM's last hidden states (mask_head.text_source "hidden") or its input embeddings."""
        limit = self.config.max_input_tokens
        ids = [self.to_model_ids(self.tokenizer(q, add_special_tokens=False)["input_ids"])[:limit] for q in questions]
        if not ids or any(not i for i in ids):
            raise ValueError(f"mask grounding needs non-empty questions, got {questions!r}")
        rows = [torch.tensor(i, device=self.device) for i in ids]
        padded = nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, L)
        valid = nn.utils.rnn.pad_sequence([torch.ones(len(i), dtype=torch.bool, device=self.device) for i in ids],
                                          batch_first=True)  # (B, L)
        # A frozen LLM gives no gradient: skip its autograd graph (LoRA or an unfrozen LLM keep it).
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in self.llm.parameters())):
            states = self.embed_ids(padded)  # (B, L, H)
            if self.config.mask_head.text_source == "hidden":
                states = self.decoder()(inputs_embeds=states, attention_mask=valid.long(),
                                        use_cache=False).last_hidden_state  # (B, L, H)
        return states, ~valid

    def _require_mask_head(self) -> MaskGroundingHead:
        if self.mask_head is None:
            raise RuntimeError("this model has no mask head (grounding_head is "
                               f"{self.config.grounding_head!r}); use a checkpoint trained with grounding_head: mask")
        return self.mask_head

    def mask_grounding_loss(self, scene_batch: dict[str, torch.Tensor], questions: list[str],
                            target_boxes: list[torch.Tensor]) -> torch.Tensor:
        """UniVLG's grounding loss (mask BCE + Dice, Hungarian matching, score, box L1 + GIoU) for a batch.

        scene_batch: collated scenes (B, …), or one scene (1, …) all questions are about; questions: B
        referring expressions; target_boxes[b] (T_b, 6).
        """
        head = self._require_mask_head()
        if head.needs_prior:
            raise ValueError("mask_head.query_init pointer trains in train.stage mask, on the trained pointer's "
                             "logits (training/mask.py), not jointly with the LLM")
        if not len(questions) == len(target_boxes) or scene_batch["points"].shape[0] not in (1, len(questions)):
            raise ValueError(f"{scene_batch['points'].shape[0]} scenes, {len(questions)} questions and "
                             f"{len(target_boxes)} target box sets must match (or one scene for all questions)")
        scene_batch = {k: v.to(self.device) for k, v in scene_batch.items()}
        text, pad = self.question_states(questions)  # (B, L, H), (B, L)
        return head.losses(head(scene_batch, text, pad), scene_batch, list(target_boxes))["total"]

    @torch.no_grad()
    def ground_mask(self, scene: SceneInput, question: str, prior: torch.Tensor | None = None) -> MaskGrounding:
        """Grounds `question` in `scene` by decoding a mask over its points (UniVLG sec. 3).

        prior (P,): the object pointer's logits over the scene's object slots (Answer.object_logits
        of the same question's ground answer), needed by a head with query_init pointer; such a head
        finds nothing in a scene without objects.
        Returns (box (6,) in the scene's frame or None when no query predicts a non-empty mask,
        mask (N,) bool over scene.points, score).
        """
        head = self._require_mask_head()
        batch = {k: v.to(self.device) for k, v in self.collate_scenes([scene]).items()}
        if head.needs_prior:
            if not bool(batch["object_mask"].any()):
                return MaskGrounding(None, np.zeros(batch["points"].shape[1], dtype=bool), 0.0)
            if prior is None:
                raise ValueError("this checkpoint's mask head starts from the object pointer's choice: pass the "
                                 "ground answer's object_logits as prior")
            prior = prior.reshape(1, -1)  # (1, P)
        text, pad = self.question_states([question])  # (1, L, H), (1, L)
        logits, scores = head(batch, text, pad, prior)[-1]  # (1, Q, N), (1, Q)
        return head.decode(batch["points"][0], logits[0], scores[0])

    # ------------------------------------------------------------------ inference (greedy decoding: generation.py)
    def session(self, scene: SceneInput, scene_id: str = "") -> "Llm3dSession":
        """A conversation about one scene (model/session.py); its prefix is encoded once here."""
        from llm3d_core.model.session import Llm3dSession

        return Llm3dSession(self, scene, scene_id)

    # ------------------------------------------------------------------ checkpoints
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k in names}

    def save_pretrained(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Writes model.safetensors (the trainable part only) and config.json, atomically per file."""
        return save_checkpoint(self.trainable_state_dict(), self.config.to_dict(), folder, extra)

    @classmethod
    def from_pretrained(cls, folder: str | Path, llm: nn.Module | None = None, tokenizer: Any = None,
                        device: str | None = None, overrides: dict[str, Any] | None = None) -> "Llm3dModel":
        """Loads a checkpoint; the LLM comes from `llm`/`tokenizer` when given, else from the config.

        Raises CheckpointError naming the file for a missing/corrupt file, a bad config, missing or
        unexpected tensors, wrong shapes, or a different LLM than the one it was trained with.
        """
        config = read_checkpoint_config(folder, overrides)
        if llm is None:
            model = cls.build(config, device)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer together with the llm")
            model = cls(config, llm, tokenizer)
            if device:
                from llm3d_core.device import resolve_device

                model.to(resolve_device(device))
        model.load_trainable(Path(folder) / WEIGHTS_NAME)
        model.eval()
        return model

    def load_trainable(self, weights: Path, missing_ok: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> None:
        """Loads the trainable tensors (checkpoint_io.load_trainable_into)."""
        load_trainable_into(self, weights, missing_ok, skip)
