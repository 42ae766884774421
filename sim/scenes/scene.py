"""Scenes: instance annotations + a coloured triangle mesh; JSON/.glb serialisation; seed splits.

World frame: z up (ROS REP-103), metres, floor at z = 0. Instance id 0 is the structure (floor,
walls); objects have ids >= 1. The .glb holds one mesh node per instance named
`inst_<id>_<category>` (structure: `inst_0_<part>`) with per-vertex colours, stored z-up as
is (glTF's nominal y-up is not applied, so a round trip is exact; `load_scene(..., up="y")`
converts a y-up user mesh).

Scene JSON schema (version 1):
    {"format": "llm3d-sim-scene", "version": 1, "scene_id": str, "seed": int | null,
     "split": "train" | "val" | "test" | null, "up_axis": "z", "units": "m", "mesh": "scene.glb",
     "bounds": {"min": [x, y, z], "max": [x, y, z]},
     "rooms": [{"id": int, "min": [x, y], "max": [x, y]}],           # interior free rectangles
     "doorways": [{"center": [x, y], "width": float, "height": float, "wall_axis": "x" | "y"}],
     "instances": [{"id": int >= 1, "category": str, "color": str, "rgb": [r, g, b],
                    "box_min": [x, y, z], "box_max": [x, y, z], "yaw_deg": float, "room": int,
                    "support": {"relation": "floor" | "on" | "in", "id": int}}]}   # id 0 with "floor"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

FORMAT, VERSION = "llm3d-sim-scene", 1
SPLITS: dict[str, range] = {"train": range(0, 10000), "val": range(10000, 11000), "test": range(11000, 12000)}
_NODE = re.compile(r"^inst_(\d+)(?:_(.*))?$")


def split_of(seed: int) -> str:
    """The split ("train", "val", "test") whose fixed seed range holds `seed`; others raise ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    for name, rng in SPLITS.items():
        if seed in rng:
            return name
    raise ValueError(f"seed {seed} is outside every split ({', '.join(f'{k}: {r.start}-{r.stop - 1}' for k, r in SPLITS.items())})")


def seeds(split: str, n: int, start: int = 0) -> list[int]:
    """`n` seeds of `split` from its `start`-th one on; the ranges never overlap between splits."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = SPLITS[split]
    if n < 0 or start < 0 or start + n > len(rng):
        raise ValueError(f"split {split!r} has {len(rng)} seeds; cannot take n={n} from start={start}")
    return list(rng[start:start + n])


@dataclass
class Instance:
    """One annotated object; boxes are axis-aligned in the world frame."""

    id: int
    category: str
    color: str
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)
    rgb: tuple[int, int, int] = (128, 128, 128)
    yaw_deg: float = 0.0
    room: int = 0
    support_relation: str = "floor"  # floor | on | in
    support_id: int = 0  # 0 with "floor"

    @property
    def center(self) -> np.ndarray:
        return (self.box_min + self.box_max) / 2

    @property
    def size(self) -> np.ndarray:
        return self.box_max - self.box_min

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "color": self.color, "rgb": list(self.rgb),
                "box_min": np.round(self.box_min, 5).tolist(), "box_max": np.round(self.box_max, 5).tolist(),
                "yaw_deg": self.yaw_deg, "room": self.room,
                "support": {"relation": self.support_relation, "id": self.support_id}}

    @classmethod
    def from_dict(cls, d: dict) -> Instance:
        return cls(id=int(d["id"]), category=str(d["category"]), color=str(d.get("color", "")),
                   box_min=np.asarray(d["box_min"], float), box_max=np.asarray(d["box_max"], float),
                   rgb=tuple(d.get("rgb", (128, 128, 128))), yaw_deg=float(d.get("yaw_deg", 0.0)),
                   room=int(d.get("room", 0)), support_relation=d.get("support", {}).get("relation", "floor"),
                   support_id=int(d.get("support", {}).get("id", 0)))


@dataclass
class SceneMesh:
    """All triangles of a scene with per-face colour and instance id (what the renderers consume)."""

    vertices: np.ndarray  # (V, 3) float32 world coordinates
    faces: np.ndarray  # (F, 3) int32
    face_colors: np.ndarray  # (F, 3) uint8
    face_instance: np.ndarray  # (F,) int32, 0 = structure

    def face_normals(self) -> np.ndarray:
        """(F, 3) unit normals (zero for degenerate faces)."""
        tri = self.vertices[self.faces].astype(np.float64)  # (F, 3 corners, 3)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        return (n / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass
class Scene:
    """A scene: annotations plus one coloured trimesh per node (named `inst_<id>_<name>`)."""

    scene_id: str
    geometry: list[tuple[str, trimesh.Trimesh]]
    instances: list[Instance] = field(default_factory=list)
    seed: int | None = None
    split: str | None = None
    rooms: list[dict] = field(default_factory=list)
    doorways: list[dict] = field(default_factory=list)
    _mesh: SceneMesh | None = field(default=None, repr=False)

    def instance(self, instance_id: int) -> Instance:
        for inst in self.instances:
            if inst.id == instance_id:
                return inst
        raise KeyError(f"scene {self.scene_id} has no instance {instance_id}")

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) min and max corner of all geometry."""
        m = self.mesh()
        return np.stack([m.vertices.min(0), m.vertices.max(0)]).astype(np.float64)

    def mesh(self) -> SceneMesh:
        """The concatenated triangle soup (cached)."""
        if self._mesh is None:
            verts, faces, colors, ids, offset = [], [], [], [], 0
            for name, m in self.geometry:
                match = _NODE.match(name)
                inst = int(match.group(1)) if match else 0
                verts.append(np.asarray(m.vertices, np.float32))
                faces.append(np.asarray(m.faces, np.int64) + offset)
                colors.append(_face_rgb(m))
                ids.append(np.full(len(m.faces), inst, np.int32))
                offset += len(m.vertices)
            if not faces:
                raise ValueError(f"scene {self.scene_id} has no triangles")
            self._mesh = SceneMesh(np.concatenate(verts), np.concatenate(faces).astype(np.int32),
                                   np.concatenate(colors), np.concatenate(ids))
        return self._mesh

    def to_dict(self, mesh_name: str = "scene.glb") -> dict:
        b = self.bounds
        return {"format": FORMAT, "version": VERSION, "scene_id": self.scene_id, "seed": self.seed, "split": self.split,
                "up_axis": "z", "units": "m", "mesh": mesh_name,
                "bounds": {"min": np.round(b[0], 5).tolist(), "max": np.round(b[1], 5).tolist()},
                "rooms": self.rooms, "doorways": self.doorways, "instances": [i.to_dict() for i in self.instances]}

    def save(self, folder: str | Path, stem: str = "scene") -> tuple[Path, Path]:
        """Writes `<stem>.json` (annotations) and `<stem>.glb` (mesh) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        glb, js = folder / f"{stem}.glb", folder / f"{stem}.json"
        tscene = trimesh.Scene()
        for name, m in self.geometry:
            tscene.add_geometry(m, node_name=name, geom_name=name)
        glb.write_bytes(tscene.export(file_type="glb"))
        js.write_text(json.dumps(self.to_dict(glb.name), indent=1))
        return js, glb


def _face_rgb(m: trimesh.Trimesh) -> np.ndarray:
    """(F, 3) uint8 face colours of any trimesh visual (colours, or textures sampled at vertices)."""
    try:
        visual = m.visual
        if visual.kind == "texture":
            visual = visual.to_color()
        if visual.kind in ("face", "vertex"):
            return np.asarray(visual.face_colors, np.uint8)[:, :3]
    except Exception:  # textures without images, odd materials: fall back to grey, geometry is what matters
        pass
    return np.full((len(m.faces), 3), 160, np.uint8)


def _load_glb(path: Path, up: str) -> list[tuple[str, trimesh.Trimesh]]:
    if not path.is_file():
        raise FileNotFoundError(f"scene mesh not found: {path}")
    try:
        loaded = trimesh.load(str(path), force="scene", process=False)
    except Exception as err:
        raise ValueError(f"{path} is not a readable mesh (.glb/.gltf/.obj/.ply): {type(err).__name__}: {err}") from err
    geometry = []
    for i, node in enumerate(loaded.graph.nodes_geometry):
        transform, geom_name = loaded.graph[node]
        mesh = loaded.geometry[geom_name]
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue  # point clouds and empty nodes carry no surfaces to render
        mesh = mesh.copy()
        mesh.apply_transform(transform)
        if up == "y":  # glTF y-up -> z-up: (x, y, z) -> (x, -z, y)
            mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        geometry.append((node if _NODE.match(str(node)) else f"mesh_{i}_{node}", mesh))
    if not geometry:
        raise ValueError(f"{path} holds no triangle meshes")
    return geometry


def load_scene(path: str | Path, up: str = "z") -> Scene:
    """Loads a scene from its JSON annotation file (mesh next to it) or from any mesh file.

    A bare mesh has no semantics unless its nodes are named `inst_<id>_<category>` (as ours are);
    every other node gets instance id 0. `up` is the mesh's up axis ("z" ours, "y" glTF/Habitat).
    """
    path = Path(path)
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    if not path.exists():
        raise FileNotFoundError(f"scene file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not an {FORMAT} annotation file (format={data.get('format')!r})")
        geometry = _load_glb(path.parent / data.get("mesh", "scene.glb"), data.get("up_axis", "z"))
        return Scene(scene_id=data["scene_id"], geometry=geometry,
                     instances=[Instance.from_dict(d) for d in data.get("instances", [])],
                     seed=data.get("seed"), split=data.get("split"), rooms=data.get("rooms", []),
                     doorways=data.get("doorways", []))
    geometry = _load_glb(path, up)
    instances = []
    for name, mesh in geometry:  # semantics from our node naming, when present
        match = _NODE.match(name)
        if match and int(match.group(1)) > 0:
            b = mesh.bounds
            instances.append(Instance(int(match.group(1)), match.group(2) or "object", "", b[0].copy(), b[1].copy()))
    merged: dict[int, Instance] = {}
    for inst in instances:  # several nodes of one instance: union of boxes
        if inst.id in merged:
            merged[inst.id].box_min = np.minimum(merged[inst.id].box_min, inst.box_min)
            merged[inst.id].box_max = np.maximum(merged[inst.id].box_max, inst.box_max)
        else:
            merged[inst.id] = inst
    return Scene(scene_id=path.stem, geometry=geometry, instances=sorted(merged.values(), key=lambda i: i.id))
