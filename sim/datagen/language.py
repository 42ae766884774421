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
    split asks the same things about the same objects with the same answers, in other words."""

    def __init__(self, rng: np.random.Generator, heldout: np.random.Generator | None = None) -> None:
        self.rng = rng
        self.heldout = heldout

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
        text = template.format(**slots)
        return text[0].upper() + text[1:]

    def request(self, phrase: str) -> str:
        """A referring expression as asked: the phrase itself, or held out, wrapped in a request."""
        if self.heldout is None:
            return phrase
        return self.noise(HELDOUT_REQUESTS[int(self.heldout.integers(len(HELDOUT_REQUESTS)))].format(ref=phrase))

    def noise(self, text: str) -> str:
        """Held-out noise people type: a polite opener, all lower case without the final mark, or
        one pair of adjacent letters swapped in a long word (each for some questions)."""
        r = self.heldout
        text = text[0].upper() + text[1:]
        if r.random() < 0.15:
            text = HELDOUT_OPENERS[int(r.integers(len(HELDOUT_OPENERS)))] + text[0].lower() + text[1:]
        if r.random() < 0.3:
            text = text.lower().rstrip("?.!")
        if r.random() < 0.1:
            words = text.split(" ")
            long = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
            if long:
                i = long[int(r.integers(len(long)))]
                k = int(r.integers(1, len(words[i]) - 2))
                w = words[i]
                words[i] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
                text = " ".join(words)
        return text


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
