"""Scenes: the object catalog, the procedural generator, annotations and .glb I/O, seed splits."""

from sim.scenes.catalog import CATALOG, PALETTE, category
from sim.scenes.generator import generate_scene
from sim.scenes.scene import SPLITS, Instance, Scene, SceneMesh, load_scene, seeds, split_of

__all__ = ["CATALOG", "PALETTE", "SPLITS", "Instance", "Scene", "SceneMesh", "category", "generate_scene",
           "load_scene", "seeds", "split_of"]
