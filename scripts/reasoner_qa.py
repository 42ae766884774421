"""QA as the robot answers it: the generator's questions through `Reasoner.ask` on the saved maps.

`llm3d eval` scores the model alone. What a user gets is the reasoner around it: the map's object
list answers counts and existence where it is confident, the absence head refuses what the map
does not hold, colour questions are answered from the map's fused colours. This script asks every
QA record of a split (and, with --heldout, the same records in the held-out phrasing) through one
Reasoner per map and prints EM@1 by question type, side by side; `--set name=value` changes a
ReasonerConfig field, the value read as YAML (e.g. `--set color_answer_min_share=0` for the model's
own colours, `--set goals.clearance=0.2` for a nested one).

    .venv/bin/python scripts/reasoner_qa.py --split test --heldout [--qtype color] [--set name=value]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from llm3d_core.config import config_from_dict
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.evaluate import exact_match
    from llm3d_core.progress import progress_bar
    from llm3d_core.reasoner import Reasoner, ReasonerConfig, ReasonerError, load_model, saved_map_version

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--heldout", action="store_true", help="also ask DATA/<split>_heldout.jsonl's phrasing")
    ap.add_argument("--qtype", action="append", default=[], help="only these question types (repeatable)")
    ap.add_argument("--ckpt", default="checkpoints/llm3d-objects")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="ReasonerConfig field")
    ap.add_argument("--out", type=Path, default=None, help="JSON with every answer")
    args = ap.parse_args()

    overrides = {name: yaml.safe_load(value) for name, _, value in (item.partition("=") for item in args.set)}
    config = config_from_dict(ReasonerConfig, overrides, "--set")
    phrasings = {"templates": args.data / f"{args.split}.jsonl"}
    if args.heldout:
        phrasings["held-out"] = args.data / f"{args.split}_heldout.jsonl"
    records = {name: [json.loads(line) for line in path.open()] for name, path in phrasings.items()}
    keep = lambda r: r["task"] == "qa" and (not args.qtype or r.get("qtype") in args.qtype)  # noqa: E731
    records = {name: [r for r in recs if keep(r)] for name, recs in records.items()}
    scenes = sorted({r["scene_id"] for r in records["templates"]})

    reasoner = Reasoner(load_model(args.ckpt, None, "cpu", {"device": "cpu"}), config)
    rows = []
    bar = progress_bar(sum(len(v) for v in records.values()), "questions")
    for scene in scenes:
        map_dir = args.data / "maps" / scene
        reasoner.set_map(FeatureFusionMapper.load(map_dir, device="cpu"), saved_map_version(map_dir))
        for name, recs in records.items():
            for r in (r for r in recs if r["scene_id"] == scene):
                bar.update(1)
                try:
                    answer, _ = reasoner.ask(r["question"])
                except ReasonerError as err:
                    answer = f"error: {err}"
                rows.append({"id": r["id"], "phrasing": name, "qtype": r.get("qtype", "?"), "question": r["question"],
                             "answer": answer, "answers": r["answers"], "em": exact_match(answer, r["answers"])})
    bar.close()

    table = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in rows:
        table[row["qtype"]][row["phrasing"]].append(row["em"])
        table["all"][row["phrasing"]].append(row["em"])
    print(f"{args.split}, {args.ckpt}, {' '.join(args.set) or 'shipped reasoner config'}")
    print(f"{'type':12s} {'n':>4s} " + " ".join(f"{name:>10s}" for name in records))
    for qtype in sorted(table, key=lambda t: (t != "all", -len(table[t]["templates"]))):
        ems = table[qtype]
        print(f"{qtype:12s} {len(ems['templates']):4d} " +
              " ".join(f"{100 * sum(ems[name]) / max(len(ems[name]), 1):9.1f}%" for name in records))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": args.set, "ckpt": args.ckpt, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
