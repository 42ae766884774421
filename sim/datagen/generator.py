"""Template-driven 3D-language records of one scene: captions, QA, grounding, plans, navigation, dialog.

This is 3D-LLM's data generation (Hong et al. 2023, section 3.1) made exact: instead of prompting
a language model with the scene's boxes, fixed templates are filled from the scene graph, so every
answer is correct by construction (and `tests/sim/test_datagen.py` re-checks it). Task formats:
- caption: Scan2Cap-style object captions (Chen et al. 2021; the object is given by its box) and
  scene captions;
- qa: ScanQA-style (Azuma et al. 2022) questions on attributes, counts, existence, spatial
  relations (supports, near, between, left/right from a viewpoint), comparisons and affordances;
- ground: referring expressions like ScanRefer (Chen et al. 2020) and Sr3D (Achlioptas et al.
  2020): "unique" when the target's category has no other instance, else disambiguated from its
  same-category distractors by colour, support, a nearby anchor or closest/farthest;
- plan: multi-step task decompositions that only name objects of this scene;
- navigate: ObjectNav-style object goals and relational goals with a navigable goal point near the
  object;
- dialog: 2-3 turns on one object where later turns refer back with "it";
- absent targets (`DatagenConfig.absent`): ground records whose target the scene does not hold (a
  category it lacks, a thing no scene holds, a made-up word, a present category in a colour none
  of its instances has, or a relation none satisfies), answered "not here" with no object; the
  abstention head learns from them (model/absence.py). `absent_lookalike` makes the absent
  categories hard ones: a category the scene lacks whose look-alike it holds.
Record schema: sim.datagen.schema.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sim.config import AgentConfig
from sim.datagen import language as L
from sim.datagen import relations as R
from sim.datagen.absent import absent_records
from sim.datagen.nav_goals import goal_cells
from sim.datagen.plans import RECIPES, PlanContext
from sim.datagen.schema import TASKS
from sim.navmesh import NavGrid, build_navgrid
from sim.scenes.catalog import CATALOG
from sim.scenes.scene import Instance, Scene

ABSENT_STREAM = 7  # third key of the absent records' random stream
PHRASINGS = ("templates", "heldout", "varied")

__all__ = ["TASKS", "DatagenConfig", "SceneFacts", "generate_records"]


@dataclass
class DatagenConfig:
    """How many records of each kind one scene yields, and the generator's seed."""

    seed: int = 0  # generator seed; records are a function of (scene, seed)
    object_captions: int = 6  # object captions per scene (plus one scene caption)
    qa_per_type: int = 4  # QA records per fine type (color, count, ...) per scene
    ground: int = 16  # referring expressions per scene
    plans: int = 6  # task plans per scene (at most one per recipe)
    navigate: int = 10  # navigation instructions per scene
    dialogs: int = 4  # multi-turn dialogs per scene
    goal_radius: float = 1.0  # metres: goal points lie within this horizontal distance of the object box
    absent: int = 0  # referring expressions per scene whose target is absent (own random stream: the
    # other records stay as they were without them)
    # share of the absent categories chosen among those with a look-alike in the scene (a tv where a
    # monitor stands), asked for with a colour the look-alike has; 0 keeps the absent records as before
    absent_lookalike: float = 0.0
    # templates: the training grammar | heldout: the same records asked in a grammar training never
    # sees, with casing/politeness/typo noise (language.HELDOUT_TEMPLATES) | varied: the same records,
    # half asked in a wider training grammar, with training noise (language.VARIED_TEMPLATES)
    phrasing: str = "templates"

    def __post_init__(self) -> None:
        for name in ("object_captions", "qa_per_type", "ground", "plans", "navigate", "dialogs", "absent"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"DatagenConfig.{name} must be an integer >= 0, got {value!r}")
        if not 0.0 <= self.absent_lookalike <= 1.0:
            raise ValueError(f"DatagenConfig.absent_lookalike must be in [0, 1], got {self.absent_lookalike!r}")
        if self.phrasing not in PHRASINGS:
            raise ValueError(f"DatagenConfig.phrasing must be one of {PHRASINGS}, got {self.phrasing!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"DatagenConfig.seed must be an integer >= 0, got {self.seed!r}")
        if not 0.2 <= self.goal_radius <= 3.0:
            raise ValueError(f"DatagenConfig.goal_radius must be in [0.2, 3] metres, got {self.goal_radius!r}")


@dataclass(frozen=True)
class Ref:
    """A noun phrase that picks out exactly one instance among the scene's instances."""

    text: str  # "the red chair", "the mug on the shelf"
    kind: str  # category | attribute | support | near | closest | farthest


class SceneFacts:
    """Indexes of the scene graph and the referring expressions of its instances."""

    def __init__(self, scene: Scene, phraser: L.Phraser) -> None:
        self.scene, self.ph = scene, phraser
        self.insts = sorted(scene.instances, key=lambda i: i.id)
        self.by_id = {i.id: i for i in self.insts}
        self.by_cat: dict[str, list[Instance]] = {}
        for inst in self.insts:
            self.by_cat.setdefault(inst.category, []).append(inst)
        self.children: dict[int, list[Instance]] = {i.id: [] for i in self.insts}
        for inst in self.insts:
            if inst.support_relation in ("on", "in") and inst.support_id in self.children:
                self.children[inst.support_id].append(inst)

    def support(self, inst: Instance) -> Instance | None:
        return self.by_id.get(inst.support_id) if inst.support_relation in ("on", "in") else None

    def is_unique(self, inst: Instance) -> bool:
        return len(self.by_cat[inst.category]) == 1

    def refs(self, inst: Instance) -> list[Ref]:
        """Every unambiguous phrase for `inst` this generator knows (see module docstring)."""
        ph, cat = self.ph, inst.category
        name = ph.name(cat)
        others = [o for o in self.by_cat[cat] if o.id != inst.id]
        out: list[Ref] = []
        if not others:
            out.append(Ref(f"the {name}", "category"))
        if all(o.color != inst.color for o in others):
            c = ph.color(inst.color)
            out.append(Ref(ph.pick((f"the {c} {name}", f"the {name} that is {c}")), "attribute"))
        sup = self.support(inst)
        if sup is not None and all(not (o.support_relation == inst.support_relation and self.support(o) is not None
                                         and self.support(o).category == sup.category) for o in others):
            rel = inst.support_relation
            verb = ph.pick(("", "that is ", "sitting ")) if rel == "on" else ph.pick(("", "that is ", "stored "))
            out.append(Ref(f"the {name} {verb}{rel} the {ph.name(sup.category)}", "support"))
        for anchor_cat in sorted(self.by_cat):
            if anchor_cat == cat or (sup is not None and anchor_cat == sup.category):
                continue
            anchors = self.by_cat[anchor_cat]
            near = any(R.xy_gap(inst, a) <= R.NEAR_M and a.support_id != inst.id for a in anchors)
            if near and all(min(R.xy_gap(o, a) for a in anchors) >= R.FAR_M for o in others):
                word = ph.pick(("next to", "near", "beside", "close to"))
                out.append(Ref(f"the {name} {word} the {ph.name(anchor_cat)}", "near"))
                break
        if others:
            for anchor in self.insts:
                if anchor.category == cat or not self.is_unique(anchor):
                    continue
                d = {o.id: R.box_gap(o, anchor) for o in self.by_cat[cat]}
                ranked = sorted(d, key=d.get)
                if d[ranked[1]] - d[ranked[0]] >= 1.0 and ranked[0] == inst.id:
                    out.append(Ref(f"the {name} {ph.pick(('closest to', 'nearest to'))} the {ph.name(anchor.category)}",
                                   "closest"))
                    break
                if d[ranked[-1]] - d[ranked[-2]] >= 1.0 and ranked[-1] == inst.id:
                    out.append(Ref(f"the {name} farthest from the {ph.name(anchor.category)}", "farthest"))
                    break
        return out

    def simple_ref(self, inst: Instance) -> Ref | None:
        """A phrase by category or colour only: pairwise questions nest two phrases, and nested relations read ambiguously."""
        return self.ref(inst, exclude=("support", "near", "closest", "farthest"))

    def ref(self, inst: Instance, exclude: tuple[str, ...] = ()) -> Ref | None:
        """One phrase for `inst` (random among its kinds, minus `exclude`), or None."""
        refs = [r for r in self.refs(inst) if r.kind not in exclude]
        return self.ph.pick(refs) if refs else None


def _box(inst: Instance) -> list[float]:
    return [round(float(v), 4) for v in (*inst.box_min, *inst.box_max)]


class RecordMaker:
    """Builds records of one scene with numbered ids per task."""

    def __init__(self, scene: Scene, split: str) -> None:
        self.scene, self.split = scene, split
        self.counts: Counter[str] = Counter()

    def __call__(self, task: str, qtype: str, question: str, answers: list[str], objects: list[Instance],
                 **extra: object) -> dict:
        n = self.counts[task]
        self.counts[task] += 1
        rec = {"id": f"{self.scene.scene_id}/{task}/{n}", "scene_id": self.scene.scene_id, "split": self.split,
               "task": task, "question": question, "answers": answers, "object_ids": [o.id for o in objects],
               "boxes": [_box(o) for o in objects], "qtype": qtype}
        rec.update(extra)
        return rec


def scene_key(scene: Scene) -> int:
    """The scene seed when known, else a hash of its id."""
    return scene.seed if scene.seed is not None else zlib.crc32(scene.scene_id.encode())


def scene_rng(scene: Scene, seed: int) -> np.random.Generator:
    """The generator's random stream for (scene, seed)."""
    return np.random.default_rng([int(scene_key(scene)), int(seed)])


def generate_records(scene: Scene, config: DatagenConfig | None = None, grid: NavGrid | None = None,
                     agent: AgentConfig | None = None) -> list[dict]:
    """All records of one scene, in task order; `grid` (default: built from the mesh for `agent`)
    places navigation goals."""
    config = config or DatagenConfig()
    rng = scene_rng(scene, config.seed)
    phraser = L.scene_phraser(rng, scene_key(scene), config.seed, config.phrasing)
    facts = SceneFacts(scene, phraser)
    make = RecordMaker(scene, scene.split or "")
    if not facts.insts:
        raise ValueError(f"scene {scene.scene_id} has no annotated instances to generate language from")
    grid = grid or build_navgrid(scene.mesh(), agent or AgentConfig())
    out: list[dict] = []
    out += _captions(facts, make, config)
    out += _qa(facts, make, config)
    out += _ground(facts, make, config)
    out += _plans(facts, make, config)
    out += _navigate(facts, make, config, grid)
    out += _dialogs(facts, make, config)
    if config.absent:
        absent_rng = np.random.default_rng([int(scene_key(scene)), int(config.seed), ABSENT_STREAM])
        absent_facts = SceneFacts(scene, L.Phraser(absent_rng, phraser.heldout, phraser.varied))
        out += absent_records(absent_facts, make, config)
    return out


def _sample(rng: np.random.Generator, items: list, k: int) -> list:
    """Up to k items in a random (deterministic) order."""
    if len(items) <= k:
        order = rng.permutation(len(items))
    else:
        order = rng.choice(len(items), size=k, replace=False)
    return [items[int(i)] for i in order]


# ----------------------------------------------------------------------------- captions
def object_caption(facts: SceneFacts, inst: Instance) -> str:
    """"A red mug on the table, next to a laptop." from colour, category, support and the nearest object."""
    ph = facts.ph
    sup = facts.support(inst)
    where = (f"{inst.support_relation} {L.article(L.display(sup.category))}" if sup is not None
             else "standing on the floor")
    near = [o for o in facts.insts if o.id not in (inst.id, inst.support_id) and o.support_id != inst.id
            and R.xy_gap(inst, o) <= R.NEAR_M]
    text = f"{L.article(inst.color + ' ' + L.display(inst.category)).capitalize()} {where}"
    if near:
        closest = min(near, key=lambda o: (R.box_gap(inst, o), o.id))
        text += f", {ph.pick(('next to', 'near'))} {L.article(L.display(closest.category))}"
    return text + "."


def scene_caption(facts: SceneFacts) -> str:
    """Rooms, object counts (most frequent first) and up to two support facts."""
    counts = Counter(i.category for i in facts.insts)
    parts = [L.count_phrase(n, L.display(c)) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rooms = len(facts.scene.rooms) or 1
    text = f"An indoor scene with {L.count_phrase(rooms, 'room')}. It contains {', '.join(parts[:-1])}"
    text += f" and {parts[-1]}." if len(parts) > 1 else f"{parts[0]}."
    facts_on = [i for i in facts.insts if facts.support(i) is not None][:2]
    for inst in facts_on:
        sup = facts.support(inst)
        text += f" {L.article(inst.color + ' ' + L.display(inst.category)).capitalize()} is {inst.support_relation} " \
                f"{L.article(L.display(sup.category))}."
    return text


def _captions(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig) -> list[dict]:
    ph = facts.ph
    out = [make("caption", "scene", ph.fill(L.CAPTION_SCENE_Q), [scene_caption(facts)], [])]
    for inst in _sample(ph.rng, facts.insts, cfg.object_captions):
        out.append(make("caption", "object", ph.fill(L.CAPTION_OBJECT_Q), [object_caption(facts, inst)], [inst]))
    return out


# ----------------------------------------------------------------------------- question answering
def _qa(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig) -> list[dict]:
    """QA records, `qa_per_type` per pool; relations and comparisons have one pool per kind, and
    "no" answers (absent objects, absent affordances) get their own pool so they do not crowd out "yes"."""
    ph, rng = facts.ph, facts.ph.rng
    pools: dict[str, list] = {}

    def add(pool: str, build) -> None:
        pools.setdefault(pool, []).append(build)

    for inst in facts.insts:
        ref = facts.ref(inst, exclude=("attribute",))
        if ref:
            add("color", lambda i=inst, r=ref: make("qa", "color", ph.fill(L.COLOR_Q, ref=r.text), L.colors(i.color), [i]))
        size = R.size_class(inst)
        ref = facts.ref(inst)
        if size and ref:
            add("size", lambda i=inst, r=ref, s=size: make("qa", "size", ph.fill(L.SIZE_Q, ref=r.text), [s], [i]))
        sup = facts.support(inst)
        if sup is not None and len(facts.children[sup.id]) == 1:
            sref = facts.ref(sup, exclude=("near", "closest", "farthest"))  # these may name the object asked for
            if sref:  # "what is on the nightstand?" has one answer only when it holds one object
                add("category", lambda i=inst, r=sref: make(
                    "qa", "category", ph.fill(L.ON_TOP_Q, ref=r.text), L.names(i.category), [i]))
        if sup is not None:
            ref = facts.ref(inst, exclude=("support",))
            if ref:
                add("relation/support", lambda i=inst, s=sup, r=ref: make(
                    "qa", "relation", ph.fill(L.SUPPORT_Q, ref=r.text),
                    [f"{i.support_relation} the {L.display(s.category)}", L.display(s.category)], [i, s]))
    for cat, group in sorted(facts.by_cat.items()):
        noun = ph.name(cat)
        add("count", lambda g=group, n=noun: make("qa", "count", ph.fill(L.COUNT_Q, things=L.plural(n)),
                                                  L.number_answers(len(g)), g))
        add("exists", lambda g=group, n=noun: make("qa", "exists", ph.fill(L.EXISTS_Q, a_thing=L.article(n)), ["yes"], g[:1]))
        absent = [c for c in CATALOG[cat].colors if all(i.color != c for i in group)]
        if absent:
            col = absent[int(rng.integers(len(absent)))]
            add("exists/no", lambda n=noun, c=col: make("qa", "exists", ph.fill(
                L.EXISTS_Q, a_thing=L.article(f"{ph.color(c)} {n}")), ["no"], []))
    for cat in sorted(set(CATALOG) - set(facts.by_cat)):
        add("exists/no", lambda c=cat: make("qa", "exists", ph.fill(L.EXISTS_Q, a_thing=L.article(ph.name(c))), ["no"], []))
    for sup_id, kids in facts.children.items():
        sref = facts.ref(facts.by_id[sup_id], exclude=("near", "closest", "farthest")) if kids else None
        if sref:
            add("count", lambda k=kids, r=sref: make("qa", "count", ph.fill(L.COUNT_ON_Q, ref=r.text),
                                                     L.number_answers(len(k)), k))
    _relations(facts, make, add)
    _comparisons(facts, make, add)
    _affordances(facts, make, add)
    out = []
    for name in sorted(pools):  # sorted: the record order must not depend on dict insertion details
        k = cfg.qa_per_type if not name.endswith("/no") else max(1, cfg.qa_per_type // 2) if cfg.qa_per_type else 0
        out += [build() for build in _sample(rng, pools[name], k)]
    return out


def _relations(facts: SceneFacts, make: RecordMaker, add) -> None:
    ph = facts.ph
    named = [(i, r) for i in facts.insts if (r := facts.simple_ref(i)) is not None]
    for a, ra in named:  # near / not near, same room, neither supports the other
        for b, rb in named:
            if a.id >= b.id or a.room != b.room or a.support_id == b.id or b.support_id == a.id:
                continue
            gap = R.xy_gap(a, b)
            if gap <= R.NEAR_M or gap >= R.FAR_M:
                add("relation/near", lambda a=a, b=b, ra=ra, rb=rb, yes=gap <= R.NEAR_M: make(
                    "qa", "relation", ph.fill(L.NEAR_Q, a=ra.text, b=rb.text), ["yes" if yes else "no"], [a, b]))
    floor = [(i, r) for i, r in named if i.support_relation == "floor"]
    for a, ra in floor:  # between: exactly one object of the scene lies between a and b
        for b, rb in floor:
            if a.id >= b.id:
                continue
            mids = [t for t in facts.insts if t.id not in (a.id, b.id) and t.support_id not in (a.id, b.id)
                    and R.is_between(t, a, b)]
            if len(mids) == 1:
                t = mids[0]
                add("relation/between", lambda a=a, b=b, t=t, ra=ra, rb=rb: make(
                    "qa", "relation", ph.fill(L.BETWEEN_Q, a=ra.text, b=rb.text), L.names(t.category), [t, a, b]))
    for anchor, ranchor in floor:  # left / right from the viewpoint in front of an anchor
        for t, rt in named:
            if t.id == anchor.id or t.support_id == anchor.id or t.room != anchor.room:
                continue
            side = R.left_or_right(anchor, t)
            if side:
                add("relation/left_right", lambda t=t, a=anchor, rt=rt, ra=ranchor, s=side: make(
                    "qa", "relation", ph.fill(L.VIEW_LR_Q, anchor=ra.text, ref=rt.text), [s], [t, a]))


def _comparisons(facts: SceneFacts, make: RecordMaker, add) -> None:
    ph = facts.ph
    named = [(i, r) for i in facts.insts if (r := facts.simple_ref(i)) is not None]
    for a, ra in named:
        for b, rb in named:
            if a.id >= b.id:
                continue
            va, vb = R.volume(a), R.volume(b)
            if max(va, vb) >= 1.5 * min(va, vb):
                big = a if va > vb else b
                add("compare/bigger", lambda a=a, b=b, ra=ra, rb=rb, w=big: make(
                    "qa", "compare", ph.fill(L.BIGGER_Q, a=ra.text, b=rb.text), L.names(w.category), [w, a if w is b else b]))
            ha, hb = float(a.size[2]), float(b.size[2])
            if a.category != b.category and abs(ha - hb) >= 0.15 and max(ha, hb) >= 1.2 * min(ha, hb):
                tall = a if ha > hb else b
                add("compare/taller", lambda a=a, b=b, ra=ra, rb=rb, w=tall: make(
                    "qa", "compare", ph.fill(L.TALLER_Q, a=ra.text, b=rb.text), L.names(w.category), [w, a if w is b else b]))
    for x, rx in named:  # closer to x: the two candidates differ in category so the answer is a category name
        cands = [(i, r) for i, r in named if i.id != x.id and i.category != x.category]
        if len(cands) < 2:
            continue
        i, j = ph.rng.choice(len(cands), size=2, replace=False)
        (a, ra), (b, rb) = cands[int(i)], cands[int(j)]
        if a.category == b.category:
            continue
        da, db = R.box_gap(a, x), R.box_gap(b, x)
        if abs(da - db) >= 1.0:
            w = a if da < db else b
            add("compare/closer", lambda a=a, b=b, ra=ra, rb=rb, rx=rx, w=w: make(
                "qa", "compare", ph.fill(L.CLOSER_Q, a=ra.text, b=rb.text, x=rx.text), L.names(w.category),
                [w, a if w is b else b]))


def affordance_categories(facts: SceneFacts, verb: str) -> list[str]:
    """Categories of this scene that afford `verb`, most instances first."""
    cats = [c for c in facts.by_cat if verb in CATALOG[c].affordances]
    return sorted(cats, key=lambda c: (-len(facts.by_cat[c]), c))


def _affordances(facts: SceneFacts, make: RecordMaker, add) -> None:
    ph = facts.ph
    verbs = sorted({v for c in CATALOG.values() for v in c.affordances})
    for verb in verbs:
        cats = affordance_categories(facts, verb)
        objs = [i for c in cats for i in facts.by_cat[c]]
        answers = [L.display(c) for c in cats] or ["nothing", "none"]
        add("affordance" if cats else "affordance/no",
            lambda v=verb, a=answers, o=objs: make("qa", "affordance", ph.fill(L.AFFORD_Q, verb=v), a, o))


# ----------------------------------------------------------------------------- grounding
def _ground(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig) -> list[dict]:
    """Half unique targets, half targets with same-category distractors where the scene allows."""
    ph = facts.ph
    unique = [i for i in facts.insts if facts.is_unique(i)]
    multi = [i for i in facts.insts if not facts.is_unique(i)]
    picked = _sample(ph.rng, multi, cfg.ground - min(len(unique), cfg.ground // 2))
    picked += _sample(ph.rng, unique, cfg.ground - len(picked))
    out = []
    for inst in picked:
        refs = facts.refs(inst)
        relational = [r for r in refs if r.kind in ("support", "near", "closest", "farthest")]
        if relational and ph.rng.random() < 0.7:  # Sr3D-style: distractors told apart by a relation, mostly
            refs = relational
        ref = ph.pick(refs) if refs else None
        if ref is not None:
            out.append(make("ground", ref.kind, ph.request(ref.text), L.names(inst.category), [inst],
                            unique=facts.is_unique(inst)))
    return out


# ----------------------------------------------------------------------------- plans
def _plans(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig) -> list[dict]:
    ph = facts.ph
    ctx = PlanContext(facts)
    out = []
    for recipe in _sample(ph.rng, list(RECIPES), len(RECIPES)):
        if len(out) >= cfg.plans:
            break
        plan = recipe(ctx)
        if plan is None:
            continue
        goal, steps, objects = plan
        text = " ".join(f"{k + 1}. {s}" for k, s in enumerate(steps))
        out.append(make("plan", "plan", ph.fill(L.PLAN_Q, goal=goal), [text], objects, steps=steps))
    return out


# ----------------------------------------------------------------------------- navigation
def _navigate(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig, grid: NavGrid) -> list[dict]:
    ph = facts.ph
    try:
        region = grid.largest_component()
    except ValueError:
        return []
    out = []
    for inst in _sample(ph.rng, facts.insts, len(facts.insts)):
        if len(out) >= cfg.navigate:
            break
        ref = facts.ref(inst)
        cells = goal_cells(grid, inst, cfg.goal_radius, region)
        if ref is None or len(cells) == 0:
            continue
        x, y = grid.cell_to_world(cells[int(ph.rng.integers(len(cells)))])[0]
        qtype = "object_goal" if ref.kind in ("category", "attribute") else "relational_goal"
        out.append(make("navigate", qtype, ph.fill(L.NAV_Q, ref=ref.text), L.names(inst.category), [inst],
                        goal=[round(float(x), 4), round(float(y), 4), 0.0]))
    return out


# ----------------------------------------------------------------------------- dialog
def _dialogs(facts: SceneFacts, make: RecordMaker, cfg: DatagenConfig) -> list[dict]:
    """Turn 1 names an object, later turns say "it": colour, support, size; qtype is the last turn's type."""
    ph = facts.ph
    out = []
    for inst in _sample(ph.rng, facts.insts, len(facts.insts)):
        if len(out) >= cfg.dialogs:
            break
        ref = facts.ref(inst, exclude=("attribute",))
        if ref is None:
            continue
        turns = [{"question": ph.fill(L.EXISTS_Q, a_thing=L.article(ph.name(inst.category))), "answers": ["yes"]}]
        if ref.kind != "category":  # several of them: the second turn picks one out
            turns.append({"question": ph.pick((f"Look at {ref.text}. What is it?", f"Consider {ref.text}. What is it?")),
                          "answers": L.names(inst.category)})
        sup = facts.support(inst)
        size = R.size_class(inst)
        follow = [{"question": ph.pick(("What colour is it?", "What color is it?", "And its colour?")),
                   "answers": L.colors(inst.color), "qtype": "color"}]
        if sup is not None and ref.kind != "support":
            follow.append({"question": ph.pick(("What is it on?", "Where is it placed?")),
                           "answers": [f"{inst.support_relation} the {L.display(sup.category)}", L.display(sup.category)],
                           "qtype": "relation"})
        if size:
            follow.append({"question": ph.pick(("Is it small, medium or large?", "How big is it: small, medium or large?")),
                           "answers": [size], "qtype": "size"})
        turns += _sample(ph.rng, follow, 3 - len(turns))
        if len(turns) < 2:
            continue
        last = turns.pop()
        turns = [{"question": t["question"], "answers": t["answers"]} for t in turns]
        out.append(make("dialog", last["qtype"], last["question"], last["answers"], [inst], turns=turns))
    return out
