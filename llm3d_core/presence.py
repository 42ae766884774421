"""What a question presumes is in the scene: "What colour is the giraffe?" presumes a giraffe.

The 3D-LLM answers such questions from its priors when the thing is absent (a colour for a giraffe
that is not there). The reasoner reads the presumed thing with these patterns and, when the
absence head (model/absence.py) says no map object matches it, answers "there is no … here"
instead. The patterns cover the question forms the data generator writes (sim/datagen/language.py)
and common requests around them ("can you find …", "where is …"); a question they do not match
goes to the model unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from llm3d_core.vocabulary import article, singular

_PLACE = r"(?: (?:in|inside|around) (?:the|this) (?:scene|room|place|map|house|area)| here| around)?"
_A = r"(?:a |an |any |some |the )?"
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((kind, re.compile(rx)) for kind, rx in (
    ("exists", rf"^(?:is|are) there {_A}(?P<x>.+?){_PLACE}$"),
    ("exists", rf"^(?:(?:do|can) you )?see {_A}(?P<x>.+?){_PLACE}$"),
    ("exists", rf"^(?:does|do) (?:this|the) (?:place|room|scene|map|house) (?:have|contain|hold) {_A}(?P<x>.+)$"),
    ("color", r"^(?:what|which) colou?r (?:is|are) (?P<x>.+)$"),
    ("color", r"^which colou?r (?:does|do) (?P<x>.+) have$"),
    ("color", r"^(?:what|which) colou?r (?P<x>.+?) (?:is|are)$"),
    # "what's / I'd like to know / tell me the colour of X", not a yes/no question ("is the colour of X red")
    ("color", r"^(?!(?:is|are|was|were|does|do|did|can|could|would|will|has|have)\b)(?:.* )?the colou?r of (?P<x>.+)$"),
    ("count", rf"^how many (?P<x>.+?) (?:are there|are in (?:the|this) (?:scene|room)|can you see|do you see|are here)$"),
    ("count", r"^count the (?P<x>.+)$"),
    ("where", rf"^where (?:is|are) (?P<x>.+?){_PLACE}$"),
    ("where", rf"^(?:can you |could you |please )?(?:find|locate|show me) {_A}(?P<x>.+?){_PLACE}$"),
))
# Existence asked in other words: a yes/no question (its opener), no definite thing before the
# indefinite one ("is the mug on a table" asks about the mug), and a word of presence before the
# thing ("any chance there's a lamp", "can you spot a cup", "would I find a fridge") or after it
# ("is a toilet present", "… anywhere", "… in this room"). "Could a person sit on the sofa?" has
# none and goes to the model; so does a question with a question word, a comparison or an action
# ("can I sit on a chair here" asks what a chair affords).
_YES_NO = re.compile(r"^(?:is|are|can|could|would|will|do|does|did|have|has|any|might|may|spot|see|notice)\b")
_INDEFINITE = re.compile(r"\b(?:a|an|any|some)\s+")
_CUE_BEFORE = re.compile(r"\b(?:there(?:'s|s| is| are| be)|spot|find|see|notice|have|has|contain|contains|hold|holds)\b")
_CUE_AFTER = re.compile(r"(?: (?:anywhere|present|around|nearby|here|in here|to be found|"
                        r"in (?:the|this) (?:scene|room|place|map|house|area)))+$")
_NOT_EXISTENCE = re.compile(r"\b(?:what|which|how|where|why|who|colou?r|than|bigger|smaller|larger|taller|shorter|"
                            r"closer|farther|further|many|much|sit|put|place|use|fit|go|stand|lie|move|open|"
                            r"cook|wash|sleep|read|watch|store|throw|work|reach|carry)\b")


def _existence(q: str) -> "Presumed | None":
    """An existence question not in PATTERNS' forms (q lower case, no final punctuation), or None."""
    opener = _YES_NO.match(q)
    if opener is None or (m := _INDEFINITE.search(q, opener.end())) is None:
        return None
    before, thing = q[:m.start()], q[m.end():]
    if re.search(r"\bthe\b", before):
        return None
    after = _CUE_AFTER.search(thing)
    if after is not None:
        thing = thing[:after.start()]
    thing = thing.strip(" ,")
    if (after is None and not _CUE_BEFORE.search(before)) or not thing or _NOT_EXISTENCE.search(f"{before} {thing}"):
        return None
    return None if thing.split()[0] in _PRONOUNS else Presumed("exists", thing)


_POLITE = re.compile(r"^(?:(?:hey|hi|ok|okay|so|please|robot)[, ]+)*(?:(?:can|could) you (?:please )?)?(?:tell me )?")
_PRONOUNS = {"it", "them", "this", "that", "these", "those", "they", "one", "something", "anything", "objects",
             "things", "items"}


@dataclass(frozen=True)
class Presumed:
    """The thing a question presumes (`noun`: "giraffe", "red mugs") and how it asks (`kind`)."""

    kind: str  # exists | color | count | where
    noun: str

    @property
    def query(self) -> str:
        """The referring expression the grounding head reads: "the giraffe". A count's plural is made
        singular ("how many cardboard boxes" -> "the cardboard box"): referring expressions name one
        object, and the absence head read "the cardboard boxes" as absent on a map holding four while
        it found "the cardboard box" there."""
        return f"the {singular(self.noun) if self.kind == 'count' else self.noun}"

    def confirmation(self) -> str:
        """The answer to an existence question when a map object matches."""
        return f"Yes, there are {self.noun} here." if singular(self.noun) != self.noun else \
            f"Yes, there is {article(self.noun)} here."

    def refusal(self) -> str:
        """The answer when no map object matches."""
        if self.kind == "exists":
            return f"No, there is no {self.noun} here."
        if self.kind == "count":
            return f"0: there are no {self.noun} here."
        return f"There is no {self.noun} here."


def normalize_text(text: str) -> str:
    """NFKC-normalised, with control and unassigned characters dropped and whitespace collapsed.

    Full-width letters, ligatures and compatibility forms become the plain characters the tokenizer
    was trained on; accents stay (NFKC composes them). Emoji and other pictographic symbols (Unicode
    category So) are dropped: the byte-level tokenizer can write them, but the model never learned
    what they mean and answered them with garbage words; a map holds no such thing to ground."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) == "So" else ch
                   for ch in text)
    return " ".join(text.split())


def presumed_thing(question: str) -> Presumed | None:
    """The thing `question` presumes present, or None when no pattern matches or it is a pronoun."""
    q = normalize_text(question).lower().strip(" ?.!")
    q = _POLITE.sub("", q)
    for kind, rx in PATTERNS:
        m = rx.match(q)
        if m:
            noun = re.sub(r"^(?:a|an|any|some|the) ", "", m.group("x").strip(" ,"))
            if not noun or noun in _PRONOUNS or noun.split()[0] in _PRONOUNS:
                return None
            return Presumed(kind, noun)
    return _existence(q)
