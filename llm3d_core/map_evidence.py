"""Answers that follow the map's evidence: category mentions, a hallucination rate, and the layer
that makes the reasoner's counts and scene captions agree with the map's objects.

The 3D-LLM (Hong et al. 2023, sec. 3.4) writes its answers from a scene prefix; trained on
generated scenes, it falls back on the language prior of its training captions when a map looks
unlike them: on a real 7-Scenes kitchen it answered "It contains three boxes, three laptops, three
mugs, …", categories and counts the map does not hold. The map itself keeps an explicit object
list with labels (llm3d_core.mapping.objects), and 3D-LLM-style systems that read an object list
(Chat-Scene, Huang et al. 2024, sec. 3) can quote it. This module checks answers against that list:

- `mentioned_categories`: the categories an answer names, by word, singular or plural, synonyms
  folded onto one category (llm3d_core.vocabulary.SYNONYMS, the generator's names);
- `hallucination_rate`: the CHAIR_i measure of object hallucination in captioning (Rohrbach et al.
  2018, "Object Hallucination in Image Captioning", sec. 2) with the map's objects as the ground
  truth (definition at `hallucination_stats`);
- `MapEvidence`: the layer `Reasoner.ask` applies (ReasonerConfig.map_evidence): count and
  existence questions about a category the map holds confidently are answered from the map's
  count, and scene captions lose the categories the map does not hold and take its counts.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from llm3d_core.presence import presumed_thing
from llm3d_core.vocabulary import NUMBER_WORDS, SYNONYMS, count_phrase, plural

Vocabulary = Mapping[str, Sequence[str]]  # category -> names, canonical first

# Scene-caption requests (the generator's CAPTION_SCENE_Q and everyday variants). Object captions
# ("describe the highlighted object") are not scene captions: rebuilding one from the map's
# object list would describe the wrong thing.
_CAPTION_Q = re.compile(r"^(?!.*\b(?:object|highlighted|box)\b)"
                        r".*(?:\b(?:describe|summari[sz]e|summary|caption|overview)\b"
                        r"|\bwhat (?:is|do you see|can you see) (?:in|around)\b|\bwhat do you see\b)")
# The generator's scene-caption shape; a model that answers any question with it is captioning.
_CAPTION_A = re.compile(r"^\s*an? (?:indoor )?scene\b|\bit contains\b", re.IGNORECASE)
# Where a list of things starts in a caption sentence.
_LIST_LEAD = re.compile(r"\b(?:contains|holds|has|have|there (?:is|are)|i (?:can )?see|you can see|with)\s+",
                        re.IGNORECASE)
_ITEM_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
_COUNT_WORD = "|".join(NUMBER_WORDS)
_COUNTED_ITEM = re.compile(rf"^(?:(?P<n>\d+|{_COUNT_WORD}|a|an)\s+)?(?P<rest>.+)$", re.IGNORECASE)


def build_vocabulary(labels: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """The generator's categories (SYNONYMS) plus a map's label vocabulary.

    A label that is a name of a generator category joins it (the mapper's "desk" is the
    generator's table, "cup" its mug); any other label is a category of its own ("door").
    Categories are keyed by their canonical name ("trash can", not "trash_can")."""
    vocab: dict[str, tuple[str, ...]] = {names[0]: tuple(names) for names in SYNONYMS.values()}
    known = {name for names in vocab.values() for name in names}
    for label in labels:
        label = _label_key(label)
        if label and label not in known:
            vocab[label] = (label,)
            known.add(label)
    return vocab


def _as_vocabulary(vocabulary: Vocabulary | Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if isinstance(vocabulary, Mapping):
        return tuple((str(c), tuple(str(n) for n in names)) for c, names in vocabulary.items())
    return tuple((str(name), (str(name),)) for name in vocabulary)


@lru_cache(maxsize=8)
def _matcher(vocab: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """One regex over all names and plurals, longest first (so "microwave oven" is the microwave,
    not an oven), and each form's (category, singular name)."""
    forms: dict[str, tuple[str, str]] = {}
    for category, names in vocab:
        for name in names:
            name = name.lower()
            forms.setdefault(name, (category, name))
            forms.setdefault(plural(name), (category, name))
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True) if f)
    return re.compile(rf"\b(?:{alternation})\b" if alternation else r"(?!)", re.IGNORECASE), forms


@dataclass(frozen=True)
class Mention:
    """One category named in a text: text[start:end] is `category` by its name `name` (singular)."""

    start: int
    end: int
    category: str
    name: str


def find_mentions(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[Mention]:
    """Every category mention in `text`, in order (whole words, case-insensitive, plural or singular)."""
    rx, forms = _matcher(_as_vocabulary(vocabulary))
    return [Mention(m.start(), m.end(), *forms[m.group(0).lower()]) for m in rx.finditer(text)]


def mentioned_categories(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[str]:
    """The categories `text` names, each once, in order of first mention.

    vocabulary: category -> names (canonical first; e.g. `build_vocabulary()`), or plain names,
    each its own category. "Two cupboards and a seat" -> ["cabinet", "chair"] with the default."""
    return list(dict.fromkeys(m.category for m in find_mentions(text, vocabulary)))


_NEGATED = re.compile(r"\b(?:no|not|zero|without|nor)\s+(?:(?:a|an|any|the|single)\s+)?$", re.IGNORECASE)


def claimed_categories(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[str]:
    """`mentioned_categories` without negated mentions: "There is no giraffe here." claims none."""
    return list(dict.fromkeys(m.category for m in find_mentions(text, vocabulary)
                              if not _NEGATED.search(text[max(0, m.start - 24):m.start])))


def claim_text(question: str, answer: str) -> str:
    """What an answer claims, as text to find categories in: a count answer > 0 or a "yes" to
    "is there an X" claims X ("3" to "how many boxes" -> "3 boxes"); other answers claim what they say."""
    presumed = presumed_thing(question)
    if presumed is not None and presumed.kind == "count" and (parse_count(answer) or 0) > 0:
        return f"{answer} ({presumed.noun})"
    if presumed is not None and presumed.kind == "exists" and re.match(r"\s*yes\b", answer, re.IGNORECASE):
        return f"{answer} ({presumed.noun})"
    return answer


# ---------------------------------------------------------------------- the measure
@dataclass(frozen=True)
class HallucinationStats:
    """Counts behind the hallucination rate (see `hallucination_stats`)."""

    answers: int  # answers scored
    mentioned: int  # (answer, category) pairs: categories named, each once per answer
    hallucinated: int  # of which the answer's map holds no object
    answers_hallucinating: int  # answers naming at least one such category

    @property
    def rate(self) -> float:
        """CHAIR_i: hallucinated / mentioned (0 when nothing was mentioned)."""
        return self.hallucinated / self.mentioned if self.mentioned else 0.0

    @property
    def answer_rate(self) -> float:
        """CHAIR_s: answers naming an absent category / answers (0 without answers)."""
        return self.answers_hallucinating / self.answers if self.answers else 0.0


def hallucination_stats(answers_with_maps: Iterable[tuple[str, Collection[str]]],
                        vocabulary: Vocabulary | Iterable[str] | None = None) -> HallucinationStats:
    """Object hallucination of answers against their maps (CHAIR, Rohrbach et al. 2018, sec. 2).

    answers_with_maps: (answer text, the categories its map holds). The categories are those of
    the map objects' labels, folded like the mentions (`MapEvidence.held`); any label confidence
    counts as holding, so an answer is only charged for categories no map object has at all.
    Each category an answer names (`claimed_categories`: negated mentions such as "there is no
    box here" claim nothing) counts once for that answer; score count and yes/no answers through
    `claim_text`, which adds the category the question asks about. The rate is the share of those
    (answer, category) pairs whose category the answer's map does not hold (CHAIR_i); answers
    naming no category add nothing to it. vocabulary: default `build_vocabulary()` plus every
    category the maps hold."""
    pairs = [(text, {c.lower() for c in held}) for text, held in answers_with_maps]
    if vocabulary is None:
        vocabulary = build_vocabulary(c for _, held in pairs for c in held)
    mentioned = hallucinated = hallucinating = 0
    for text, held in pairs:
        named = claimed_categories(text, vocabulary)
        absent = [c for c in named if c not in held]
        mentioned += len(named)
        hallucinated += len(absent)
        hallucinating += bool(absent)
    return HallucinationStats(len(pairs), mentioned, hallucinated, hallucinating)


def hallucination_rate(answers_with_maps: Iterable[tuple[str, Collection[str]]],
                       vocabulary: Vocabulary | Iterable[str] | None = None) -> float:
    """CHAIR_i of the answers against their maps: `hallucination_stats(...).rate`."""
    return hallucination_stats(answers_with_maps, vocabulary).rate


def parse_count(answer: str) -> int | None:
    """The number a count answer gives ("3", "three", "There are 2 chairs."), or None."""
    m = re.search(rf"\b(\d+|{_COUNT_WORD})\b", answer.lower())
    if m is None:
        return None
    return int(m.group(1)) if m.group(1).isdigit() else NUMBER_WORDS.index(m.group(1))


# ---------------------------------------------------------------------- the layer
@dataclass(frozen=True)
class CategoryEvidence:
    """What a map holds of one category."""

    count: int  # map objects labelled with it
    confident: int  # of which the label's score is >= min_confidence


class MapEvidence:
    """The map's object list as evidence for answers (the layer of ReasonerConfig.map_evidence).

    objects: anything with `label` and `label_scores` (MapObject). An object's confidence is its
    label's score (the softmax over the mapper's vocabulary, objects.assign_labels); a label given
    without scores is taken as stated (1.0). Unlabelled objects (maps without text-aligned
    features) are no evidence: a map with none labelled changes no answer.

    Two sets of categories: `held` (any object labelled with it: what the hallucination measure
    charges against) and `trusted` (at least one object whose label scores >= min_confidence:
    what the layer states). Why the layer trusts only confident labels: labels are an ImageNet
    classifier's guesses carried into a closed vocabulary (ConSE); on the 7-Scenes kitchen a
    quarter of the objects were called "bottle" and a few "toilet" or "bed", nearly all below 0.5.
    A map's count is its count of confident objects for the same reason.
    """

    def __init__(self, objects: Iterable, labels: Iterable[str] = (), min_confidence: float = 0.5) -> None:
        objects = [o for o in objects if str(getattr(o, "label", "") or "").strip()]
        labels = list(labels)
        self.vocabulary = build_vocabulary([*labels, *(o.label for o in objects)])
        by_name = {name: c for c, names in self.vocabulary.items() for name in names}
        # Categories the mapper could have labelled an object with (its vocabulary, and the labels it used).
        self.labelable = {by_name[_label_key(x)] for x in [*labels, *(o.label for o in objects)] if _label_key(x)}
        counts: dict[str, list[int]] = {}
        for obj in objects:
            category = by_name[_label_key(obj.label)]
            score = label_confidence(obj)
            entry = counts.setdefault(category, [0, 0])
            entry[0] += 1
            entry[1] += score >= min_confidence
        self.categories = {c: CategoryEvidence(n, k) for c, (n, k) in counts.items()}

    @property
    def held(self) -> set[str]:
        """Categories at least one map object is labelled with (at any confidence)."""
        return set(self.categories)

    @property
    def trusted(self) -> set[str]:
        """Categories with at least one confidently labelled object: what answers may state."""
        return {c for c, e in self.categories.items() if e.confident}

    @property
    def active(self) -> bool:
        """False for a map without labelled objects: then it is no evidence for or against anything."""
        return bool(self.categories)

    def count(self, category: str) -> int:
        """The map's count of `category`: its confidently labelled objects."""
        return self.categories[category].confident if category in self.categories else 0

    def _category_of(self, noun: str) -> Mention | None:
        """The category `noun` is, when it is exactly one category's name or plural ("mugs"; not "red mugs")."""
        found = find_mentions(noun, self.vocabulary)
        if len(found) == 1 and found[0].start == 0 and found[0].end == len(noun):
            return found[0]
        return None

    def holds(self, noun: str) -> bool:
        """Whether `noun` is exactly a category ("table", "mugs") the map confidently holds."""
        mention = self._category_of(noun)
        return mention is not None and mention.category in self.trusted

    def unlabelled(self, noun: str) -> bool:
        """Whether `noun` is a category the mapper could label but no map object is labelled with.

        Weak evidence of absence, not proof: the labels come from an image classifier through
        text similarity, and on the held-out sim maps half of the categories present and seen
        carried no label of theirs. The reasoner refuses such a category only when the absence
        head leans the same way (ReasonerConfig.unlabelled_absent_p)."""
        if not self.active:
            return False
        mention = self._category_of(noun)
        return mention is not None and mention.category not in self.held and mention.category in self.labelable

    # -------------------------------------------------------------- questions
    def answer(self, question: str, answer: str) -> str:
        """`answer` made to agree with the map: counts and existence of confidently held
        categories from the map, scene captions revised (`revise_caption`); others unchanged."""
        if not self.active:
            return answer
        direct = self.direct_answer(question)
        if direct is not None:
            return direct
        if is_scene_caption(question, answer):
            return self.revise_caption(answer)
        return answer

    def direct_answer(self, question: str) -> str | None:
        """The answer the map gives without the model, for "how many X" / "is there an X" where X
        is exactly a category's name ("mugs"; not "red mugs": the label list has no colours):

        - X trusted: its count ("3", the generator's canonical count answer) or "yes";
        - otherwise None: the model answers (X held with low confidence only, a word the map cannot
          label, or one no object is labelled with: see `unlabelled`).
        """
        presumed = presumed_thing(question)
        if not self.active or presumed is None or presumed.kind not in ("count", "exists"):
            return None
        mention = self._category_of(presumed.noun)
        if mention is None:
            return None
        if mention.category in self.trusted:
            return str(self.count(mention.category)) if presumed.kind == "count" else "yes"
        return None

    # -------------------------------------------------------------- captions
    def caption_items(self) -> list[str]:
        """The map's trusted contents as count phrases, most frequent first ("two chairs", "a sink")."""
        return [count_phrase(self.count(c), c) for c in sorted(self.trusted, key=lambda c: (-self.count(c), c))]

    def revise_caption(self, caption: str) -> str:
        """The caption without categories the map does not trust, counts set to the map's.

        Why revise rather than rebuild: the model's caption carries what the object list lacks
        (room layout, colours, support relations such as "a red mug is on a table"); only its
        category claims are checkable. List items ("three boxes") of absent categories are
        dropped and those of held ones recounted (each category once; a last item cut off by
        the token limit goes); other sentences naming an absent category are
        dropped whole (a relation with a missing end is not half true). A list left without any
        held category is refilled from the map (`caption_items`), so "Describe the scene" still
        says what is there; an empty result becomes "The map holds …"."""
        out: list[str] = []
        for sentence in _SENTENCE_SPLIT.split(caption.strip()):
            revised = self._revise_sentence(sentence)
            if revised:
                out.append(revised)
        if not any(find_mentions(s, self.vocabulary) for s in out):
            items = self.caption_items()
            if items:
                out.append(f"The map holds {_join(items)}.")
        return " ".join(out)

    def _revise_sentence(self, sentence: str) -> str:
        lead = _LIST_LEAD.search(sentence)
        body_start = lead.end() if lead else 0
        if lead is None or not find_mentions(sentence[body_start:], self.vocabulary):
            mentions = find_mentions(sentence, self.vocabulary)
            return "" if any(m.category not in self.trusted for m in mentions) else sentence
        head = sentence[:body_start]
        if any(m.category not in self.trusted for m in find_mentions(head, self.vocabulary)):
            return ""  # "a giraffe stands with …": the subject itself is not in the map
        body = sentence[body_start:].rstrip()
        end = body[-1] if body[-1:] in ".!?" else ""
        items = [i.strip() for i in _ITEM_SPLIT.split(body.rstrip(".!?")) if i.strip()]
        if not end and items and not find_mentions(items[-1], self.vocabulary):
            items.pop()  # an answer cut off at max_new_tokens: "…, a microwave and a night"
        end = end or "."
        kept, named, counted = [], False, set()
        for item in items:
            mentions = find_mentions(item, self.vocabulary)
            if any(m.category not in self.trusted for m in mentions):
                continue  # names a category the map does not hold
            named |= bool(mentions)
            category = self._counted(item, mentions)
            if category is None:
                kept.append(item)
            elif category not in counted:  # "three shelves, three shelves": the map's count is said once
                counted.add(category)
                kept.append(count_phrase(self.count(category), mentions[0].name))
        if not named:
            if not head.strip():
                return ""
            kept += self.caption_items()  # the list named nothing the map holds: say what it does hold
        return f"{head}{_join(kept)}{end}" if kept else ""

    @staticmethod
    def _counted(item: str, mentions: list[Mention]) -> str | None:
        """The category of an item that is just a count and a category ("three mugs", "a mug"), to
        be recounted from the map; None for items with more words ("a red mug", "two mugs on a
        table"), which keep their wording: the map has no colours or relations to count by."""
        if len(mentions) != 1:
            return None
        m = _COUNTED_ITEM.match(item)
        if m is None or m.group("n") is None or m.start("rest") != mentions[0].start or mentions[0].end != len(item):
            return None
        return mentions[0].category


def label_confidence(obj) -> float:
    """The score of a map object's own label (1.0 for an object that carries a label but no scores)."""
    return (obj.label_scores or {}).get(obj.label, 1.0 if not obj.label_scores else 0.0)


def is_scene_caption(question: str, answer: str) -> bool:
    """True for a scene-caption request, or an answer in the generator's scene-caption shape."""
    q = " ".join(question.lower().split())
    return bool(_CAPTION_Q.search(q) or _CAPTION_A.search(answer))


def _label_key(label: str) -> str:
    """A label as a vocabulary name: "Trash_can " -> "trash can"."""
    return " ".join(str(label).lower().replace("_", " ").split())


def _join(items: list[str]) -> str:
    """"a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
