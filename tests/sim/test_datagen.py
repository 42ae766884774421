"""3D-language data generation: every answer re-derived from the scene graph, the record schema,
splits, determinism, bad input, the CLI and (slow) map building.

The checks here recompute facts from the Scene with their own code and only share the documented
thresholds of sim.datagen.relations (NEAR_M, FAR_M, ...), not its functions.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

from sim.config import AgentConfig
from sim.datagen import DatagenConfig, RecordError, generate_records, validate_record
from sim.datagen import relations as R
from sim.datagen.dataset import DatasetRequest, generate_dataset
from sim.datagen.language import COLOR_SYNONYMS, SYNONYMS
from sim.navmesh import build_navgrid
from sim.scenes import CATALOG, generate_scene, seeds

SEEDS = (3, 10004, 11007, 21, 42)  # train, val, test and two more train scenes


@pytest.fixture(scope="module")
def generated():
    """[(scene, grid, records)] for a few scenes of all splits."""
    out = []
    for seed in SEEDS:
        scene = generate_scene(seed)
        grid = build_navgrid(scene.mesh(), AgentConfig())
        out.append((scene, grid, generate_records(scene, DatagenConfig(seed=1), grid=grid)))
    return out


def all_records(generated, task=None, qtype=None):
    for scene, grid, records in generated:
        for rec in records:
            if (task is None or rec["task"] == task) and (qtype is None or rec["qtype"] == qtype):
                yield scene, grid, rec


def color_of(word: str) -> str:
    return next((c for c, syn in COLOR_SYNONYMS.items() if word in syn), word)


def cat_of(name: str) -> str:
    return next(c for c, syn in SYNONYMS.items() if name in syn)


def mentioned_categories(text: str) -> set[str]:
    """Categories named in `text` (any synonym, whole words; longer names win over their parts)."""
    text, found = text.lower(), set()
    for name, cat in sorted(((n, c) for c, syn in SYNONYMS.items() for n in syn), key=lambda nc: -len(nc[0])):
        forms = [name, name + "s", name + "es"] + ([name[:-1] + "ves"] if name.endswith("f") else [])
        pattern = r"\b(" + "|".join(re.escape(f) for f in forms) + r")\b"
        if re.search(pattern, text):
            found.add(cat)
            text = re.sub(pattern, " ", text)
    return found


def gap_xy(a, b) -> float:
    d = np.maximum(np.maximum(a.box_min[:2] - b.box_max[:2], b.box_min[:2] - a.box_max[:2]), 0)
    return float(np.hypot(*d))


def gap_3d(a, b) -> float:
    return float(np.linalg.norm(np.maximum(np.maximum(a.box_min - b.box_max, b.box_min - a.box_max), 0)))


def children(scene, inst):
    return [i for i in scene.instances if i.support_relation in ("on", "in") and i.support_id == inst.id]


# ----------------------------------------------------------------------------- schema
def test_every_record_validates_and_ids_are_unique(generated):
    ids = [rec["id"] for _, _, rec in all_records(generated)]
    assert len(ids) == len(set(ids))
    for _, _, rec in all_records(generated):
        validate_record(json.loads(json.dumps(rec)))  # what a JSONL reader gets


def test_every_task_is_generated(generated):
    tasks = {rec["task"] for _, _, rec in all_records(generated)}
    assert tasks == {"caption", "qa", "ground", "plan", "navigate", "dialog"}
    qtypes = {rec["qtype"] for _, _, rec in all_records(generated, "qa")}
    assert {"color", "count", "exists", "relation", "compare", "affordance", "size"} <= qtypes


def _good() -> dict:
    return {"id": "s/ground/0", "scene_id": "s", "split": "train", "task": "ground", "question": "the red chair",
            "answers": ["chair"], "object_ids": [3], "boxes": [[0, 0, 0, 1, 1, 1]], "unique": False, "qtype": "attribute"}


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("answers"), "missing field 'answers'"),
    (lambda r: r.update(task="chat"), "task must be one of"),
    (lambda r: r.update(answers=[]), "answers must be"),
    (lambda r: r.update(boxes=[[0, 0, 0, 1, 1]]), "boxes must hold"),
    (lambda r: r.update(boxes=[[1, 0, 0, 0, 1, 1]]), "min <= max"),
    (lambda r: r.update(object_ids=[3, 4]), "one box per object id"),
    (lambda r: r.pop("unique"), "needs field 'unique'"),
    (lambda r: r.update(unique="yes"), "unique must be true or false"),
    (lambda r: r.update(steps=["a"]), "unexpected field"),
    (lambda r: r.update(id="s/qa/0"), "id must be"),
    (lambda r: r.update(split="dev"), "split must be one of"),
    (lambda r: r.update(object_ids=[True]), "object_ids must be"),
])
def test_validator_rejects_bad_records(change, message):
    rec = _good()
    validate_record(copy.deepcopy(rec))
    change(rec)
    with pytest.raises(RecordError, match=re.escape(message)):
        validate_record(rec)


def test_validator_task_fields():
    nav = {**_good(), "id": "s/navigate/0", "task": "navigate", "goal": [1.0, 2.0]}
    nav.pop("unique")
    with pytest.raises(RecordError, match="goal must be"):
        validate_record(nav)
    dialog = {**_good(), "id": "s/dialog/0", "task": "dialog", "turns": [{"question": "q"}]}
    dialog.pop("unique")
    with pytest.raises(RecordError, match="turns must hold"):
        validate_record(dialog)
    with pytest.raises(RecordError, match="JSON object"):
        validate_record(["not", "a", "dict"])


# ----------------------------------------------------------------------------- answers hold on the scene graph
def test_boxes_are_the_instances_boxes(generated):
    for scene, _, rec in all_records(generated):
        for oid, box in zip(rec["object_ids"], rec["boxes"]):
            inst = scene.instance(oid)
            np.testing.assert_allclose(box, [*inst.box_min, *inst.box_max], atol=1e-3)


def test_color_size_category_answers(generated):
    for scene, _, rec in all_records(generated, "qa"):
        inst = scene.instance(rec["object_ids"][0]) if rec["object_ids"] else None
        if rec["qtype"] == "color":
            assert color_of(rec["answers"][0]) == inst.color, rec
        elif rec["qtype"] == "size":
            side = float(inst.size.max())
            assert rec["answers"][0] == ("small" if side < 0.35 else "medium" if side < 1.0 else "large"), rec
        elif rec["qtype"] == "category":
            sup = scene.instance(inst.support_id)
            assert cat_of(rec["answers"][0]) == inst.category and children(scene, sup) == [inst], rec


def test_counts(generated):
    n = 0
    for scene, _, rec in all_records(generated, "qa", "count"):
        objs = [scene.instance(i) for i in rec["object_ids"]]
        assert rec["answers"][0] == str(len(objs)), rec
        if " on " in rec["question"]:  # objects on a support
            sup = scene.instance(objs[0].support_id)
            assert sorted(o.id for o in objs) == sorted(o.id for o in children(scene, sup)), rec
        else:
            (cat,) = mentioned_categories(rec["question"])
            assert sorted(o.id for o in objs) == sorted(i.id for i in scene.instances if i.category == cat), rec
        n += 1
    assert n > 0


def test_existence(generated):
    answers = set()
    for scene, _, rec in all_records(generated, "qa", "exists"):
        cats = mentioned_categories(rec["question"])
        assert len(cats) == 1, rec
        cat = cats.pop()
        words = re.findall(r"[a-z-]+", rec["question"].lower())
        colours = {color_of(w) for w in words} & set(CATALOG[cat].colors) | {
            color_of(m) for m in ("navy blue", "dark blue", "blue-green") if m in rec["question"]}
        present = [i for i in scene.instances if i.category == cat and (not colours or i.color in colours)]
        assert rec["answers"] == (["yes"] if present else ["no"]), rec
        answers.add(rec["answers"][0])
    assert answers == {"yes", "no"}


def _viewer_side(anchor, target) -> str | None:
    yaw = math.radians(anchor.yaw_deg)
    front = np.array([math.sin(yaw), -math.cos(yaw)])  # catalog objects face their local -y
    half = 0.5 * (abs(front[0]) * anchor.size[0] + abs(front[1]) * anchor.size[1])
    eye = anchor.center[:2] + front * (half + R.VIEW_DISTANCE_M)
    rel = target.center[:2] - eye
    x_right = np.array([-front[1], front[0]])  # viewer looks along d = -front; their right is d turned clockwise
    if float(rel @ -front) < 0.5:
        return None
    lateral = float(rel @ x_right)
    return "right" if lateral >= R.LR_MARGIN_M else "left" if lateral <= -R.LR_MARGIN_M else None


def test_spatial_relations(generated):
    kinds = set()
    for scene, _, rec in all_records(generated, "qa", "relation"):
        q, objs = rec["question"], [scene.instance(i) for i in rec["object_ids"]]
        if rec["answers"][0] in ("left", "right"):
            kinds.add("left_right")
            assert _viewer_side(objs[1], objs[0]) == rec["answers"][0], rec
        elif rec["answers"][0] in ("yes", "no"):
            kinds.add("near")
            gap = gap_xy(*objs)
            assert (gap <= R.NEAR_M) if rec["answers"][0] == "yes" else (gap >= R.FAR_M), rec
        elif "between" in q:
            kinds.add("between")
            t, a, b = objs
            assert cat_of(rec["answers"][0]) == t.category
            ab, at = b.center[:2] - a.center[:2], t.center[:2] - a.center[:2]
            s = float(at @ ab) / float(ab @ ab)
            perp = abs(float(ab[0] * at[1] - ab[1] * at[0])) / float(np.linalg.norm(ab))
            assert 0.2 <= s <= 0.8 and perp <= R.BETWEEN_M, rec
        else:
            kinds.add("support")
            inst, sup = objs
            assert inst.support_id == sup.id and inst.support_relation in ("on", "in"), rec
            assert rec["answers"][0] == f"{inst.support_relation} {SYNONYMS[sup.category][0].join(['the ', ''])}", rec
    assert kinds >= {"left_right", "near", "support"}


def test_comparisons(generated):
    for scene, _, rec in all_records(generated, "qa", "compare"):
        win, other = (scene.instance(i) for i in rec["object_ids"])
        assert cat_of(rec["answers"][0]) == win.category, rec
        if "bigger" in rec["question"] or "larger" in rec["question"]:
            assert np.prod(win.size) >= 1.5 * np.prod(other.size), rec
        elif "taller" in rec["question"] or "higher" in rec["question"]:
            assert win.size[2] - other.size[2] >= 0.15, rec
        else:
            (anchor_name,) = re.findall(r"(?:closer|nearer) to the ([a-z -]+?)[,:?]", rec["question"]) or [None]
            anchors = [i for i in scene.instances if i.category in mentioned_categories(anchor_name or "")
                       and i.id not in (win.id, other.id)]
            assert any(gap_3d(win, x) + 1.0 <= gap_3d(other, x) for x in anchors), rec


def test_affordances(generated):
    verbs = sorted({v for c in CATALOG.values() for v in c.affordances}, key=len, reverse=True)
    for scene, _, rec in all_records(generated, "qa", "affordance"):
        verb = next(v for v in verbs if f" {v}" in rec["question"])
        cats = {i.category for i in scene.instances if verb in CATALOG[i.category].affordances}
        if cats:
            assert {cat_of(a) for a in rec["answers"]} == cats, rec
            assert {scene.instance(i).category for i in rec["object_ids"]} == cats
        else:
            assert rec["answers"][0] == "nothing" and rec["object_ids"] == [], rec


def test_grounding_expressions_pick_out_their_target(generated):
    kinds = set()
    for scene, _, rec in all_records(generated, "ground"):
        inst = scene.instance(rec["object_ids"][0])
        same = [i for i in scene.instances if i.category == inst.category and i.id != inst.id]
        assert rec["unique"] == (not same), rec
        assert cat_of(rec["answers"][0]) == inst.category
        q, kind = rec["question"], rec["qtype"]
        kinds.add(kind)
        assert inst.category in mentioned_categories(q), rec
        if kind == "category":
            assert not same
        elif kind == "attribute":
            assert any(w in q.split() for w in COLOR_SYNONYMS.get(inst.color, (inst.color,))) or \
                any(w in q for w in COLOR_SYNONYMS.get(inst.color, ())), rec
            assert all(o.color != inst.color for o in same), rec
        elif kind == "support":
            sup = scene.instance(inst.support_id)
            assert sup.category in mentioned_categories(q) and f" {inst.support_relation} the " in q, rec
            for o in same:
                assert not (o.support_relation == inst.support_relation
                            and scene.instance(o.support_id).category == sup.category if o.support_id else False), rec
        elif kind == "near":
            (anchor_cat,) = mentioned_categories(q) - {inst.category}
            anchors = [a for a in scene.instances if a.category == anchor_cat]
            assert min(gap_xy(inst, a) for a in anchors) <= R.NEAR_M, rec
            assert all(min(gap_xy(o, a) for a in anchors) >= R.FAR_M for o in same), rec
        else:  # closest / farthest to a unique anchor
            (anchor_cat,) = mentioned_categories(q) - {inst.category}
            (anchor,) = [a for a in scene.instances if a.category == anchor_cat]
            d = {o.id: gap_3d(o, anchor) for o in same}
            mine = gap_3d(inst, anchor)
            assert all(mine + 1.0 <= v for v in d.values()) if kind == "closest" else all(mine >= v + 1.0 for v in d.values())
    assert {"attribute", "category"} <= kinds and kinds & {"support", "near", "closest", "farthest"}
    assert {rec["unique"] for _, _, rec in all_records(generated, "ground")} == {True, False}


def test_navigation_goals_are_navigable_and_near_the_object(generated):
    n = 0
    for scene, grid, rec in all_records(generated, "navigate"):
        inst = scene.instance(rec["object_ids"][0])
        goal = np.array(rec["goal"])
        assert goal[2] == 0.0
        assert grid.is_navigable(goal[None, :2])[0], rec
        assert grid.largest_component()[tuple(grid.world_to_cell(goal[:2])[0])], rec
        d = np.maximum(np.maximum(inst.box_min[:2] - goal[:2], goal[:2] - inst.box_max[:2]), 0)
        assert np.hypot(*d) <= 1.0, rec
        assert cat_of(rec["answers"][0]) == inst.category
        n += 1
    assert n > 0 and {r["qtype"] for _, _, r in all_records(generated, "navigate")} == {"object_goal", "relational_goal"}


def test_plans_name_only_objects_of_the_scene(generated):
    n = 0
    for scene, _, rec in all_records(generated, "plan"):
        present = {i.category for i in scene.instances}
        assert len(rec["steps"]) >= 2
        for step in rec["steps"]:
            assert mentioned_categories(step) <= present, (step, sorted(present))
            assert step in rec["answers"][0]
        assert mentioned_categories(rec["question"]) <= present, rec
        assert {scene.instance(i).category for i in rec["object_ids"]} <= present
        n += 1
    assert n > 0


def test_captions_and_dialogs(generated):
    for scene, _, rec in all_records(generated, "caption"):
        text = rec["answers"][0].lower()
        if rec["qtype"] == "object":
            inst = scene.instance(rec["object_ids"][0])
            assert f"{inst.color} {SYNONYMS[inst.category][0]}" in text, rec
            if inst.support_id:
                assert f"{inst.support_relation} a" in text and scene.instance(inst.support_id).category in \
                    mentioned_categories(text), rec
        else:
            assert mentioned_categories(text) == {i.category for i in scene.instances}, rec
    for scene, _, rec in all_records(generated, "dialog"):
        inst = scene.instance(rec["object_ids"][0])
        assert 1 <= len(rec["turns"]) <= 2
        assert inst.category in mentioned_categories(rec["turns"][0]["question"]) and rec["turns"][0]["answers"] == ["yes"]
        if rec["qtype"] == "color":
            assert color_of(rec["answers"][0]) == inst.color
        elif rec["qtype"] == "relation":
            assert rec["answers"][0].endswith(SYNONYMS[scene.instance(inst.support_id).category][0])
        assert {"it", "its"} & set(re.findall(r"[a-z]+", rec["question"].lower())), rec


def test_goal_heading_faces_the_object(generated):
    from sim.datagen import goal_heading

    for scene, _, rec in list(all_records(generated, "navigate"))[:5]:
        yaw = goal_heading(rec["goal"], rec["boxes"][0])
        box = np.array(rec["boxes"][0])
        to_box = (box[:2] + box[3:5]) / 2 - np.array(rec["goal"][:2])
        assert np.allclose([math.cos(yaw), math.sin(yaw)], to_box / np.linalg.norm(to_box))


# ----------------------------------------------------------------------------- determinism, splits, input
def test_deterministic_per_scene_and_seed(generated):
    scene, grid, records = generated[0]
    assert generate_records(scene, DatagenConfig(seed=1), grid=grid) == records
    assert generate_records(scene, DatagenConfig(seed=2), grid=grid) != records


def test_splits_are_disjoint(tmp_path):
    ids = {}
    for split in ("train", "val", "test"):
        entry = generate_dataset(DatasetRequest(split, 2, tmp_path))
        ids[split] = set(entry["scenes"])
        recs = [json.loads(line) for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
        assert {r["split"] for r in recs} == {split} and {r["scene_id"] for r in recs} == ids[split]
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    big = {s: set(seeds(s, 1000)) for s in ("train", "val", "test")}
    assert not big["train"] & big["val"] and not big["val"] & big["test"] and not big["train"] & big["test"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"train", "val", "test"} and summary["val"]["records"] > 0
    assert (tmp_path / "scenes" / "sim_010000" / "scene.json").is_file()


def test_extra_records_beside_a_split(tmp_path):
    from llm3d_cli.main import main

    generate_dataset(DatasetRequest("val", 1, tmp_path))
    assert main(["data", "generate", "--split", "val", "--scenes", "1", "--seed", "1", "--ground", "30",
                 "--navigate", "5", "--tasks", "ground,navigate", "--name", "val_referring", "--out", str(tmp_path)]) == 0
    extra = [json.loads(line) for line in (tmp_path / "val_referring.jsonl").read_text().splitlines()]
    own = [json.loads(line) for line in (tmp_path / "val.jsonl").read_text().splitlines()]
    assert {r["task"] for r in extra} == {"ground", "navigate"} and {r["scene_id"] for r in extra} == {"sim_010000"}
    assert sum(r["task"] == "ground" for r in extra) > sum(r["task"] == "ground" for r in own)
    assert set(json.loads((tmp_path / "summary.json").read_text())) == {"val", "val_referring"}


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "dev", "scenes": 2}, "split must be one of train, val, test"),
    ({"split": "val", "scenes": 1, "name": "a/b"}, "name must be letters"),
    ({"split": "val", "scenes": 1, "tasks": ["ground", "chat"]}, "tasks must be among"),
    ({"split": "val", "scenes": 1001}, "has 1000 seeds"),
    ({"split": "test", "scenes": 10, "start": 995}, "has 1000 seeds"),
    ({"split": "train", "scenes": 0}, "scenes must be >= 1"),
    ({"split": "train", "scenes": 1, "frames_every": 0}, "frames_every must be >= 1"),
    ({"split": "train", "scenes": 1, "datagen": {"ground": -1}}, "DatagenConfig.ground must be an integer >= 0"),
])
def test_bad_requests_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        if "datagen" in kwargs:
            kwargs["datagen"] = DatagenConfig(**kwargs["datagen"])
        DatasetRequest(out=tmp_path, **kwargs)


def test_cli_generate(tmp_path, capsys):
    from llm3d_cli.main import main

    assert main(["data", "generate", "--split", "val", "--scenes", "1", "--start", "3", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "val.jsonl").read_text().splitlines()
    assert lines and all(validate_record(json.loads(line))["scene_id"] == "sim_010003" for line in lines)
    assert json.loads(capsys.readouterr().out)["records"] == len(lines)
    with pytest.raises(SystemExit) as exit_:  # argparse: one line, exit 2
        main(["data", "generate", "--split", "nope", "--scenes", "1", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "argument --split: invalid choice: 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- maps
@pytest.mark.slow
def test_build_scene_map_objects_are_the_instances(tmp_path):
    import dataclasses

    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from sim.config import SimConfig
    from sim.datagen.maps import build_scene_map, map_mapper_config, map_sim_config

    scene = generate_scene(3)
    cfg = map_sim_config(SimConfig(), width=96, height=72, max_steps=40)
    mapper_cfg = map_mapper_config(device="cpu")
    mapper_cfg = dataclasses.replace(mapper_cfg, crops=dataclasses.replace(mapper_cfg.crops, enabled=False))  # speed
    stats = build_scene_map(scene, tmp_path / "map", frames_every=4, sim_config=cfg, mapper_config=mapper_cfg)
    loaded = FeatureFusionMapper.load(tmp_path / "map", device="cpu")
    ids = {o.instance_id for o in loaded.objects}
    assert ids and ids <= {0} | {i.id for i in scene.instances}
    assert ids - {0}, "no object instance made it into the map"
    assert sorted(ids) == stats.instance_ids and stats.fused == len(range(0, stats.frames, 4))


def test_absent_targets_are_absent_and_leave_the_other_records_alone(generated):
    """Absent-target records (DatagenConfig.absent) come from their own random stream: the other
    records are the same with or without them. Each names something the scene does not hold: a
    category it lacks, a thing no scene holds (test scenes: words train/val never use), a made-up
    word, a present category in a colour none of its instances has, or a relation none satisfies."""
    from llm3d_core.model.configuration_llm3d import ABSENT_ANSWER, is_absent
    from sim.datagen.language import NAV_Q, NOVEL_HELDOUT, NOVEL_TRAIN

    kinds = set()
    for scene, grid, records in generated:
        with_absent = generate_records(scene, DatagenConfig(seed=1, absent=20), grid=grid)
        assert with_absent[:len(records)] == records
        tail = with_absent[len(records):]
        absent = [r for r in tail if is_absent(r)]
        assert len(absent) >= 10
        present = [r for r in tail if not is_absent(r)]  # one present category per absent one, asked alike
        assert len(present) == sum(r["qtype"] == "absent/category" for r in absent)
        for rec in present:
            validate_record(rec)
            assert rec["qtype"] == "category" and rec["unique"] and len(rec["object_ids"]) == 1
            assert cat_of(re.search(r"the (.+?)(?: and stop next to it)?\.?$", rec["question"].lower()).group(1)) == \
                scene.instance(rec["object_ids"][0]).category
        cats = {i.category for i in scene.instances}
        for rec in absent:
            validate_record(rec)
            assert rec["task"] == "ground" and rec["answers"] == [ABSENT_ANSWER] and rec["object_ids"] == []
            kind = rec["qtype"].split("/", 1)[1]
            kinds.add(kind)
            text = rec["question"].lower()
            for template in NAV_Q:  # a third are phrased as navigation requests: the phrase inside
                m = re.fullmatch(re.escape(template.lower()).replace(re.escape("{ref}"), "(.+)"), text)
                text = m.group(1) if m else text
            said = mentioned_categories(text)
            if kind == "category":
                assert said and not said & cats, text
            elif kind == "novel":
                words = NOVEL_HELDOUT if scene.split == "test" else NOVEL_TRAIN
                assert any(re.search(rf"\b{w}\b", text) for w in words) and not said, text
            elif kind == "gibberish":
                assert not said, text
            elif kind == "attribute":
                (cat,) = said
                palette = {c for entry in CATALOG.values() for c in entry.colors} | set(COLOR_SYNONYMS)
                colors = {color_of(w) for w in text.split()} & palette
                colors |= {c for c, syn in COLOR_SYNONYMS.items() for w in syn if re.search(rf"\b{w}\b", text)}
                assert colors and not colors & {i.color for i in scene.instances if i.category == cat}, text
            else:
                assert kind == "relation" and len(said) == 2 and said <= cats, text
                m = re.fullmatch(r"the (.+?) (on|next to|near|beside) the (.+)", text)
                target, anchor = cat_of(m.group(1)), cat_of(m.group(3))
                group = [i for i in scene.instances if i.category == target]
                if m.group(2) == "on":
                    assert all(i.support_relation not in ("on", "in") or scene.instance(i.support_id).category != anchor
                               for i in group), text
                else:
                    anchors = [a for a in scene.instances if a.category == anchor]
                    assert min(gap_xy(i, a) for i in group for a in anchors) >= R.FAR_M, text
    assert kinds == {"category", "novel", "attribute", "relation", "gibberish"}
    assert not set(NOVEL_TRAIN) & set(NOVEL_HELDOUT)


def test_lookalike_absent_categories_stand_beside_their_lookalike(generated):
    """absent_lookalike=1: every absent category the scene has a look-alike of is asked for beside
    it (a tv where a monitor stands), the look-alike asked the same way when it is unique; the
    other records are the same as without it."""
    from llm3d_core.model.configuration_llm3d import is_absent
    from sim.datagen.absent import LOOKALIKES

    assert LOOKALIKES["tv"][0] == "monitor" and "shelf" in LOOKALIKES["fridge"]
    assert all(len(v) == 4 and k not in v for k, v in LOOKALIKES.items())
    hard = shown = 0
    for scene, grid, records in generated:
        like = generate_records(scene, DatagenConfig(seed=1, absent=20, absent_lookalike=1.0), grid=grid)
        assert like[:len(records)] == records
        tail = like[len(records):]
        cats = {i.category for i in scene.instances}
        for k, rec in enumerate(tail):
            if rec["qtype"] != "absent/category":
                continue
            assert is_absent(rec)
            (cat,) = mentioned_categories(rec["question"].lower())
            assert cat not in cats
            if set(LOOKALIKES[cat]) & cats:
                hard += 1
                companion = tail[k + 1]
                assert not is_absent(companion) and companion["qtype"] == "category"
                # the companion is the look-alike itself when the look-alike drawn is unique
                shown += scene.instance(companion["object_ids"][0]).category in LOOKALIKES[cat]
    assert hard >= 3 and shown >= hard / 2, (hard, shown)
