"""Greedy decoding of the 3D-LLM with a KV cache over the scene prefix, the location-token grammar,
and the object pointer's copy of a map object's box (3D-LLM, Hong et al. 2023, section 3.4:
location tokens; the pointer: model/object_pointer.py).

`GenerationMixin` is a mixin of `Llm3dModel` (as transformers' GenerationMixin is of its models):
it uses the model's config, decoder, embeddings (`embed_ids`, `logits`), vocabulary (`vocab`,
`eot_tok`, `tokenizer`), pointer and `question_words`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llm3d_core.model.object_pointer import box_bins, object_inputs

if TYPE_CHECKING:
    from llm3d_core.model.modeling_llm3d import Sample


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    seconds: float
    pointed: int = -1  # object slot the location tokens were copied from (object pointer), -1 = generated
    pointer_prob: float = 0.0  # the pointer's probability of that slot
    pointer_logits: torch.Tensor | None = None  # (P,) the pointer's logits over the object slots, on the CPU
    # With the absence head (pointer.absence): P(no map object matches) (model/absence.py).
    absent_prob: float | None = None
    # What the pointer read: the LLM's query state (1, H) and object states (1, P, H) (the absence
    # stage learns from them as decoded at inference).
    pointer_inputs: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class PrefixCache:
    """The LLM's keys and values over [before | scene prefix], computed once per session.

    3D-LLM (sec. 3) puts the scene in front of every prompt; the chat template puts the same system
    text before it (prompting.render_prompt), so every question of a session starts with the same
    tokens and their keys and values (causal attention) do not depend on the question. Each answer
    then runs the LLM over its own words only (a 13-token question instead of the 25 + P-token
    prompt it extends)."""

    before: tuple[int, ...]  # the model ids before the scene prefix
    past: Any  # transformers Cache over the nb + P positions; copied before each answer extends it
    mask: torch.Tensor  # (1, nb + P) attention mask of those positions
    object_states: torch.Tensor  # (1, P, H) the LLM's last hidden states over the scene prefix (the pointer reads them)


class GenerationMixin:
    """prefix_cache, generate and the pointer/grammar steps of decoding."""

    @torch.no_grad()
    def prefix_cache(self, before: list[int], prefix: torch.Tensor, prefix_mask: torch.Tensor) -> PrefixCache:
        """Runs the LLM over [before | scene prefix] (1, nb + P) once; see PrefixCache."""
        ids = torch.tensor([before], dtype=torch.long, device=self.device)
        tok = self.embed_ids(ids)  # (1, nb, H)
        embeds = torch.cat([tok, prefix.to(tok.dtype)], dim=1)  # (1, nb + P, H)
        mask = torch.cat([torch.ones(1, len(before), dtype=torch.long, device=self.device),
                          prefix_mask.long()], dim=1)  # (1, nb + P)
        out = self.decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        return PrefixCache(tuple(before), out.past_key_values, mask, out.last_hidden_state[:, len(before):])

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, sample: Sample, task: str = "qa",
                 max_new_tokens: int | None = None, objects: dict[str, torch.Tensor] | None = None,
                 cache: PrefixCache | None = None) -> Generation:
        """Greedy decoding with a KV cache, for one prompt; `prefix` (1, P, H) comes from encode_scene.

        cache: the session's PrefixCache for this prefix (computed here when None or made for other
        `before` ids); the answer always runs as [before | prefix] then [after], so it does not depend
        on whether the cache was reused.

        With config.constrain_locations, the location-token grammar is enforced while decoding:
        ground answers end in exactly six location tokens (max bin >= min bin per axis), navigate
        answers are exactly three, and other tasks cannot emit location tokens.
        With the object pointer and `objects` (the collated scene: object_boxes, object_mask,
        bounds), a ground answer's six location tokens are the box of the object it points at.
        """
        t0 = time.perf_counter()
        limit = max_new_tokens or self.config.max_new_tokens
        if cache is None or cache.before != tuple(sample.before):
            cache = self.prefix_cache(sample.before, prefix, prefix_mask)
        plen, object_states = prefix.shape[1], cache.object_states  # (1, P, H)
        mask = torch.cat([cache.mask, cache.mask.new_ones(1, len(sample.after))], dim=1)  # (1, T)
        after = self.embed_ids(torch.tensor([sample.after], dtype=torch.long, device=self.device))  # (1, La, H)
        out = self.decoder()(inputs_embeds=after, attention_mask=mask, past_key_values=copy.deepcopy(cache.past),
                             use_cache=True)
        past, h = out.past_key_values, out.last_hidden_state[:, -1]  # (1, H)
        generated: list[int] = []
        use_pointer = (task == "ground" and self.pointer is not None and self.use_pointer and objects is not None
                       and bool(objects["object_mask"][:, :plen].any()))
        for _ in range(limit):
            logits = self.logits(h)[0].float()  # (V + 256,)
            if self.config.constrain_locations:
                self._constrain(logits, generated, task, limit)
            nxt = int(logits.argmax())
            if use_pointer and nxt >= self.vocab and not any(i >= self.vocab for i in generated):
                gen = self._point(h, object_states, objects, plen, sample.ground_question)
                bins = box_bins(objects["object_boxes"][0, gen.pointed: gen.pointed + 1], objects["bounds"][0])[0]
                generated += [self.vocab + int(b) for b in bins]  # the six location tokens of the chosen box
                gen.text = self.tokenizer.decode(self.to_tokenizer_ids(generated), skip_special_tokens=True).strip()
                gen.token_ids, gen.seconds = generated, time.perf_counter() - t0
                return gen
            if nxt == self.eot_tok:
                break
            generated.append(nxt)
            mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)  # (1, T+1)
            step = self.embed_ids(torch.tensor([[nxt]], device=self.device))  # (1, 1, H)
            out = self.decoder()(inputs_embeds=step, attention_mask=mask, past_key_values=past, use_cache=True)
            past, h = out.past_key_values, out.last_hidden_state[:, -1]
        text = self.tokenizer.decode(self.to_tokenizer_ids(generated), skip_special_tokens=True)
        return Generation(text.strip(), generated, time.perf_counter() - t0)

    def _point(self, h: torch.Tensor, object_states: torch.Tensor, objects: dict[str, torch.Tensor],
               plen: int, question: str) -> Generation:
        """The object the pointer picks for query state h (1, H): slot, probability, logits (P,) on the
        CPU, and with the absence head P(absent) and its inputs (text and tokens are filled by the caller)."""
        inputs = object_inputs(objects, plen, device=self.device)
        if self.config.pointer.question_tokens:
            inputs.update(self.question_words([question]))
        logits = self.pointer(h, object_states, inputs)  # (1, P)
        probs = logits[0].softmax(-1)
        slot = int(probs.argmax())
        gen = Generation("", [], 0.0, slot, float(probs[slot]), logits[0].detach().float().cpu(),
                         pointer_inputs=(h.detach(), object_states.detach()))
        if self.pointer.absence is not None:
            from llm3d_core.model.absence import map_scores

            scores = map_scores(inputs["object_text"], question, self.config.text_dim)  # (1, P)
            gen.absent_prob = float(self.pointer.absence.probability(h, object_states, inputs, scores)[0])
        return gen

    def _constrain(self, logits: torch.Tensor, generated: list[int], task: str, limit: int) -> None:
        """Masks logits (V + 256,) in place so that the answer follows the task's location grammar."""
        v, neg = self.vocab, float("-inf")
        locs = [i - v for i in generated if i >= v]
        need = {"ground": 6, "navigate": 3}.get(task, 0)
        if need == 0:
            logits[v:] = neg
            return
        if len(locs) >= need:  # grammar complete: end the turn
            keep = logits[self.eot_tok].clone()
            logits[:] = neg
            logits[self.eot_tok] = keep
            return
        force = bool(locs) or task == "navigate" or len(generated) >= limit - need
        if force:
            logits[:v] = neg
            if len(locs) >= 3:  # max corner: bin >= the min corner's bin on that axis
                logits[v: v + locs[len(locs) - 3]] = neg
        else:
            logits[self.eot_tok] = neg  # a grounding answer must carry its box
