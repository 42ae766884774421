"""Calibrates `reasoner.unlabelled_absent_p` (llm3d_core/reasoner_config.py) for a checkpoint.

"Is there a <category> here?" is asked about every catalog category on each map of a split; a
category is refused by the absence head alone (P(absent) >= the checkpoint's threshold) or, when
no map object carries its label (MapEvidence.unlabelled), from a lower P(absent). The value
printed is the lowest that refuses at most `--max-extra` more of the present categories than the
head alone; the table shows absent and present categories refused for each candidate. These are
the head's and the gate's verdicts on every (map, category) pair: `Reasoner.ask` answers a category
the map labels confidently from the map first and never refuses it, which lowers the absolute
present rates but not the gate's extra refusals (an unlabelled category is never confidently held).

    .venv/bin/python scripts/calibrate_unlabelled.py --data data --split val --ckpt checkpoints/llm3d-objects
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.progress import progress_bar
    from llm3d_core.reasoner import Reasoner, ReasonerConfig, load_model, saved_map_version
    from llm3d_core.vocabulary import SYNONYMS
    from sim.scenes import generate_scene, seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--ckpt", default="checkpoints/llm3d-objects")
    ap.add_argument("--max-extra", type=float, default=0.03, help="present categories refused beyond the head alone")
    args = ap.parse_args()

    model = load_model(args.ckpt, None, "cpu", {"device": "cpu"})
    threshold = model.config.pointer.absent_threshold
    reasoner = Reasoner(model, ReasonerConfig())
    rows = []  # (present, unlabelled, P(absent))
    scene_seeds = seeds(args.split, args.scenes)
    bar = progress_bar(len(scene_seeds) * len(SYNONYMS), "categories")
    for seed in scene_seeds:
        map_dir = Path(args.data) / "maps" / f"sim_{seed:06d}"
        reasoner.set_map(FeatureFusionMapper.load(map_dir, device="cpu"), saved_map_version(map_dir))
        evidence = reasoner.map.evidence(reasoner.config.evidence_min_confidence)
        held = {inst.category for inst in generate_scene(seed).instances}
        session = reasoner._oneshot_session()
        for category, names in SYNONYMS.items():
            bar.update(1)
            answer = session.ask(f"the {names[0]}", "ground", remember=False)
            p = answer.absent_prob if answer.absent_prob is not None else 0.0
            rows.append((category in held, evidence.unlabelled(names[0]), p))
    bar.close()
    present = np.array([r[0] for r in rows])
    unlabelled = np.array([r[1] for r in rows])
    p = np.array([r[2] for r in rows])
    head = p >= threshold
    base = head[present].mean()
    print(f"{len(rows)} (map, category) pairs, {present.sum()} present; head threshold {threshold:.3f}")
    print("| unlabelled_absent_p | absent refused | present refused |\n|---|---|---|")
    print(f"| head alone | {100 * head[~present].mean():.1f} % | {100 * base:.1f} % |")
    chosen = None
    for cand in np.round(np.arange(0.05, 1.0001, 0.05), 2):
        refused = head | (unlabelled & (p >= cand))
        print(f"| {cand:.2f} | {100 * refused[~present].mean():.1f} % | {100 * refused[present].mean():.1f} % |")
        if chosen is None and refused[present].mean() - base <= args.max_extra + 1e-9:
            chosen = float(cand)
    print(f"lowest value refusing at most {100 * args.max_extra:.0f} points more present categories: {chosen}")


if __name__ == "__main__":
    main()
