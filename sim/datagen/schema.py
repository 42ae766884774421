"""The JSONL record schema shared with the model code, and its validator.

One record per line (ScanQA / ScanRefer-compatible core fields: scene_id, question, answers,
object_ids, boxes):
    {"id": "<scene_id>/<task>/<n>", "scene_id": str, "split": str,
     "task": "caption" | "qa" | "ground" | "plan" | "navigate" | "dialog",
     "question": str,            # instruction/question; ground: the referring expression; navigate: the instruction
     "answers": [str, ...],      # acceptable answers, first canonical; ground/navigate: the target's category
     "object_ids": [int, ...],   # instances the answer refers to ([] if none)
     "boxes": [[minx, miny, minz, maxx, maxy, maxz], ...],   # world boxes of object_ids, same order
     "qtype": str,               # fine type (color, count, exists, relation, compare, affordance, ...);
                                 # ground "absent/<kind>": the target is not in the scene (no object,
                                 # answers ["not here"])
     "unique": bool,             # ground only: no same-category distractor in the scene
     "steps": [str, ...],        # plan only
     "goal": [x, y, z],          # navigate only; z = 0 (floor)
     "turns": [{"question": str, "answers": [str, ...]}, ...]}   # dialog only: the turns before the last
Task-only keys appear on their task's records only.
"""

from __future__ import annotations

import math

from llm3d_core.model.configuration_llm3d import ABSENT_ANSWER, is_absent

TASKS = ("caption", "qa", "ground", "plan", "navigate", "dialog")
SPLITS = ("train", "val", "test")
BASE_KEYS = ("id", "scene_id", "split", "task", "question", "answers", "object_ids", "boxes", "qtype")
TASK_KEYS = {"ground": "unique", "plan": "steps", "navigate": "goal", "dialog": "turns"}


class RecordError(ValueError):
    """A record does not follow the schema; the message names the record and the field."""


def _strings(value: object, allow_empty: bool = False) -> bool:
    return isinstance(value, list) and (allow_empty or len(value) > 0) and all(
        isinstance(s, str) and s.strip() for s in value)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_record(rec: object) -> dict:
    """Returns `rec` when it follows the schema above; raises RecordError naming the first problem."""
    if not isinstance(rec, dict):
        raise RecordError(f"a record must be a JSON object, got {type(rec).__name__}")
    rid = rec.get("id", "<no id>")

    def fail(field: str, what: str) -> None:
        raise RecordError(f"record {rid!r}: {field} {what}, got {rec.get(field)!r}")

    for key in BASE_KEYS:
        if key not in rec:
            raise RecordError(f"record {rid!r}: missing field {key!r}")
    task = rec["task"]
    if task not in TASKS:
        fail("task", f"must be one of {', '.join(TASKS)}")
    allowed = set(BASE_KEYS) | {TASK_KEYS[task]} if task in TASK_KEYS else set(BASE_KEYS)
    extra = sorted(set(rec) - allowed)
    if extra:
        raise RecordError(f"record {rid!r}: unexpected field(s) {extra} for task {task!r}")
    if task in TASK_KEYS and TASK_KEYS[task] not in rec:
        raise RecordError(f"record {rid!r}: task {task!r} needs field {TASK_KEYS[task]!r}")
    for key in ("scene_id", "question", "qtype"):
        if not isinstance(rec[key], str) or not rec[key].strip():
            fail(key, "must be a non-empty string")
    if rec["split"] not in SPLITS and rec["split"] != "":
        fail("split", f"must be one of {', '.join(SPLITS)} (or '' for scenes outside the splits)")
    parts = rec["id"].rsplit("/", 2) if isinstance(rec["id"], str) else []
    if len(parts) != 3 or parts[0] != rec["scene_id"] or parts[1] != task or not parts[2].isdigit():
        fail("id", "must be '<scene_id>/<task>/<n>'")
    if not _strings(rec["answers"]):
        fail("answers", "must be a non-empty list of non-empty strings")
    ids = rec["object_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        fail("object_ids", "must be a list of integers >= 0")
    if len(set(ids)) != len(ids):
        fail("object_ids", "must not repeat an id")
    boxes = rec["boxes"]
    if not isinstance(boxes, list) or len(boxes) != len(ids):
        fail("boxes", "must be a list with one box per object id")
    for b in boxes:
        if not (isinstance(b, list) and len(b) == 6 and all(_number(v) for v in b) and all(b[k] <= b[k + 3] for k in range(3))):
            fail("boxes", "must hold [minx, miny, minz, maxx, maxy, maxz] with min <= max")
    if is_absent(rec):
        if task != "ground" or ids or rec["answers"] != [ABSENT_ANSWER]:
            fail("qtype", f"absent/... is for ground records with no object and answers [{ABSENT_ANSWER!r}]")
    elif task in ("ground", "navigate") and len(ids) != 1:
        fail("object_ids", f"must name exactly one target for task {task!r}")
    if task == "ground" and not isinstance(rec["unique"], bool):
        fail("unique", "must be true or false")
    if task == "plan" and not _strings(rec["steps"]):
        fail("steps", "must be a non-empty list of non-empty strings")
    if task == "navigate":
        g = rec["goal"]
        if not (isinstance(g, list) and len(g) == 3 and all(_number(v) for v in g)):
            fail("goal", "must be [x, y, z] numbers")
    if task == "dialog":
        turns = rec["turns"]
        if not isinstance(turns, list) or not 1 <= len(turns) <= 4:
            fail("turns", "must be a list of 1-4 earlier turns")
        for t in turns:
            if not (isinstance(t, dict) and set(t) == {"question", "answers"} and isinstance(t["question"], str)
                    and t["question"].strip() and _strings(t["answers"])):
                fail("turns", "must hold {'question': str, 'answers': [str, ...]} objects")
    return rec
