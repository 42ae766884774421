"""Words and templates of the language data: category names, synonyms, plurals, numbers, phrasing.

Template-driven generation as in 3D-LLM's data pipeline (Hong et al. 2023, section 3.1, which
prompts from scene annotations; here the prompts are fixed templates so every answer is exact).
Several templates and synonyms per type make the phrasing vary; the first name of every
category (`display`) is the canonical answer.
"""

from __future__ import annotations

import numpy as np

# The category names, plurals and number words are shared with the reasoner, which reads answers
# back against the map (llm3d_core.map_evidence); re-exported here for the generator.
from llm3d_core.vocabulary import NUMBER_WORDS, SYNONYMS, article, count_phrase, plural  # noqa: F401

COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {"gray": ("gray", "grey"), "navy": ("navy", "navy blue", "dark blue"),
                                              "teal": ("teal", "blue-green"), "beige": ("beige", "cream")}
SIZE_CLASSES = ("small", "medium", "large")


def display(category: str) -> str:
    """The canonical name of a category in text ("trash_can" -> "trash can")."""
    return SYNONYMS.get(category, (category.replace("_", " "),))[0]


def names(category: str) -> list[str]:
    """All names of a category, canonical first."""
    return list(SYNONYMS.get(category, (display(category),)))


def colors(color: str) -> list[str]:
    """All names of a colour, canonical first."""
    return list(COLOR_SYNONYMS.get(color, (color,)))


def number_answers(n: int) -> list[str]:
    """"3" first (canonical), then "three"."""
    return [str(n)] + ([NUMBER_WORDS[n]] if 0 <= n < len(NUMBER_WORDS) else [])


class Phraser:
    """Picks templates and synonyms with one seeded generator, so phrasing is deterministic.

    heldout: an independent generator for the held-out phrasing (`DatagenConfig.phrasing`): each
    question template is replaced by one of HELDOUT_TEMPLATES' (a grammar training never sees),
    referring expressions are wrapped in held-out requests, and some questions get casing,
    politeness and typo noise. The main generator draws exactly as without it, so the held-out
    split asks the same things about the same objects with the same answers, in other words.

    varied: an independent generator for the varied training phrasing (`DatagenConfig.phrasing`
    "varied"): half the questions take one of VARIED_TEMPLATES' (a wider training grammar, disjoint
    from the held-out one), some referring expressions are wrapped in VARIED_REQUESTS, and questions
    get training noise (TRAIN_OPENERS, casing, a dropped or doubled letter). As with `heldout`, the
    main generator draws as without it: the same records, in more words."""

    def __init__(self, rng: np.random.Generator, heldout: np.random.Generator | None = None,
                 varied: np.random.Generator | None = None) -> None:
        if heldout is not None and varied is not None:
            raise ValueError("a Phraser phrases held out or varied, not both")
        self.rng = rng
        self.heldout = heldout
        self.varied = varied

    def pick(self, options: list | tuple):
        return options[int(self.rng.integers(len(options)))]

    def name(self, category: str) -> str:
        return self.pick(names(category))

    def color(self, color: str) -> str:
        return self.pick(colors(color))

    def fill(self, templates: list[str] | tuple[str, ...], **slots: str) -> str:
        template = self.pick(templates)
        if self.heldout is not None and tuple(templates) in HELDOUT_TEMPLATES:
            alt = HELDOUT_TEMPLATES[tuple(templates)]
            return self.noise(alt[int(self.heldout.integers(len(alt)))].format(**slots))
        if self.varied is not None and tuple(templates) in VARIED_TEMPLATES and self.varied.random() < VARIED_SHARE:
            alt = VARIED_TEMPLATES[tuple(templates)]
            template = alt[int(self.varied.integers(len(alt)))]
        text = template.format(**slots)
        text = text[0].upper() + text[1:]
        return self.train_noise(text) if self.varied is not None else text

    def request(self, phrase: str) -> str:
        """A referring expression as asked: the phrase itself, or held out, wrapped in a request."""
        if self.varied is not None:
            if self.varied.random() >= VARIED_SHARE:
                return phrase
            wrapped = VARIED_REQUESTS[int(self.varied.integers(len(VARIED_REQUESTS)))].format(ref=phrase)
            return self.train_noise(wrapped[0].upper() + wrapped[1:])
        if self.heldout is None:
            return phrase
        return self.noise(HELDOUT_REQUESTS[int(self.heldout.integers(len(HELDOUT_REQUESTS)))].format(ref=phrase))

    def noise(self, text: str) -> str:
        """Held-out noise people type: a polite opener, all lower case without the final mark, or
        one pair of adjacent letters swapped in a long word (each for some questions)."""
        def swap(w: str, r: np.random.Generator) -> str:
            k = int(r.integers(1, len(w) - 2))
            return w[:k] + w[k + 1] + w[k] + w[k + 2:]

        return _typed(text[0].upper() + text[1:], self.heldout, HELDOUT_OPENERS, swap)

    def train_noise(self, text: str) -> str:
        """Training noise, unlike the held-out noise in kind: its own openers, all lower case
        without the final mark, or one letter of a long word dropped or doubled."""
        def drop_or_double(w: str, r: np.random.Generator) -> str:
            k = int(r.integers(1, len(w) - 1))
            return w[:k] + w[k + 1:] if r.random() < 0.5 else w[:k] + w[k] + w[k:]

        return _typed(text, self.varied, TRAIN_OPENERS, drop_or_double)


def _typed(text: str, r: np.random.Generator, openers: tuple[str, ...], typo) -> str:
    """Some questions get an opener, some are all lower case without the final mark, some get
    `typo(word, r)` in one long word."""
    if r.random() < 0.15:
        text = openers[int(r.integers(len(openers)))] + text[0].lower() + text[1:]
    if r.random() < 0.3:
        text = text.lower().rstrip("?.!")
    if r.random() < 0.1:
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
        if long:
            i = long[int(r.integers(len(long)))]
            words[i] = typo(words[i], r)
            text = " ".join(words)
    return text


HELDOUT_STREAM = 8  # third key of the held-out phrasing's random stream (after the scene key and seed)
VARIED_STREAM = 9  # third key of the varied training phrasing's stream


def scene_phraser(rng: np.random.Generator, key: int, seed: int, phrasing: str) -> Phraser:
    """A scene's phraser: the main generator `rng`, and for a held-out or varied phrasing its own
    stream keyed by (scene key, seed)."""
    streams = {"heldout": HELDOUT_STREAM, "varied": VARIED_STREAM}
    extra = np.random.default_rng([int(key), int(seed), streams[phrasing]]) if phrasing in streams else None
    return Phraser(rng, extra if phrasing == "heldout" else None, extra if phrasing == "varied" else None)


# ----------------------------------------------------------------------------- templates
CAPTION_OBJECT_Q = ("Describe the highlighted object.", "What is this object?", "Give a short description of this object.",
                    "Caption the object in the box.")
CAPTION_SCENE_Q = ("Describe the scene.", "What is in this room?", "Give a summary of this scene.",
                   "Describe what you see in this 3D scene.")
COLOR_Q = ("What colour is {ref}?", "What color is {ref}?", "Which colour does {ref} have?", "Tell me the colour of {ref}.")
CATEGORY_Q = ("What is {ref}?", "What kind of object is {ref}?", "Name {ref}.", "What type of thing is {ref}?")
SIZE_Q = ("Is {ref} small, medium or large?", "How big is {ref}: small, medium or large?",
          "What size class is {ref} (small, medium, large)?")
COUNT_Q = ("How many {things} are there?", "How many {things} are in the scene?", "Count the {things}.",
           "How many {things} can you see?")
COUNT_ON_Q = ("How many objects are on {ref}?", "How many things are on {ref}?", "Count the items on {ref}.")
EXISTS_Q = ("Is there {a_thing} in the scene?", "Is there {a_thing} here?", "Do you see {a_thing}?",
            "Does this place have {a_thing}?")
SUPPORT_Q = ("What is {ref} on?", "Where is {ref} placed?", "What is {ref} standing on?", "On what is {ref}?")
ON_TOP_Q = ("What is on {ref}?", "What is sitting on {ref}?", "Which object is on {ref}?")
NEAR_Q = ("Is {a} near {b}?", "Is {a} next to {b}?", "Is {a} close to {b}?")
BETWEEN_Q = ("What is between {a} and {b}?", "Which object is between {a} and {b}?",
             "What stands between {a} and {b}?")
VIEW_LR_Q = ("Standing in front of {anchor} and facing it, is {ref} on your left or on your right?",
             "If you face {anchor} from its front, is {ref} to your left or right?",
             "Looking at {anchor} from the front, is {ref} on the left or the right?")
BIGGER_Q = ("Which is bigger, {a} or {b}?", "Which one is larger: {a} or {b}?", "Is {a} or {b} bigger?")
TALLER_Q = ("Which is taller, {a} or {b}?", "Which one is higher: {a} or {b}?", "Is {a} or {b} taller?")
CLOSER_Q = ("Which is closer to {x}, {a} or {b}?", "Which one is nearer to {x}: {a} or {b}?",
            "Is {a} or {b} closer to {x}?")
AFFORD_Q = ("Where can I {verb}?", "What can I use to {verb}?", "I want to {verb}. Which object should I use?",
            "Is there something here to {verb}?")
PLAN_Q = ("How do I {goal}?", "Give me the steps to {goal}.", "Plan how to {goal} in this room.",
          "What should a robot do to {goal}?")
NAV_Q = ("Go to {ref}.", "Navigate to {ref}.", "Walk over to {ref}.", "Find {ref} and stop next to it.", "Take me to {ref}.")

# ----------------------------------------------------------------------------- absent targets
# Things no procedural scene holds, for referring expressions whose target is absent. Train and val
# scenes draw from the first list, test scenes from the second, so the test's rejection rate is
# measured on words the abstention head never saw (held-out phrasing, in the sense).
NOVEL_TRAIN = ("piano", "guitar", "bicycle", "dog", "cat", "umbrella", "vase", "clock", "painting", "mirror",
               "backpack", "teddy bear", "toaster", "kettle", "fan", "suitcase", "basket", "bench", "ladder",
               "printer", "oven", "bathtub", "coat rack", "helmet")
NOVEL_HELDOUT = ("giraffe", "elephant", "surfboard", "violin", "skateboard", "horse", "tennis racket", "snowman",
                 "canoe", "zebra", "motorcycle", "drum kit", "fire hydrant", "kite", "trumpet", "penguin",
                 "treadmill", "aquarium", "hammock", "sewing machine")
GIBBERISH_LETTERS = "bcdfghjklmnpqrstvwxz"


def gibberish(rng: np.random.Generator) -> str:
    """A made-up word of 5-12 letters, mostly consonants ("xqzvblorf"): a request no map can hold."""
    vowels = "aeiouy"
    letters = []
    for _ in range(int(rng.integers(5, 13))):
        pool = GIBBERISH_LETTERS if rng.random() < 0.7 else vowels
        letters.append(pool[int(rng.integers(len(pool)))])
    return "".join(letters)


# ----------------------------------------------------------------------------- held-out phrasing
# A second grammar for the same questions, used only for the held-out phrasing split
# (`llm3d data generate --phrasing heldout`): indirect questions, requests, other word order.
# Nothing here appears in training data; keep it out of the templates above.
HELDOUT_TEMPLATES: dict[tuple[str, ...], tuple[str, ...]] = {
    COLOR_Q: ("Could you tell me what colour {ref} is?", "I'd like to know the color of {ref}.",
              "{ref}, what colour would you say it is?", "What's the colour of {ref}?"),
    SIZE_Q: ("Would you call {ref} small, medium or large?", "Size of {ref}: small, medium or large?",
             "How large is {ref} (small, medium or large)?"),
    COUNT_Q: ("What is the number of {things} here?", "Can you count how many {things} there are?",
              "How many {things} does the room have?", "Number of {things}?"),
    COUNT_ON_Q: ("What is the number of objects on {ref}?", "How many items sit on {ref}?"),
    EXISTS_Q: ("Can you spot {a_thing} anywhere?", "Would I find {a_thing} in this room?", "Any chance there's {a_thing}?",
               "Is {a_thing} present?"),
    SUPPORT_Q: ("What does {ref} rest on?", "{ref} is sitting on what?", "Tell me what {ref} is on."),
    ON_TOP_Q: ("What can be found on {ref}?", "What's lying on {ref}?", "Name the object on {ref}."),
    NEAR_Q: ("Would you say {a} is close to {b}?", "Are {a} and {b} near each other?", "Is {a} by {b}?"),
    BETWEEN_Q: ("What lies between {a} and {b}?", "Between {a} and {b}, what object is there?"),
    VIEW_LR_Q: ("Facing {anchor} from its front, which side is {ref} on, left or right?",
                "From the front of {anchor}, do you see {ref} on the left or on the right?"),
    BIGGER_Q: ("Of {a} and {b}, which one is bigger?", "Which takes up more space, {a} or {b}?"),
    TALLER_Q: ("Of {a} and {b}, which one is taller?", "Which stands higher, {a} or {b}?"),
    CLOSER_Q: ("Of {a} and {b}, which is nearer to {x}?", "Which lies closer to {x}: {a} or {b}?"),
    AFFORD_Q: ("What could I use if I want to {verb}?", "Which thing here lets me {verb}?", "I need to {verb}; what should I use?"),
    CAPTION_SCENE_Q: ("Tell me about this room.", "What does this place look like?", "Summarise the scene for me."),
    CAPTION_OBJECT_Q: ("Tell me about the object in the box.", "What can you say about this object?"),
    PLAN_Q: ("What are the steps to {goal}?", "Walk me through how to {goal}.", "I want to {goal}. What do I do?"),
    NAV_Q: ("Head over to {ref}.", "Could you drive to {ref}?", "Bring me to {ref}.", "Move next to {ref}."),
}
HELDOUT_REQUESTS = ("Show me {ref}.", "Where is {ref}?", "Can you find {ref}?", "I'm looking for {ref}.",
                    "Point out {ref}.", "{ref}")
HELDOUT_OPENERS = ("Please, ", "Hey robot, ", "Excuse me, ", "Quick question: ")


# ----------------------------------------------------------------------------- varied training phrasing
# A wider training grammar (`llm3d data generate --phrasing varied`): requests, indirect questions,
# other word order, for the same questions. Disjoint from HELDOUT_TEMPLATES, HELDOUT_REQUESTS and
# HELDOUT_OPENERS (tests/sim/test_datagen.py checks it), so the held-out split stays unseen.
VARIED_SHARE = 0.5  # share of questions (and referring expressions) asked in the varied grammar
VARIED_TEMPLATES: dict[tuple[str, ...], tuple[str, ...]] = {
    COLOR_Q: ("Which color is {ref}?", "Do you know the colour of {ref}?", "Name the colour of {ref}.",
              "{ref}: what colour is it?", "Tell me which color {ref} has.", "What is the color of {ref}?",
              "Can you say what colour {ref} is?"),
    CATEGORY_Q: ("What object is {ref}?", "Tell me what {ref} is.", "Which kind of thing is {ref}?"),
    SIZE_Q: ("Small, medium or large: how big is {ref}?", "Is {ref} a small, a medium or a large object?",
             "Which size is {ref}: small, medium or large?", "Tell me if {ref} is small, medium or large.",
             "Do you think {ref} is small, medium or large?"),
    COUNT_Q: ("How many {things} do you see?", "How many {things} are here?", "Tell me how many {things} there are.",
              "Do you know how many {things} there are?", "What's the count of {things}?",
              "Count all the {things} in the room.", "How many {things} does this scene contain?"),
    COUNT_ON_Q: ("How many objects are placed on {ref}?", "Tell me how many things are on {ref}.",
                 "Count what is on {ref}.", "How many items can you see on {ref}?"),
    EXISTS_Q: ("Do we have {a_thing} here?", "Is there {a_thing} in this room?", "Can you see {a_thing}?",
               "Tell me if there is {a_thing}.", "Does the room contain {a_thing}?", "Have you seen {a_thing} here?",
               "Is {a_thing} in the room?"),
    SUPPORT_Q: ("What is {ref} on top of?", "Which object is {ref} on?", "What does {ref} stand on?",
                "Tell me what {ref} is placed on.", "What holds up {ref}?"),
    ON_TOP_Q: ("What is placed on {ref}?", "What do you see on {ref}?", "Which thing is on top of {ref}?",
               "Tell me what is on {ref}.", "What has been put on {ref}?"),
    NEAR_Q: ("Is {a} beside {b}?", "Is {a} near to {b}?", "Are {a} and {b} close together?",
             "Does {a} stand next to {b}?", "Tell me if {a} is near {b}."),
    BETWEEN_Q: ("What object sits between {a} and {b}?", "What is placed between {a} and {b}?",
                "Tell me what is between {a} and {b}.", "Which thing can be found between {a} and {b}?"),
    VIEW_LR_Q: ("When you stand in front of {anchor}, facing it, is {ref} to the left or to the right?",
                "Facing the front of {anchor}, is {ref} left or right of you?",
                "Seen from the front of {anchor}, is {ref} on your left side or your right side?"),
    BIGGER_Q: ("Which one is bigger, {a} or {b}?", "Which of {a} and {b} is larger?",
               "Tell me which is bigger: {a} or {b}.", "Between {a} and {b}, which is larger?"),
    TALLER_Q: ("Which one is taller, {a} or {b}?", "Which of {a} and {b} is taller?",
               "Tell me which is taller: {a} or {b}.", "Between {a} and {b}, which is higher?"),
    CLOSER_Q: ("Which one is closer to {x}, {a} or {b}?", "Which of {a} and {b} is nearer to {x}?",
               "Tell me which is closer to {x}: {a} or {b}.", "Between {a} and {b}, which is closer to {x}?"),
    AFFORD_Q: ("Which object can I use to {verb}?", "Tell me what I can use to {verb}.", "What would help me {verb}?",
               "Anything here I can use to {verb}?", "I'd like to {verb}. What can I use?"),
    CAPTION_SCENE_Q: ("What do you see in this room?", "Give me a description of the room.", "Describe this place.",
                      "What does the room contain?", "Can you describe the scene?"),
    CAPTION_OBJECT_Q: ("Describe the object in the box.", "What is the highlighted object?",
                       "Tell me what this object is.", "Give a caption for the highlighted object."),
    PLAN_Q: ("How can I {goal}?", "List the steps to {goal}.", "Tell me how to {goal}.",
             "What steps do I need to {goal}?", "Help me {goal}."),
    NAV_Q: ("Drive to {ref}.", "Please go to {ref}.", "Move to {ref}.", "Can you go to {ref}?",
            "Get to {ref} and stop.", "Approach {ref}."),
}
VARIED_REQUESTS = ("Find {ref}.", "Locate {ref}.", "Which object is {ref}?", "I need {ref}.", "Look for {ref}.",
                   "Highlight {ref}.")
TRAIN_OPENERS = ("Hi, ", "Robot, ", "OK, ", "So, ", "Hello, ")
