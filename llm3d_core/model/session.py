"""A conversation with the 3D-LLM about one scene: the scene prefix encoded once, turns answered
over it (3D-LLM, Hong et al. 2023, sec. 4: 3D-assisted dialog), and what each answer carries."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm3d_core.model.location_tokens import decode_box, decode_point
from llm3d_core.model.generation import PrefixCache
from llm3d_core.model.scene import SceneInput

if TYPE_CHECKING:
    from llm3d_core.model.modeling_llm3d import Llm3dModel


@dataclass
class Answer:
    task: str
    text: str  # raw answer text (location tokens included)
    label: str = ""  # ground: the category text before the box
    box: np.ndarray | None = None  # ground: (6,) min xyz, max xyz in the map frame
    point: np.ndarray | None = None  # navigate: (3,) goal in the map frame
    seconds: float = 0.0
    tokens: int = 0
    object_index: int = -1  # ground with the object pointer: index of the scene object whose box was copied
    object_prob: float = 0.0  # and the pointer's probability of it
    object_logits: torch.Tensor | None = None  # (P,) the pointer's logits over the object slots (mask-head prior)
    absent_prob: float | None = None  # ground with the absence head: P(nothing in the scene matches)
    absent: bool = False  # and absent_prob >= pointer.absent_threshold: the answer is "not here"


class Llm3dSession:
    """One scene's conversation: the scene prefix is encoded once and reused for every turn."""

    def __init__(self, model: "Llm3dModel", scene: SceneInput, scene_id: str = "") -> None:
        self.model = model
        self.scene = scene
        self.scene_id = scene_id
        self.bounds = scene.scene_bounds
        self.batch = model.collate_scenes([scene])
        with torch.no_grad():
            self.prefix, self.prefix_mask = model.encode_scene(self.batch)  # (1, P, H), (1, P)
        self.history: list[tuple[str, str]] = []
        # PrefixCache per `before` ids, shared with forks (a dict held by reference); prompts of
        # every task share one system text, so it holds one or two entries.
        self._caches: dict[tuple[int, ...], PrefixCache] = {}

    def fork(self) -> "Llm3dSession":
        """A new conversation about the same scene: it shares this session's encoded prefix and its
        PrefixCache (both read-only: every answer runs on a copy of the cache), not its history, so a
        fresh question costs no scene encoding and no pass over [before | prefix]."""
        new = copy.copy(self)
        new.history = []
        return new

    def prefix_cache(self, before: list[int]) -> PrefixCache:
        """The session's PrefixCache for `before` (computed on first use, shared with its forks)."""
        key = tuple(before)
        cache = self._caches.get(key)
        if cache is None:
            if len(self._caches) >= 4:  # bounded: `before` is a system text, not user input
                self._caches.clear()
            cache = self._caches[key] = self.model.prefix_cache(before, self.prefix, self.prefix_mask)
        return cache

    def ask(self, question: str, task: str = "qa", remember: bool | None = None,
            max_new_tokens: int | None = None) -> Answer:
        """Answers one instruction; ground/navigate answers carry the decoded box/point.

        Raises LocationDecodeError when a ground/navigate answer breaks the location grammar,
        InputTooLongError when the prompt (with history) is too long. Dialog turns are remembered.
        """
        history = self.history if task == "dialog" else []
        sample = self.model.make_sample(task, question, history)
        t0 = time.perf_counter()
        gen = self.model.generate(self.prefix, self.prefix_mask, sample, task, max_new_tokens, self.batch,
                                  self.prefix_cache(sample.before))
        gen.seconds = time.perf_counter() - t0  # the first answer's includes computing the prefix cache
        answer = Answer(task, gen.text, seconds=gen.seconds, tokens=len(gen.token_ids), object_index=gen.pointed,
                        object_prob=gen.pointer_prob, object_logits=gen.pointer_logits, absent_prob=gen.absent_prob,
                        absent=gen.absent_prob is not None
                        and gen.absent_prob >= self.model.config.pointer.absent_threshold)
        if task == "ground":
            answer.label, answer.box = decode_box(gen.text, self.bounds)
        elif task == "navigate":
            answer.point = decode_point(gen.text, self.bounds)
        if remember if remember is not None else task == "dialog":
            self.history.append((question, gen.text))
        return answer

    def reset(self) -> None:
        self.history.clear()
