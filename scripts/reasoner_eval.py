"""The generator's records as the robot gets them: questions through `Reasoner.ask`, referring
expressions through `Reasoner.ground`, on the saved maps.

`llm3d eval` scores the model alone. What a user gets is the reasoner around it: the map's object
list answers counts and existence where it is confident, the absence head refuses what the map
does not hold, colour questions are answered from the map's fused colours, and a named colour or
relation the object a robot would be sent to does not show is refused (llm3d_core.colors,
llm3d_core.spatial).

- `--task qa` asks every QA record of DATA/<split>.jsonl (with --heldout also <split>_heldout.jsonl,
  the same records in the held-out phrasing) and prints EM@1 by question type.
- `--task ground` grounds every record of DATA/<split>_absent.jsonl (and <split>_absent_heldout.jsonl):
  targets the scene does not hold must be refused (rate by kind: category, attribute, relation, a
  held-out word, a made-up word), present ones found (Acc@0.25 of the object returned, a refusal
  counting as a miss, and how many were refused).

One Reasoner per map; `--set name=value` changes a ReasonerConfig field, the value read as YAML
(e.g. `--set color_answer_min_share=0` for the model's own colours, `--set color_min_share=0
--set relation_check=false` for the absence head alone).

    .venv/bin/python scripts/reasoner_eval.py --task qa --split test --heldout [--qtype color] [--set name=value]
    .venv/bin/python scripts/reasoner_eval.py --task ground --split test --heldout
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def answer_qa(reasoner: Any, r: dict) -> dict[str, Any]:
    from llm3d_core.model.evaluate import exact_match
    from llm3d_core.reasoner import ReasonerError

    try:
        answer, _ = reasoner.ask(r["question"])
    except ReasonerError as err:
        answer = f"error: {err}"
    return {"answer": answer, "answers": r["answers"], "score": exact_match(answer, r["answers"])}


def answer_ground(reasoner: Any, r: dict) -> dict[str, Any]:
    """Absent targets score 1 when refused; present ones when the object returned has IoU >= 0.25."""
    import numpy as np

    from llm3d_core.geometry import box_iou_3d
    from llm3d_core.model.configuration_llm3d import is_absent
    from llm3d_core.reasoner import ReasonerError

    try:
        found = reasoner.ground(r["question"], 1)
    except ReasonerError as err:
        return {"answer": f"refused: {err}", "refused": True, "iou": 0.0, "score": is_absent(r)}
    if not found:
        return {"answer": "nothing", "refused": True, "iou": 0.0, "score": is_absent(r)}
    iou = 0.0 if is_absent(r) else float(box_iou_3d(found[0].box, np.asarray(r["boxes"][0], dtype=np.float64)))
    return {"answer": f"{found[0].id} '{found[0].label}'", "refused": False, "iou": round(iou, 4),
            "score": (not is_absent(r)) and iou >= 0.25}


def group(r: dict, task: str) -> str:
    """The row a record is counted in: its question type (QA), absent/<kind> or 'present' (ground)."""
    from llm3d_core.model.configuration_llm3d import is_absent

    if task == "qa":
        return r.get("qtype", "?")
    return r["qtype"] if is_absent(r) else "present"


def main() -> None:
    from llm3d_core.config import config_from_dict
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.configuration_llm3d import is_absent
    from llm3d_core.progress import progress_bar
    from llm3d_core.reasoner import Reasoner, ReasonerConfig, load_model, saved_map_version

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("qa", "ground"), default="qa")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--heldout", action="store_true", help="also the held-out phrasing of the same records")
    ap.add_argument("--qtype", action="append", default=[], help="only these question types (repeatable)")
    ap.add_argument("--ckpt", default="checkpoints/llm3d-objects")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="ReasonerConfig field")
    ap.add_argument("--out", type=Path, default=None, help="JSON with every answer")
    args = ap.parse_args()

    overrides = {name: yaml.safe_load(value) for name, _, value in (item.partition("=") for item in args.set)}
    config = config_from_dict(ReasonerConfig, overrides, "--set")
    stem = args.split if args.task == "qa" else f"{args.split}_absent"
    phrasings = {"templates": args.data / f"{stem}.jsonl"}
    if args.heldout:
        phrasings["held-out"] = args.data / f"{stem}_heldout.jsonl"
    records = {name: [json.loads(line) for line in path.open()] for name, path in phrasings.items()}
    wanted = "qa" if args.task == "qa" else ("ground", "navigate")
    keep = lambda r: r["task"] in wanted and (not args.qtype or r.get("qtype") in args.qtype)  # noqa: E731
    records = {name: [r for r in recs if keep(r)] for name, recs in records.items()}
    scenes = sorted({r["scene_id"] for r in records["templates"]})
    score = answer_qa if args.task == "qa" else answer_ground

    reasoner = Reasoner(load_model(args.ckpt, None, "cpu", {"device": "cpu"}), config)
    rows = []
    bar = progress_bar(sum(len(v) for v in records.values()), "questions" if args.task == "qa" else "requests")
    for scene in scenes:
        map_dir = args.data / "maps" / scene
        reasoner.set_map(FeatureFusionMapper.load(map_dir, device="cpu"), saved_map_version(map_dir))
        for name, recs in records.items():
            for r in (r for r in recs if r["scene_id"] == scene):
                bar.update(1)
                rows.append({"id": r["id"], "phrasing": name, "group": group(r, args.task), "question": r["question"],
                             "absent": is_absent(r), **score(reasoner, r)})
    bar.close()

    table = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in rows:
        table[row["group"]][row["phrasing"]].append(row)
        table["all" if args.task == "qa" else ("absent, all" if row["absent"] else "_")][row["phrasing"]].append(row)
    table.pop("_", None)
    metric = "EM@1" if args.task == "qa" else "refused (absent) / Acc@0.25, refused (present)"
    print(f"{args.split}, {args.ckpt}, {' '.join(args.set) or 'shipped reasoner config'}; {metric}")
    print(f"{'group':18s} {'n':>4s} " + " ".join(f"{name:>18s}" for name in records))

    def cell(sel: list[dict]) -> str:
        rate = 100 * sum(r["score"] for r in sel) / max(len(sel), 1)
        if args.task == "ground" and sel and not sel[0]["absent"]:
            return f"{rate:5.1f}% ({100 * sum(r['refused'] for r in sel) / len(sel):4.1f}% ref.)"
        return f"{rate:17.1f}%"

    order = sorted(table, key=lambda t: (t not in ("all", "absent, all"), t == "present", -len(table[t]["templates"])))
    for key in order:
        print(f"{key:18s} {len(table[key]['templates']):4d} " + " ".join(f"{cell(table[key][n]):>18s}" for n in records))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"task": args.task, "config": args.set, "ckpt": args.ckpt, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
