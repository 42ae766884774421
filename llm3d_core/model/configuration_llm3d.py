"""Configuration of the 3D-LLM (scene encoder + projector + LLM), validated on construction.

Saved as `config.json` beside every checkpoint and read back before any weight is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm3d_core.config import require_non_negative
from llm3d_core.device import validate_device_name

LLM_DTYPES = ("float32", "bfloat16", "float16", "auto")
SCENE_ENCODERS = ("points", "objects")
GROUNDING_HEADS = ("location_tokens", "mask")
SCENE_INPUTS = ("map", "frames2d")  # what scene tokens come from: the fused map | per-frame 2D features
MASK_TEXT_SOURCES = ("hidden", "embeddings")
MASK_POOLS = ("points", "objects")
MASK_QUERY_INITS = ("learned", "pointer")
TASKS = ("caption", "qa", "dialog", "plan", "ground", "navigate")
ABSENT_ANSWER = "not here"  # the answer of a referring expression whose target the scene does not hold


def is_absent(rec: dict[str, Any]) -> bool:
    """A ground record whose target is not in the scene (qtype absent/<kind>; no object, no box)."""
    return str(rec.get("qtype", "")).startswith("absent/")
DEFAULT_SYSTEM_PROMPT = ("You are a robot's 3D scene assistant. You see the scene through the scene tokens. "
                         "Answer briefly. Locations are written with <loc_i> tokens.")


def require_sizes(config: Any, names: tuple[str, ...], prefix: str = "") -> None:
    """ValueError unless every field in `names` is a positive integer and d_model splits into num_heads."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{prefix}{name} must be a positive integer, got {value!r}")
    if config.d_model % config.num_heads:
        raise ValueError(f"{prefix}d_model ({config.d_model}) must be divisible by {prefix}num_heads "
                         f"({config.num_heads})")


@dataclass
class MaskHeadConfig:
    """UniVLG's mask-decoding grounding head (Jain et al., ICML 2025, sec. 3); see model/mask_head.py.

    Only read when `Llm3dConfig.grounding_head == "mask"`. Loss weights follow Mask2Former's
    (mask BCE 5, Dice 5, class 2, no-object 0.1) and DETR's box terms (L1 5, GIoU 2).
    """

    num_queries: int = 16  # object queries; one is matched to each referred object
    num_layers: int = 3  # decoder layers (points cross-attn, text cross-attn, self-attn, MLP)
    d_model: int = 128  # width of queries and per-point mask embeddings
    num_heads: int = 4
    # hidden: the LLM's last hidden states of the question (contextual) | embeddings: its input embeddings (no LLM pass)
    text_source: str = "hidden"
    masked_attention: bool = True  # Mask2Former: queries attend only to points of their previous mask
    deep_supervision: bool = True  # losses on every layer's prediction, not only the last
    target_margin: float = 0.02  # metres; points this far outside a target box still belong to its mask
    # points: every point has its own mask logit (UniVLG as published) | objects: the map's object
    # proposals are superpoints, each point takes the mean logit of the proposal whose box holds it
    # and points of no proposal are never in a mask (model/mask_head.py, pool_over_segments)
    pool: str = "points"
    # learned: num_queries learned queries (Mask2Former; UniVLG as published) | pointer: two-stage
    # queries, one per map proposal among the object pointer's top num_queries, starting from that
    # proposal's box and feature with its points as the initial mask and the pointer's probability
    # (as a logit) added to the query's score (model/mask_head.py, MaskGroundingHead.proposal_queries)
    query_init: str = "learned"
    # Points sampled from the map for the head: denser than the scene encoder's num_points, since a
    # mask's box is only as tight as the points it holds (of the test split's objects, the points
    # inside them box 48 % at IoU >= 0.25 with 2048 points, 66 % with 8192, 70 % with 16384).
    num_points: int = 8192
    # Up to this many of the num_points are drawn from inside each map object's box before the
    # uniform sample fills the rest (0: uniform only). A mask's box is only as wide as the points in
    # it, and a uniform sample leaves small objects a handful (scene.scene_from_arrays).
    object_points: int = 0
    # Metres: the size of the map voxel each point stands for. A mask's box is its points' box grown
    # by half of it on every side, as the mapper boxes its objects (0: the points' box).
    point_size: float = 0.0
    loss_weight: float = 1.0  # mask-grounding loss added to the LM loss for ground records
    mask_bce_weight: float = 5.0
    dice_weight: float = 5.0
    score_weight: float = 2.0
    no_object_weight: float = 0.1  # weight of unmatched queries in the score loss
    box_l1_weight: float = 5.0  # L1 on boxes normalised by the scene extent
    giou_weight: float = 2.0

    def __post_init__(self) -> None:
        require_sizes(self, ("num_queries", "num_layers", "d_model", "num_heads", "num_points"), "mask_head.")
        if self.text_source not in MASK_TEXT_SOURCES:
            raise ValueError(f"mask_head.text_source must be one of {MASK_TEXT_SOURCES}, got {self.text_source!r}")
        if self.pool not in MASK_POOLS:
            raise ValueError(f"mask_head.pool must be one of {MASK_POOLS}, got {self.pool!r}")
        if self.query_init not in MASK_QUERY_INITS:
            raise ValueError(f"mask_head.query_init must be one of {MASK_QUERY_INITS}, got {self.query_init!r}")
        if self.object_points < 0:
            raise ValueError(f"mask_head.object_points must be >= 0, got {self.object_points}")
        for name in ("target_margin", "point_size", "loss_weight", "mask_bce_weight", "dice_weight", "score_weight",
                     "no_object_weight", "box_l1_weight", "giou_weight"):
            require_non_negative(f"mask_head.{name}", getattr(self, name))


@dataclass
class PointerConfig:
    """The object pointer (model/object_pointer.py): a grounding answer's six location tokens are
    copied from the map object the LLM points at, instead of generated one by one.

    Only read when `Llm3dConfig.object_pointer` is true (objects scene encoder).
    """

    d_model: int = 256  # width of the pointer's query/object transformer
    num_layers: int = 2  # transformer layers over [query; objects] (relations such as "closest to")
    num_heads: int = 4
    dropout: float = 0.1  # a few thousand referring records train it: regularise
    # Also read the referring expression's tokens (the LLM's input embeddings, no extra LLM pass):
    # relations name a second object ("the box closest to the chair") that the query state may blur.
    question_tokens: bool = False
    max_question_tokens: int = 32
    match_iou: float = 0.25  # a training box's pointer target is the proposal overlapping it most, if at least this
    loss_weight: float = 1.0  # pointer cross-entropy added to the LM loss (joint training)
    # Abstention (model/absence.py): a head on the pointer's query state says "nothing here matches";
    # trained with train.stage absent, its threshold calibrated on val (the stage writes both).
    absence: bool = False
    absent_threshold: float = 0.5  # P(absent) at or above this: the target is reported absent

    def __post_init__(self) -> None:
        require_sizes(self, ("d_model", "num_layers", "num_heads", "max_question_tokens"), "pointer.")
        if not 0.0 < self.absent_threshold <= 1.0:
            raise ValueError(f"pointer.absent_threshold must be in (0, 1], got {self.absent_threshold}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"pointer.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"pointer.match_iou must be in (0, 1], got {self.match_iou}")
        require_non_negative("pointer.loss_weight", self.loss_weight)


@dataclass
class Llm3dConfig:
    # LLM backbone
    llm_path: str = ""  # local HF causal-LM folder; "" = SmolLM2-135M-Instruct converted from its GGUF package
    llm_cache: str = ""  # where the converted SmolLM2 lives; "" = $LLM3D_CACHE or <venv>/share/llm3d
    llm_hidden_size: int = 0  # filled from the LLM on build; a checkpoint refuses another LLM
    llm_vocab_size: int = 0  # idem (rows of the LLM's input embedding)
    # Weights of the frozen LLM in memory: bfloat16 halves its 0.52 GB (SmolLM2-135M) and runs faster on
    # CPUs with bf16 units; the trained parts stay float32 either way. A runtime choice, not a trained one.
    llm_dtype: str = "float32"  # float32 | bfloat16 | float16 | auto (bf16 where the device computes it natively;
    # float32 for an LLM with trained weights: freeze_llm false; LoRA adapters stay float32 on a bf16 base)
    freeze_llm: bool = True  # 3D-LLM sec. 3.4 keeps the LLM frozen
    lora: bool = False  # add LoRA adapters (peft) to the LLM's attention projections
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    # Scene encoder
    scene_encoder: str = "points"  # points (3D-LLM sec. 3) | objects (Chat-Scene)
    feature_dim: int = 512  # D of the map's point features (128 visual + 384 text-aligned by default)
    text_dim: int = 384  # object text features (MiniLM space)
    num_points: int = 2048  # points sampled from the map per scene
    num_bins: int = 256  # position-embedding bins per axis (= location-token bins)
    pos_dim: int = 32  # sinusoidal position-embedding width per axis (3 axes concatenated)
    d_model: int = 256  # width of the perceiver / object encoder
    num_queries: int = 32  # learned queries of the perceiver (3D-LLM's Q-Former uses 32)
    num_layers: int = 2  # perceiver blocks (cross-attention + self-attention + MLP)
    num_heads: int = 4
    dropout: float = 0.0
    max_objects: int = 64  # object tokens per scene (objects encoder)
    # What the scene tokens are made of: map (the fused 3D map) | frames2d (the 2D baseline: keyframes'
    # pooled features in the object slots, no positions; model/frames2d.py). Added after the first
    # checkpoints: the default reproduces those.
    scene_input: str = "map"
    frame_grid: int = 2  # frames2d: each keyframe's feature map pooled to frame_grid x frame_grid tokens
    # Prompting and decoding
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_input_tokens: int = 1024  # prompt incl. scene prefix and history; longer input is an error
    max_new_tokens: int = 48
    constrain_locations: bool = True  # ground/navigate: once a <loc> starts, force the exact token count
    # Grounding (fields added after the first checkpoints: their defaults reproduce those exactly)
    grounding_head: str = "location_tokens"  # location_tokens (3D-LLM) | mask (adds UniVLG's mask head beside them)
    mask_head: MaskHeadConfig = field(default_factory=MaskHeadConfig)
    # objects encoder: ground answers copy the box of the object the LLM points at (object_pointer.py)
    object_pointer: bool = False
    pointer: PointerConfig = field(default_factory=PointerConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0

    def __post_init__(self) -> None:
        validate_device_name(self.device)
        if self.scene_encoder not in SCENE_ENCODERS:
            raise ValueError(f"scene_encoder must be one of {SCENE_ENCODERS}, got {self.scene_encoder!r}")
        require_sizes(self, ("feature_dim", "text_dim", "num_points", "num_bins", "pos_dim", "d_model", "num_queries",
                             "num_layers", "num_heads", "max_objects", "max_input_tokens", "max_new_tokens", "lora_r"))
        if self.pos_dim % 2:
            raise ValueError(f"pos_dim must be even (sin and cos halves), got {self.pos_dim}")
        if self.num_bins != 256:
            raise ValueError(f"num_bins must be 256 (the <loc_0..255> vocabulary), got {self.num_bins}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"dropout values must be in [0, 1), got {self.dropout}, {self.lora_dropout}")
        if self.scene_input not in SCENE_INPUTS:
            raise ValueError(f"scene_input must be one of {SCENE_INPUTS}, got {self.scene_input!r}")
        if self.frame_grid < 1:
            raise ValueError(f"frame_grid must be >= 1, got {self.frame_grid}")
        if self.scene_input == "frames2d" and (self.object_pointer or self.grounding_head != "location_tokens"):
            raise ValueError("scene_input frames2d has no map objects or points to point at: it needs "
                             "object_pointer false and grounding_head location_tokens")
        if self.grounding_head not in GROUNDING_HEADS:
            raise ValueError(f"grounding_head must be one of {GROUNDING_HEADS}, got {self.grounding_head!r}")
        if self.object_pointer and self.scene_encoder != "objects":
            raise ValueError("object_pointer needs scene_encoder: objects (it points at object tokens)")
        if self.grounding_head == "mask" and self.mask_head.query_init == "pointer" and not self.object_pointer:
            raise ValueError("mask_head.query_init pointer starts the mask queries from the object pointer's "
                             "choice: it needs object_pointer true")
        if not self.freeze_llm and self.lora:
            raise ValueError("lora=true needs freeze_llm=true (LoRA trains adapters on a frozen LLM)")
        if self.llm_dtype not in LLM_DTYPES:
            raise ValueError(f"llm_dtype must be one of {LLM_DTYPES}, got {self.llm_dtype!r}")
        if self.llm_dtype not in ("float32", "auto") and not self.freeze_llm:
            raise ValueError(f"llm_dtype {self.llm_dtype} needs freeze_llm=true (trained LLM weights stay float32; "
                             "auto means float32 for them)")

    def to_dict(self) -> dict[str, Any]:
        from llm3d_core.config import config_to_dict

        return config_to_dict(self)
