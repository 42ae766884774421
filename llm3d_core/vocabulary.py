"""Category names, plurals and number words: the words answers are made of.

One table for the data generator, which writes answers with them (sim.datagen.language), and the
reasoner, which reads answers back to check them against the map (llm3d_core.map_evidence). It
lives in the core because imports flow `llm3d_core` <- `sim`: the reasoner may not import sim.
"""

from __future__ import annotations

# Names a category may be called by; the first is canonical. No synonym contains another
# category's name as a word (category mentions are found in text by word).
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
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


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


def singular(noun: str) -> str:
    """The singular of a (possibly multi-word) English plural noun: the inverse of `plural` on the
    catalog's names ("cardboard boxes" -> "cardboard box", "shelves" -> "shelf", "glasses" -> "glass");
    a word that does not look plural ("glass", "bus") is kept."""
    head, _, last = noun.rpartition(" ")
    if last.endswith("lves"):  # shelves, halves; not stoves or microwaves
        last = last[:-3] + "f"
    elif last.endswith(("sses", "xes", "shes", "ches", "zzes")):
        last = last[:-2]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")) and len(last) > 2:
        last = last[:-1]
    return f"{head} {last}".strip()


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def count_phrase(n: int, noun: str) -> str:
    """"three mugs", "a mug" (n == 1)."""
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} {noun if n == 1 else plural(noun)}" if n != 1 else article(noun)
