"""The reasoner's configuration and its error (llm3d_core.reasoner): one validated dataclass, fed
from launch/llm3d.yaml's `llm3d_reasoner: reasoner:` section by the node and the CLI alike."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llm3d_core.mapping.goals import GoalConfig

GROUNDING_MODES = ("model", "map", "both")
BOX_SOURCES = ("location_tokens", "mask", "auto")


class ReasonerError(ValueError):
    """A request cannot be answered (bad input, no map, no match); the message is for the user."""


class NothingMatchesError(ReasonerError):
    """The map holds nothing the request names: the absence head or a map check refused its target
    ("nothing in the map matches …"). `ask` says "there is no … here" for exactly these."""


@dataclass
class ReasonerConfig:
    """Behaviour of the reasoner core.

    Fields:
        grounding: 'model' (the 3D-LLM's box, matched to map objects), 'map' (the mapper's
            open-vocabulary query) or 'both' (scores averaged; 'map' evidence only exists for
            maps with text-aligned features, otherwise 'both' is 'model').
        box_source: where the model's box comes from: 'location_tokens' (the 3D-LLM answer's six
            tokens, copied by the object pointer when the checkpoint has one), 'mask' (UniVLG's
            mask head; needs a checkpoint with one) or 'auto' (the mask head when the checkpoint
            has one, else the location tokens).
        max_results: objects returned by ground when the request asks for 0.
        max_sessions: dialog sessions kept; beyond it the least recently used one is dropped.
        session_ttl_s: a session idle this long is dropped (0: never).
        max_question_chars: longer questions are refused before they reach the tokenizer.
        check_presence: before answering a question that presumes a thing ("what colour is the
            giraffe?", "how many X …", "is there X …", "where is X"), ask the absence head whether
            the map holds it and answer "there is no … here" when it does not (checkpoints with
            an absence head; llm3d_core.presence).
        map_evidence: make `ask` answers agree with the map's object list (llm3d_core.map_evidence):
            count and existence questions about a category the map labels confidently are answered
            from the map, scene captions lose the categories the map does not confidently hold and
            take its counts. The model alone answers from its training captions' prior (on a real
            kitchen it listed boxes and laptops the map did not hold). The map's answer comes
            before the absence head's; questions it cannot settle go to the head as before. No
            effect on maps without labelled objects (no text-aligned features) or on a single view.
        evidence_min_confidence: the label score (objects.assign_labels' softmax) from which a map
            object's label is evidence for map_evidence.
        unlabelled_absent_p: a thing of a category no map object is labelled with (though the
            mapper could label it) is refused from this absence-head probability on, below the
            head's own threshold (with map_evidence and check_presence; 1 turns it off). Calibrated
            on the val maps for the shipped head (scripts/calibrate_unlabelled.py): the lowest value
            that refuses at most 3 points more of the present categories than the head alone (the
            labels alone refused 58 % of them). `ground` and navigation do not use it: on the
            refusal benchmark it refused no absent target more and 4 % more present navigation ones.
        color_min_share: a request naming its target's colour ("the purple mug") is refused when
            the object it would get shows that colour on less than this share of its voxels
            (llm3d_core.colors; 0 turns the check off). On the held-out test maps no object showed
            its own colour below 0.18, and 84 % of the other colours were below 0.1.
        color_answer_min_share: "what colour is X" is answered from the map: X grounded as `ground`
            does, its voxels' colours named (llm3d_core.colors.dominant_color), when that colour
            covers at least this share of them; else the model answers (0 turns it off). The model
            alone named 15 % of the held-out test scenes' object colours right; the map's colours
            of the asked object name 80 % (docs/model.md).
        size_answer: "is X small, medium or large?" (any question offering two of the three size
            classes, llm3d_core.sizes) is answered from the map: X grounded as `ground` does, its
            box's largest side classed by size_limits_m; the model answers when X is refused or
            the map has no objects. The model alone got 70 % of the held-out test scenes' size
            questions and 42.5 % in the held-out phrasing (docs/model.md).
        size_limits_m: the largest box side (metres) below which an object is small, and below
            which it is medium; larger is large (the data generator's classes).
        compare_answer: "which is bigger / taller / closer to X, A or B?" (llm3d_core.comparisons)
            is answered from the map: A, B (and X) grounded as `ground` does, their boxes' volume,
            height or gap to X compared; the answer is the winner's category word. The model
            answers when one of them is refused or both are the same map object.
        relation_answer: "what is X on?", "what is on X?", "what is between A and B?" and "is A near
            B?" (llm3d_core.relation_questions) are answered from the map: the objects named are
            grounded as `ground` does, the relation read on the map's boxes, and the object found
            named by the object pointer (llm3d_core.naming; the first such question on a map pays
            one ground pass per catalog category, about 7 s on 2 CPU cores). The model answers when
            an object is refused or the boxes hold no such relation.
        affordance_answer: "where can I sit?", "what can I use to store food?"
            (llm3d_core.affordances) are answered from the map: of the categories that serve the
            verb, the one the object pointer names most map objects after (the naming passes as
            for relation_answer); "nothing" when no named object serves it.
        category_check_gap: a request naming a catalog category ("the microwave") is refused when
            the object it would get is, by the object pointer's names of the map's objects
            (llm3d_core.naming), another category whose request points at it this many logits
            harder than the named one's ("the monitor it would be looks like a monitor, not a
            microwave"). Calibrated on the val maps (docs/model.md); 0 turns it off. The first
            checked request on a map pays the naming (one ground pass per category, about 7 s on
            2 CPU cores).
        exists_answer: "is there a lamp?" (and "any chance there's a lamp", "is a lamp present",
            llm3d_core.presence) is answered "yes" when the presence check passes, i.e. when `ground`
            would return an object for it (with check_presence; "no" when it refuses, as before).
            False: the model answers what the check does not refuse.
        unknown_target: a request whose target names no kind of thing the model was trained to
            find (no catalog category or synonym, even allowing a typo, and no generic word like
            "thing"; llm3d_core.known_things) is refused before the model runs: "the skateboard"
            found a cabinet. `ask` answers existence, colour and count questions about it with
            "there is no …". False: the model and its absence head decide, as for any request.
        correct_typos: a typing slip in a category or colour name (two letters swapped, or in
            a longer word one dropped or added: "latpop", "teelvision") is read as the name in
            every question, query and instruction before the model sees it
            (llm3d_core.known_things.correct_typos).
        relation_check: a request stating its target's support or proximity ("the cabinet on the
            desk", "the chair next to the microwave") is checked on the map's boxes
            (llm3d_core.spatial): the anchor is grounded on its own, and when the object the request
            would get does not stand in that relation to it, the pointer's next likeliest objects are
            tried; the request is refused when none does.
        relation_near_m: the largest horizontal gap (metres) between two boxes called "near",
            "next to", "beside" or "close to" (the data generator says near within 0.5 m and far
            from 1.5 m).
        goals: how navigation goals are chosen (llm3d_core.mapping.goals.GoalConfig).
    """

    grounding: str = "both"
    box_source: str = "location_tokens"
    max_results: int = 5
    max_sessions: int = 16
    session_ttl_s: float = 600.0
    max_question_chars: int = 2000
    check_presence: bool = True
    map_evidence: bool = True
    evidence_min_confidence: float = 0.5
    unlabelled_absent_p: float = 0.35
    color_min_share: float = 0.1
    color_answer_min_share: float = 0.5
    size_answer: bool = True
    size_limits_m: tuple[float, float] = (0.35, 1.0)
    compare_answer: bool = True
    relation_answer: bool = True
    affordance_answer: bool = True
    category_check_gap: float = 5.0
    unknown_target: bool = True
    correct_typos: bool = True
    exists_answer: bool = True
    relation_check: bool = True
    relation_near_m: float = 1.0
    goals: GoalConfig = field(default_factory=GoalConfig)

    def __post_init__(self) -> None:
        if self.grounding not in GROUNDING_MODES:
            raise ValueError(f"grounding must be one of {GROUNDING_MODES}, got {self.grounding!r}")
        if self.box_source not in BOX_SOURCES:
            raise ValueError(f"box_source must be one of {BOX_SOURCES}, got {self.box_source!r}")
        for name in ("max_results", "max_sessions", "max_question_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("evidence_min_confidence", "unlabelled_absent_p", "color_min_share", "color_answer_min_share"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not (math.isfinite(self.session_ttl_s) and self.session_ttl_s >= 0):
            raise ValueError(f"session_ttl_s must be a finite number >= 0, got {self.session_ttl_s!r}")
        limits = self.size_limits_m
        if not (isinstance(limits, (list, tuple)) and len(limits) == 2
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in limits) and 0 < limits[0] < limits[1]):
            raise ValueError(f"size_limits_m must be two sizes in metres, small < medium, got {limits!r}")
        self.size_limits_m = (float(limits[0]), float(limits[1]))
        if not (isinstance(self.category_check_gap, (int, float)) and 0 <= self.category_check_gap < 1e6):
            raise ValueError(f"category_check_gap must be a logit gap >= 0 (0 = off), got {self.category_check_gap!r}")
        if not (isinstance(self.relation_near_m, (int, float)) and 0 < self.relation_near_m < 100):
            raise ValueError(f"relation_near_m must be a distance in metres in (0, 100), got {self.relation_near_m!r}")
