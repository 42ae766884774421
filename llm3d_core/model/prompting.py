"""Prompt format: the chat template with the scene prefix spliced into the first user turn.

3D-LLM (section 3.4) feeds the 3D features as a prefix before the text instruction. With an
instruction-tuned LLM we keep its chat template: system prompt, then the first user turn starts
with the scene tokens, then (for dialog) earlier turns, then the current instruction; the model
answers in the assistant turn. The template is rendered as text around a sentinel, and the text
on either side is tokenised separately, so the sentinel itself is never tokenised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SCENE_SENTINEL = "\u0000SCENE\u0000"
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Gemma's turn format (<start_of_turn>user / model ... <end_of_turn>), for Gemma tokenizers that ship
# without a chat template (the base GGUF): it has no system role, so the system text opens the first
# user turn, as Gemma's own template does.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<start_of_turn>user\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}{% if loop.index0 != 1 %}<start_of_turn>user\n{% endif %}"
    "{{ m['content'] }}<end_of_turn>\n"
    "{% else %}<start_of_turn>model\n{{ m['content'] }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def default_template(tokenizer: "PreTrainedTokenizerBase") -> str:
    """The tokenizer's chat template, else the turn format its special tokens imply (Gemma's or ChatML)."""
    own = getattr(tokenizer, "chat_template", None)
    if own:
        return own
    return GEMMA_TEMPLATE if "<start_of_turn>" in tokenizer.get_vocab() else CHATML_TEMPLATE


def task_instruction(task: str, question: str) -> str:
    """The user text for one task; the wording tells the model which answer format to use."""
    q = (question or "").strip()
    if task == "caption":
        return q or "Describe the scene."
    if task in ("qa", "dialog"):
        return q
    if task == "plan":
        return f"Plan: {q}\nAnswer with numbered steps that name the objects to use."
    if task == "ground":
        return f"Locate: {q}\nAnswer with the object's category and its box as six location tokens."
    if task == "navigate":
        return f"Navigate: {q}\nAnswer with the goal point as three location tokens."
    raise ValueError(f"unknown task {task!r}")


@dataclass
class PromptIds:
    before_scene: list[int]  # system prompt and the start of the first user turn
    after_scene: list[int]  # history, instruction and the assistant header


def render_prompt(tokenizer: "PreTrainedTokenizerBase", system: str, instruction: str,
                  history: list[tuple[str, str]] | None = None) -> PromptIds:
    """Token ids before and after the scene prefix for `instruction` after `history` turns."""
    history = history or []
    turns = [(q, a) for q, a in history] + [(instruction, None)]
    messages = [{"role": "system", "content": system}]
    for i, (q, a) in enumerate(turns):
        messages.append({"role": "user", "content": (f"Scene: {SCENE_SENTINEL}\n" if i == 0 else "") + q})
        if a is not None:
            messages.append({"role": "assistant", "content": a})
    template = default_template(tokenizer)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template)
    before, sep, after = text.partition(SCENE_SENTINEL)
    if not sep:
        raise ValueError("the chat template dropped the scene placeholder; use a template that keeps user text")
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    return PromptIds(encode(before), encode(after))


def end_of_turn_id(tokenizer: "PreTrainedTokenizerBase") -> int:
    """The token that closes an assistant turn (<|im_end|> for ChatML models, <end_of_turn> for
    Gemma's, else eos)."""
    vocab = tokenizer.get_vocab()
    for closer in ("<|im_end|>", "<end_of_turn>"):
        if closer in vocab:
            return int(vocab[closer])
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither <|im_end|> nor an eos token")
    return int(tokenizer.eos_token_id)
