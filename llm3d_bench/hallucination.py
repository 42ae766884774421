"""`llm3d bench hallucination`: how often answers name categories the map does not hold, with and
without the reasoner's map-evidence layer (llm3d_core.map_evidence).

On each map the same reasoner (the shipped checkpoint, absence head on) is asked the scene-caption
questions of the data generator and "How many <category> are there?" for every category of the
generator's vocabulary, once with `map_evidence` off and once on. Measures:

- CHAIR_i against the map (Rohrbach et al. 2018, sec. 2; `map_evidence.hallucination_stats`):
  categories claimed that no map object is labelled with, over all claimed; a count answer > 0
  claims the category asked about (`map_evidence.claim_text`). The issue's target is <= 5 %.
- count agreement: count answers equal to the map's confident count, over the count questions
  about categories the map labels confidently.
- on generated scenes, the same two against the scene's annotations (what is really there), so a
  layer that copies a wrong label list shows up as worse truth scores.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.model.modeling_llm3d import Llm3dModel

CAPTION_QUESTIONS = ("Describe the scene.", "What is in this room?", "Give a summary of this scene.",
                     "Describe what you see in this 3D scene.")  # sim.datagen.language.CAPTION_SCENE_Q


@dataclass
class MapRun:
    """Questions, answers and the references of one map."""

    name: str
    held: set[str]  # categories the map's objects are labelled with
    map_counts: dict[str, int]  # confident count per trusted category
    truth: Counter | None = None  # category -> count in the scene's annotations (generated scenes)
    rows: list[dict] = field(default_factory=list)  # question, kind, category, answer (off), answer (on)


def count_questions(trusted: set[str], limit: int = 0) -> list[tuple[str, str]]:
    """(question, category) for the generator's categories: those the map labels confidently first
    (count agreement needs them), then the others in vocabulary order; at most `limit` (0: all)."""
    from llm3d_core.vocabulary import SYNONYMS, plural

    cats = [names[0] for names in SYNONYMS.values()]
    cats = [c for c in cats if c in trusted] + [c for c in cats if c not in trusted]
    return [(f"How many {plural(c)} are there?", c) for c in cats[:limit or None]]


def ask_map(model: "Llm3dModel", mapper: "FeatureFusionMapper", name: str, min_confidence: float,
            truth: Counter | None = None, counts: int = 0) -> MapRun:
    """The caption and `counts` count questions (0: every category) asked with the layer off and on."""
    from llm3d_core.reasoner import Reasoner, ReasonerConfig

    answers = {}
    for on in (False, True):
        reasoner = Reasoner(model, ReasonerConfig(map_evidence=on, evidence_min_confidence=min_confidence))
        reasoner.set_map(mapper, name)
        evidence = reasoner.map.evidence(min_confidence)
        questions = [(q, "caption", "") for q in CAPTION_QUESTIONS]
        questions += [(q, "count", c) for q, c in count_questions(evidence.trusted, counts)]
        answers[on] = [(q, kind, c, reasoner.ask(q)[0]) for q, kind, c in questions]
    run = MapRun(name, evidence.held, {c: evidence.count(c) for c in evidence.trusted}, truth)
    for (q, kind, c, off), (_, _, _, on) in zip(answers[False], answers[True]):
        run.rows.append({"question": q, "kind": kind, "category": c, "off": off, "on": on})
    return run


def scores(run: MapRun, layer: bool, reference: str = "map") -> dict[str, Any]:
    """CHAIR_i (all answers, captions only) and count agreement of one map's answers."""
    from llm3d_core.map_evidence import build_vocabulary, claim_text, hallucination_stats, parse_count

    key = "on" if layer else "off"
    if reference == "map":
        held, counts = run.held, run.map_counts
    else:
        held, counts = {c for c, n in run.truth.items() if n}, dict(run.truth)
    vocab = build_vocabulary([*run.held, *held])
    pairs = [(claim_text(r["question"], r[key]), held) for r in run.rows]
    captions = [(r[key], held) for r in run.rows if r["kind"] == "caption"]
    asked = [r for r in run.rows if r["kind"] == "count" and r["category"] in counts]
    agree = sum(parse_count(r[key]) == counts[r["category"]] for r in asked)
    all_stats, cap_stats = hallucination_stats(pairs, vocab), hallucination_stats(captions, vocab)
    return {"chair_i": all_stats.rate, "mentioned": all_stats.mentioned, "hallucinated": all_stats.hallucinated,
            "caption_chair_i": cap_stats.rate, "count_agree": agree, "count_asked": len(asked)}


def scene_truth(scene) -> Counter:
    """Category counts of a generated scene's annotated instances, by canonical name."""
    from llm3d_core.vocabulary import SYNONYMS

    return Counter(SYNONYMS.get(i.category, (i.category.replace("_", " "),))[0] for i in scene.instances)


def run_hallucination_bench(checkpoint: Path | None, model_config, map_dirs: list[Path], sim_seeds: list[int],
                            device: str | None = None, min_confidence: float = 0.5, counts: int = 0,
                            progress=print) -> dict[str, Any]:
    """Maps the generated scenes of `sim_seeds` (launch/llm3d.yaml's mapper, 320x240 frames), loads
    the saved maps of `map_dirs`, and scores both with the layer off and on (`counts` count
    questions per map, 0: one per generator category)."""
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.reasoner import load_model
    from sim.datagen.maps import build_scene_map, map_mapper_config
    from sim.scenes import generate_scene

    t0 = time.perf_counter()
    model = load_model(checkpoint, model_config, device or model_config.device,
                       overrides={"device": device} if device else None)
    runs = []
    for map_dir in map_dirs:
        progress(f"asking about the map {map_dir}")
        runs.append(ask_map(model, FeatureFusionMapper.load(map_dir, device="cpu"), str(map_dir), min_confidence,
                            counts=counts))
    for seed in sim_seeds:
        scene = generate_scene(seed)
        progress(f"mapping the generated scene {scene.scene_id}")
        with tempfile.TemporaryDirectory(prefix="llm3d-halluc-") as tmp:
            mapper = FeatureFusionMapper(map_mapper_config(device=device))
            build_scene_map(scene, Path(tmp) / "map", mapper=mapper)
        runs.append(ask_map(model, mapper, scene.scene_id, min_confidence, truth=scene_truth(scene),
                            counts=counts))
    result = {"checkpoint": str(checkpoint or "untrained"), "device": str(model.device),
              "min_confidence": min_confidence, "count_questions": counts, "maps": []}
    for run in runs:
        entry = {"name": run.name, "held": sorted(run.held), "map_counts": run.map_counts,
                 "off": scores(run, False), "on": scores(run, True), "rows": run.rows}
        if run.truth is not None:
            entry["truth"] = dict(run.truth)
            entry["truth_off"], entry["truth_on"] = scores(run, False, "truth"), scores(run, True, "truth")
        result["maps"].append(entry)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


HALLUCINATION_HEADER = ["map", "reference", "layer", "CHAIR_i (all)", "CHAIR_i (captions)", "count agrees",
                        "target"]


def hallucination_rows(result: dict[str, Any]) -> list[list[object]]:
    rows = []
    for m in result["maps"]:
        refs = [("map objects", m["off"], m["on"])]
        if "truth" in m:
            refs.append(("scene truth", m["truth_off"], m["truth_on"]))
        for ref, off, on in refs:
            for layer, s in (("off", off), ("on", on)):
                rows.append([m["name"], ref, layer, f"{s['chair_i']:.1%} ({s['hallucinated']}/{s['mentioned']})",
                             f"{s['caption_chair_i']:.1%}", f"{s['count_agree']}/{s['count_asked']}",
                             "<= 5 %" if ref == "map objects" else ""])
    return rows
