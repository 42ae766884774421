"""Words and templates of the language data: category names, synonyms, plurals, numbers, phrasing.

Template-driven generation as in 3D-LLM's data pipeline (Hong et al. 2023, section 3.1, which
prompts from scene annotations; here the prompts are fixed templates so every answer is exact).
Several templates and synonyms per type make the phrasing vary; the first name of every
category (`display`) is the canonical answer.
"""

from __future__ import annotations

import numpy as np

# Names a category may be called by; the first is canonical. No synonym contains another
# category's name as a word (tests find category mentions in text by word).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "chair": ("chair", "seat"), "table": ("table", "desk"), "sofa": ("sofa", "couch"), "bed": ("bed",),
    "cabinet": ("cabinet", "cupboard"), "nightstand": ("nightstand", "night stand"),
    "counter": ("counter", "countertop", "kitchen counter"), "shelf": ("shelf", "bookshelf", "shelving unit"),
    "lamp": ("lamp", "floor lamp"), "tv": ("tv", "television"), "monitor": ("monitor", "computer screen"),
    "laptop": ("laptop", "notebook computer"), "mug": ("mug", "cup"), "bottle": ("bottle",),
    "book": ("book",), "plant": ("plant", "potted plant"), "sink": ("sink", "washbasin"), "toilet": ("toilet",),
    "fridge": ("fridge", "refrigerator"), "microwave": ("microwave", "microwave oven"),
    "box": ("box", "cardboard box"), "trash_can": ("trash can", "garbage bin", "waste bin"),
}
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {"gray": ("gray", "grey"), "navy": ("navy", "navy blue", "dark blue"),
                                              "teal": ("teal", "blue-green"), "beige": ("beige", "cream")}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
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


def plural(noun: str) -> str:
    """English plural of a (possibly multi-word) noun; enough for the catalog's names."""
    head, _, last = noun.rpartition(" ")
    if last.endswith("shelf"):
        last = last[:-1] + "ves"
    elif last.endswith(("s", "x", "sh", "ch")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def number_answers(n: int) -> list[str]:
    """"3" first (canonical), then "three"."""
    return [str(n)] + ([NUMBER_WORDS[n]] if 0 <= n < len(NUMBER_WORDS) else [])


def count_phrase(n: int, noun: str) -> str:
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} {noun if n == 1 else plural(noun)}" if n != 1 else article(noun)


class Phraser:
    """Picks templates and synonyms with one seeded generator, so phrasing is deterministic."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, options: list | tuple):
        return options[int(self.rng.integers(len(options)))]

    def name(self, category: str) -> str:
        return self.pick(names(category))

    def color(self, color: str) -> str:
        return self.pick(colors(color))

    def fill(self, templates: list[str] | tuple[str, ...], **slots: str) -> str:
        text = self.pick(templates).format(**slots)
        return text[0].upper() + text[1:]


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
