"""Shared by the reasoner node's test files: one tiny trained checkpoint and a small sim map."""

from pathlib import Path

import pytest

from tests.core.test_reasoner import build_sim_map, save_tiny_llm, train_tiny_checkpoint


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reasoner_node")
    map_dir = build_sim_map(root / "map")
    ckpt = train_tiny_checkpoint(root / "ckpt", save_tiny_llm(root / "llm"), map_dir)
    return {"root": root, "map": map_dir, "ckpt": ckpt}
