"""The reasoner node's naming ahead (llm3d_ros.nodes.reasoner_inputs.MapInputs._warm_names) run in a
real single-thread worker over a real Reasoner, outside a ROS graph: it queues one pass at a time
until the names are made, and stops at once when there is nothing to name (a model without an
object pointer), instead of queueing itself forever."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm3d_ros.nodes.reasoner_inputs import MapInputs

pytestmark = pytest.mark.ros


class Worker(MapInputs):
    """The attributes of ReasonerNode that _warm_names uses: worker, stop flag, reasoner, logger."""

    def __init__(self, reasoner) -> None:
        self._reasoner = reasoner
        self._worker = ThreadPoolExecutor(max_workers=1)
        self._stopping = threading.Event()

    def get_logger(self):
        return logging.getLogger("llm3d_reasoner_test")

    def drain(self) -> None:
        """Waits until the worker has run everything queued so far (and what that queued)."""
        for _ in range(100):
            if self._worker.submit(lambda: self._worker._work_queue.qsize()).result(timeout=30) == 0:
                return
        raise AssertionError("the worker never drained: naming ahead keeps queueing itself")


@pytest.fixture(scope="module")
def pointerless_reasoner(tmp_path_factory):
    from llm3d_core.mapping.mapper import FeatureFusionMapper
    from llm3d_core.reasoner import Reasoner, load_model, saved_map_version
    from tests.core.test_reasoner import build_sim_map, save_tiny_llm, tiny_model_config

    root = tmp_path_factory.mktemp("warm_names")
    map_dir = build_sim_map(root / "map")
    model = load_model(None, tiny_model_config(save_tiny_llm(root / "llm")), "cpu")
    reasoner = Reasoner(model)
    reasoner.set_map(FeatureFusionMapper.load(map_dir, device="cpu"), saved_map_version(map_dir))
    assert model.pointer is None
    return reasoner


def test_nothing_to_name_stops_at_once(pointerless_reasoner, monkeypatch):
    calls = []
    real = pointerless_reasoner.warm_names
    monkeypatch.setattr(pointerless_reasoner, "warm_names", lambda passes=1: calls.append(passes) or real(passes))
    worker = Worker(pointerless_reasoner)
    try:
        worker._submit_warm_names(pointerless_reasoner.map.version, time.monotonic())
        worker.drain()
        assert calls == [1] and not pointerless_reasoner.names_ready
    finally:
        worker._worker.shutdown(wait=True)


def test_passes_are_queued_one_at_a_time_until_done_and_stop_on_another_map(pointerless_reasoner, monkeypatch):
    left = {"n": 3}

    def three_passes(passes=1):  # the reasoner's answer for a map that needs three more passes
        left["n"] -= passes
        return left["n"] <= 0

    monkeypatch.setattr(pointerless_reasoner, "warm_names", three_passes)
    worker = Worker(pointerless_reasoner)
    try:
        worker._submit_warm_names(pointerless_reasoner.map.version, time.monotonic())
        worker.drain()
        assert left["n"] == 0
        left["n"] = 3
        worker._submit_warm_names("an older save", time.monotonic())  # not the loaded map: nothing runs
        worker.drain()
        assert left["n"] == 3
    finally:
        worker._worker.shutdown(wait=True)
