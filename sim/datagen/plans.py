"""Task decomposition recipes: household goals broken into steps that name objects of THIS scene.

3D-LLM (Hong et al. 2023, section 3.1) generates task-decomposition data by prompting with a
scene's objects; here each recipe is a template that applies only when the objects it needs
exist, and fills its steps with their names, colours and supports. Steps therefore never name
an object the scene lacks (checked by tests/sim/test_datagen.py).
A recipe returns (goal phrase, steps, instances named in the steps) or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.datagen import language as L
from sim.scenes.scene import Instance

if TYPE_CHECKING:
    from sim.datagen.generator import SceneFacts

Plan = tuple[str, list[str], list[Instance]]
SEATS = ("sofa", "chair", "bed")


class PlanContext:
    """Picks the instances a recipe needs and names them."""

    def __init__(self, facts: SceneFacts) -> None:
        self.facts = facts

    def has(self, *cats: str) -> bool:
        return all(c in self.facts.by_cat for c in cats)

    def pick(self, cat: str, where: Callable[[Instance], bool] = lambda i: True) -> Instance | None:
        """An instance of `cat` (preferring one with an unambiguous phrase), or None."""
        cands = [i for i in self.facts.by_cat.get(cat, []) if where(i)]
        if not cands:
            return None
        named = [i for i in cands if self.facts.refs(i)]
        pool = named or cands
        return pool[int(self.facts.ph.rng.integers(len(pool)))]

    def name(self, inst: Instance) -> str:
        """"the red mug on the shelf" when unambiguous, else "the red mug"."""
        ref = self.facts.ref(inst)
        return ref.text if ref else f"the {inst.color} {L.display(inst.category)}"

    def place(self, inst: Instance) -> str:
        """Where to walk to fetch `inst`: its support when it has one."""
        sup = self.facts.support(inst)
        return self.name(sup) if sup is not None else self.name(inst)

    def with_support(self, inst: Instance) -> list[Instance]:
        sup = self.facts.support(inst)
        return [inst] + ([sup] if sup is not None else [])


def make_coffee(ctx: PlanContext) -> Plan | None:
    mug, mw = ctx.pick("mug"), ctx.pick("microwave")
    if mug is None or mw is None:
        return None
    steps = [f"Go to {ctx.place(mug)}.", f"Pick up {ctx.name(mug)}.", f"Carry it to {ctx.name(mw)}.",
             "Put the mug inside the microwave and heat it for a minute.", "Take the hot mug out of the microwave."]
    return "make a hot drink", steps, ctx.with_support(mug) + [mw]


def heat_food(ctx: PlanContext) -> Plan | None:
    fridge, mw = ctx.pick("fridge"), ctx.pick("microwave")
    if fridge is None or mw is None:
        return None
    steps = [f"Go to {ctx.name(fridge)}.", "Open the fridge and take out the food.", "Close the fridge door.",
             f"Walk to {ctx.name(mw)}.", "Put the food in the microwave and start it.", "Take the food out when it is hot."]
    return "heat up some food", steps, [fridge, mw]


def put_book_away(ctx: PlanContext) -> Plan | None:
    book = ctx.pick("book", lambda b: ctx.facts.support(b) is None or ctx.facts.support(b).category != "shelf")
    shelf = ctx.pick("shelf")
    if book is None or shelf is None:
        return None
    steps = [f"Go to {ctx.place(book)}.", f"Pick up {ctx.name(book)}.", f"Carry it to {ctx.name(shelf)}.",
             "Put the book on a free board of the shelf."]
    return "put the book away", steps, ctx.with_support(book) + [shelf]


def throw_bottle(ctx: PlanContext) -> Plan | None:
    bottle, trash = ctx.pick("bottle"), ctx.pick("trash_can")
    if bottle is None or trash is None:
        return None
    steps = [f"Go to {ctx.place(bottle)}.", f"Pick up {ctx.name(bottle)}.", f"Walk to {ctx.name(trash)}.",
             "Drop the bottle into the trash can."]
    return "throw away the bottle", steps, ctx.with_support(bottle) + [trash]


def watch_tv(ctx: PlanContext) -> Plan | None:
    tv = ctx.pick("tv")
    seat = next((s for s in (ctx.pick(c) for c in SEATS) if s is not None), None)
    if tv is None or seat is None:
        return None
    word = L.display(seat.category)
    steps = [f"Go to {ctx.name(tv)}.", "Turn on the tv.", f"Walk to {ctx.name(seat)}.", f"Sit down on the {word} and watch."]
    return "watch tv", steps, [tv, seat]


def wash_hands(ctx: PlanContext) -> Plan | None:
    sink = ctx.pick("sink")
    if sink is None:
        return None
    steps = [f"Go to {ctx.name(sink)}.", "Turn on the tap.", "Wash your hands with soap.", "Rinse them and turn off the tap."]
    return "wash my hands", steps, [sink]


def cold_drink(ctx: PlanContext) -> Plan | None:
    fridge = ctx.pick("fridge")
    if fridge is None:
        return None
    mug = ctx.pick("mug")
    steps = [f"Go to {ctx.name(fridge)}.", "Open the fridge door.", "Take out a cold drink.", "Close the fridge."]
    objects = [fridge]
    if mug is not None:
        steps += [f"Go to {ctx.place(mug)}.", f"Pour the drink into {ctx.name(mug)}."]
        objects += ctx.with_support(mug)
    return "get a cold drink", steps, objects


def work_on_laptop(ctx: PlanContext) -> Plan | None:
    laptop, chair = ctx.pick("laptop"), ctx.pick("chair")
    if laptop is None or chair is None:
        return None
    steps = [f"Go to {ctx.name(chair)}.", f"Move it next to {ctx.place(laptop)}.", "Sit down on the chair.",
             f"Open {ctx.name(laptop)} and start working."]
    return "work on the laptop", steps, [chair] + ctx.with_support(laptop)


def store_box(ctx: PlanContext) -> Plan | None:
    box = ctx.pick("box", lambda b: b.support_relation == "floor")
    store = ctx.pick("cabinet") or ctx.pick("shelf")
    if box is None or store is None:
        return None
    word = L.display(store.category)
    steps = [f"Go to {ctx.name(box)}.", "Pick up the box.", f"Carry it to {ctx.name(store)}.",
             f"Put the box on top of the {word}."]
    return "tidy up the box on the floor", steps, [box, store]


def go_to_bed(ctx: PlanContext) -> Plan | None:
    bed = ctx.pick("bed")
    if bed is None:
        return None
    lamp = ctx.pick("lamp")
    steps, objects = [], [bed]
    if lamp is not None:
        steps += [f"Go to {ctx.name(lamp)}.", "Turn off the lamp."]
        objects.append(lamp)
    steps += [f"Walk to {ctx.name(bed)}.", "Lie down on the bed and sleep."]
    return "get ready to sleep", steps, objects


def water_plant(ctx: PlanContext) -> Plan | None:
    plant, sink = ctx.pick("plant"), ctx.pick("sink")
    if plant is None or sink is None:
        return None
    steps = [f"Go to {ctx.name(sink)}.", "Fill a watering can with water.", f"Carry it to {ctx.name(plant)}.",
             "Pour the water slowly into the pot."]
    return "water the plant", steps, [sink, plant]


RECIPES: tuple[Callable[[PlanContext], Plan | None], ...] = (
    make_coffee, heat_food, put_book_away, throw_bottle, watch_tv, wash_hands, cold_drink, work_on_laptop, store_box,
    go_to_bed, water_plant)
