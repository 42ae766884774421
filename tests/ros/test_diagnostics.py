"""The /diagnostics level rules (llm3d_ros.diagnostics), as pure functions of a status dict and a window.

The nodes publishing them over DDS are checked in test_mapper_node.py and test_reasoner_node.py.
"""

import subprocess
import textwrap

import pytest

from llm3d_ros.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    CounterWindow,
    Window,
    mapper_diagnosis,
    reasoner_diagnosis,
    sim_bridge_diagnosis,
    status_name,
)

MAPPER_LIMITS = {"frame_timeout_s": 3.0, "max_drop_ratio": 0.8}


def mapper_status(**changes) -> dict:
    """A mapper status shaped as llm3d_mapper publishes it (see its module docstring)."""
    status = {
        "node": "llm3d_mapper", "stamp": 100.0, "received": {"color": 0, "depth": 0, "camera_info": 0},
        "paired": 0, "fused": 0, "queue": 0, "dropped": {"stale": 0, "unpaired": 0},
        "errors": {"bad_image": 0, "no_transform": 0, "fusion_failed": 0, "save_failed": 0},
        "tf": {"malformed": 0, "future": 0, "rejected": 0}, "map": {"voxels": 0, "objects": 0, "frames": 0},
        "last_error": {"kind": "", "message": "", "stamp": 0.0},
    }
    status.update(changes)
    return status


def flowing(seconds: float = 10.0, fused: int = 60, stale: int = 10, **deltas) -> Window:
    """A window in which a 10 Hz camera delivered pairs: 100 colour + 100 depth images in 10 s."""
    base = {"received.color": 100, "received.depth": 100, "paired": 100, "fused": fused, "dropped.stale": stale}
    return Window(seconds, {**base, **deltas}, {"received.color": 0.1, "received.depth": 0.1})


def mapper(status: dict, window: Window):
    return mapper_diagnosis(status, window, **MAPPER_LIMITS)


def test_mapper_is_stale_before_its_first_frame_and_ok_while_fusing():
    before = mapper(mapper_status(), Window())
    assert before.level == STALE and before.message == "no camera frames received yet"

    running = mapper_status(received={"color": 500, "depth": 500, "camera_info": 500}, fused=300,
                            map={"voxels": 1234, "objects": 3, "frames": 300})
    after = mapper(running, flowing())
    assert after.level == OK, after.message
    assert after.message == "fusing 6.0 frames/s; map of 1234 voxels, 3 objects"
    assert after.values["drop_ratio"] == pytest.approx(0.1)  # 10 stale pairs = 20 of 200 images


def test_mapper_warns_when_the_camera_goes_quiet():
    status = mapper_status(received={"color": 50, "depth": 50, "camera_info": 50}, fused=40)
    quiet = Window(10.0, {}, {"received.color": 4.2, "received.depth": 4.2})
    d = mapper(status, quiet)
    assert d.level == WARN and d.message == "no camera frames for 4 s"
    assert mapper(status, Window(10.0, {}, {"received.color": 2.0, "received.depth": 2.0})).level == OK


def test_mapper_drop_ratio_above_the_limit_warns():
    status = mapper_status(received={"color": 500, "depth": 500, "camera_info": 500}, fused=100)
    d = mapper(status, flowing(fused=5, stale=90))  # 180 of 200 images dropped as stale pairs
    assert d.level == WARN and "dropped 90% of camera images in the last 10 s, fused 5" in d.message
    assert d.values["drop_ratio"] == pytest.approx(0.9)
    # Colour and depth that never pair (a stream missing, or stamps apart): unpaired images count too.
    unpaired = mapper(status, flowing(fused=0, stale=0, paired=0, **{"dropped.unpaired": 190}))
    assert unpaired.level == WARN and "190 images without a colour/depth partner" in unpaired.message
    # Too few images to judge: a ratio over a couple of frames says nothing.
    few = Window(10.0, {"received.color": 2, "received.depth": 2, "dropped.stale": 2}, {})
    assert mapper(status, few).level == OK


def test_mapper_recent_errors_warn_and_its_own_failures_are_errors():
    last = {"kind": "no_transform", "message": "no camera pose for the frame at 3.000 s: no map frame", "stamp": 99.0}
    status = mapper_status(received={"color": 5, "depth": 5, "camera_info": 5}, last_error=last)
    d = mapper(status, flowing(**{"errors.no_transform": 3}))
    assert d.level == WARN
    assert d.message == ("bad input in the last 10 s: no_transform 3 (last: no camera pose for the frame at 3.000 s: "
                         "no map frame)")
    # An error counted long ago is out of the window: OK again, the last error stays in the values.
    assert mapper(status, flowing()).level == OK

    failed = mapper(mapper_status(received={"color": 5, "depth": 5, "camera_info": 5},
                                  last_error={"kind": "save_failed", "message": "disk full", "stamp": 99.0}),
                    flowing(**{"errors.save_failed": 1, "errors.bad_image": 2}))
    assert failed.level == ERROR
    assert failed.message.startswith("save_failed 1 in the last 10 s (last: disk full); bad input")  # worst first


def test_mapper_tf_refusals_warn():
    status = mapper_status(received={"color": 5, "depth": 5, "camera_info": 5})
    d = mapper(status, flowing(**{"tf.future": 4, "tf.rejected": 4}))
    assert d.level == WARN and d.message == "TF samples refused or clock jumps in the last 10 s: future 4"


def test_the_worst_level_wins_and_stale_outranks_warn():
    # No frame yet, but a TF problem already: STALE (the worse) first, the warning still listed.
    d = mapper(mapper_status(), Window(0.0, {"tf.malformed": 1}, {}))
    assert d.level == STALE and d.message == "no camera frames received yet; TF samples refused or clock jumps " \
                                             "since start: malformed 1"


def reasoner_status(state: str = "ready", **changes) -> dict:
    status = {
        "node": "llm3d_reasoner", "stamp": 200.0,
        "model": {"state": state, "message": "", "checkpoint": "/ckpt", "trained": True},
        "map": {"dir": "/maps/live", "version": "abc123", "objects": 7, "points": 2048, "frames": 40,
                "loaded_at": 170.0, "error": "", "loads": 1, "input": "map"},
        "sessions": 0, "pending": 0, "max_pending": 4, "navigations": 0,
        "requests": {"ask": {"count": 3, "failed": 0, "last_s": 0.4, "mean_s": 0.5}},
        "errors": {"busy": 0, "timeout": 0, "internal": 0},
        "last_error": {"kind": "", "message": "", "stamp": 0.0}, "tf": {},
    }
    status.update(changes)
    return status


def test_reasoner_levels_follow_the_model_state():
    loading = reasoner_diagnosis(reasoner_status("loading"), Window())
    assert loading.level == WARN and loading.message == "loading the model"
    failed = reasoner_diagnosis(reasoner_status("failed", model={"state": "failed", "trained": True,
                                "message": "the model could not be loaded: bad safetensors"}), Window())
    assert failed.level == ERROR and failed.message == "the model could not be loaded: bad safetensors"
    ready = reasoner_diagnosis(reasoner_status(), Window(10.0))
    assert ready.level == OK, ready.message
    assert ready.message == ("model ready; map save abc123: 7 objects from 40 frames, loaded 30 s ago; "
                             "0 of 4 request places taken")
    assert ready.values["map_age_s"] == 30.0


def test_reasoner_warns_without_a_map_unless_it_answers_about_the_camera_view():
    no_map = reasoner_status(map={"dir": "/maps/live", "version": "", "error": "", "input": "none"})
    d = reasoner_diagnosis(no_map, Window())
    assert d.level == WARN and d.message == "no map yet (waiting for a save in /maps/live)"
    view = reasoner_status(map={"dir": "/maps/live", "version": "", "error": "", "input": "camera view"})
    assert reasoner_diagnosis(view, Window()).level == OK
    broken = reasoner_status(map={"dir": "/m", "version": "abc", "error": "voxels file belongs to save x"})
    assert reasoner_diagnosis(broken, Window()).message == "map not loaded: voxels file belongs to save x"
    untrained = reasoner_status(model={"state": "ready", "message": "", "trained": False})
    assert "untrained" in reasoner_diagnosis(untrained, Window()).message


def test_reasoner_queue_full_busy_timeouts_and_internal_errors():
    full = reasoner_diagnosis(reasoner_status(pending=4), Window(10.0))
    assert full.level == WARN and full.message == "request queue full (4 of 4 waiting)"
    assert reasoner_diagnosis(reasoner_status(pending=3), Window(10.0)).level == OK

    busy = reasoner_diagnosis(reasoner_status(), Window(10.0, {"errors.busy": 6}))
    assert busy.level == WARN and busy.message == "6 requests refused as busy in the last 10 s"
    last = {"kind": "timeout", "message": "ask: no answer within request_timeout_s=120.0 s", "stamp": 199.0}
    timeout = reasoner_diagnosis(reasoner_status(last_error=last), Window(10.0, {"errors.timeout": 1}))
    assert timeout.level == WARN and timeout.message.endswith("(last: ask: no answer within request_timeout_s=120.0 s)")
    internal = reasoner_diagnosis(reasoner_status(), Window(10.0, {"errors.internal": 1, "errors.busy": 1}))
    assert internal.level == ERROR and internal.message.startswith("1 internal errors")
    # Requests refused for their own fault (empty question, unknown session) are not the node's health.
    refused = {"kind": "refused", "message": "ask: the question is empty", "stamp": 199.0}
    assert reasoner_diagnosis(reasoner_status(last_error=refused), Window(10.0)).level == OK


def sim(status: dict, window: Window = Window(10.0)):
    return sim_bridge_diagnosis(status, window, requested_hz=10.0, min_rate_ratio=0.8)


def sim_status(**changes) -> dict:
    status = {"node": "llm3d_sim_bridge", "stamp": 50.0, "scene": "s11000", "frames": 300, "rate_hz": 9.9,
              "mode": "idle", "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0},
              "goal": {"state": "idle", "message": "", "remaining_m": 0.0}, "collisions": 0,
              "received": {"cmd_vel": 0, "goal": 0}, "errors": {"bad_cmd_vel": 0, "bad_goal": 0, "step_failed": 0}}
    status.update(changes)
    return status


def test_sim_bridge_rate_goal_and_errors():
    assert sim(sim_status(frames=1, rate_hz=0.0), Window()).level == STALE  # its first status
    ok = sim(sim_status(mode="goal", goal={"state": "active", "message": "", "remaining_m": 1.234}))
    assert ok.level == OK and ok.message == "9.9 of 10 frames/s; driving to a goal, 1.23 m left"
    slow = sim(sim_status(rate_hz=6.5))
    assert slow.level == WARN and slow.message == "simulating 6.5 of the requested 10 frames/s"
    bad = sim(sim_status(), Window(10.0, {"errors.bad_goal": 2}))
    assert bad.level == WARN and bad.message == "ignored bad input in the last 10 s: bad_goal 2"
    assert sim(sim_status(), Window(10.0, {"errors.step_failed": 1})).level == ERROR


def test_counter_window_measures_the_last_window_and_how_long_counters_kept_their_value():
    w = CounterWindow(window_s=3.0)
    first = w.update(0.0, {"fused": 2, "received": {"color": 5}, "stamp": 0.0, "ok": True})
    assert first.span_s == 0.0 and first.delta("fused") == 2  # counted since the node started
    assert "ok" not in first.deltas  # booleans are not counters
    for t in range(1, 6):  # one frame fused per second, camera stops after t=2
        last = w.update(float(t), {"fused": 2 + t, "received": {"color": 5 + min(t, 2)}})
    assert last.span_s == 3.0 and last.delta("fused") == 3 and last.rate("fused") == 1.0
    assert last.delta("received.color") == 0 and last.unchanged_s["received.color"] == 3.0
    with pytest.raises(ValueError, match="window_s"):
        CounterWindow(0.0)


def test_status_names_carry_the_namespace():
    assert status_name("/llm3d_mapper", "fusion") == "llm3d_mapper: fusion"
    assert status_name("/robot1/llm3d_mapper", "fusion") == "robot1/llm3d_mapper: fusion"


@pytest.mark.ros
def test_diagnostic_status_message_carries_level_and_flattened_values():
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.serialization import deserialize_message, serialize_message

    from llm3d_ros.diagnostics import diagnostic_status_msg

    status = mapper_status(received={"color": 5, "depth": 5, "camera_info": 5}, fused=3)
    d = mapper(status, flowing())
    msg = diagnostic_status_msg("llm3d_mapper: fusion", "cpu", d, status)
    msg = deserialize_message(serialize_message(msg), DiagnosticStatus)  # as a subscriber receives it
    assert msg.level == DiagnosticStatus.OK and msg.name == "llm3d_mapper: fusion" and msg.hardware_id == "cpu"
    values = {kv.key: kv.value for kv in msg.values}
    assert values["received.color"] == "5" and values["errors.no_transform"] == "0"
    assert values["drop_ratio"] == "0.1" and values["last_error.kind"] == ""
    assert "node" not in values and "stamp" not in values
    warn = diagnostic_status_msg("x: y", "", mapper(mapper_status(), Window()), mapper_status())
    assert deserialize_message(serialize_message(warn), DiagnosticStatus).level == DiagnosticStatus.STALE


def test_config_fields_validate_and_the_yaml_sets_them():
    from llm3d_core.config import load_config
    from llm3d_ros.nodes.mapper_config import MapperNodeConfig
    from llm3d_ros.nodes.reasoner_config import ReasonerNodeConfig
    from llm3d_ros.nodes.sim_bridge_config import SimBridgeConfig

    for cls, node in ((MapperNodeConfig, "llm3d_mapper"), (ReasonerNodeConfig, "llm3d_reasoner"),
                      (SimBridgeConfig, "llm3d_sim_bridge")):
        cfg = load_config(cls, node)  # launch/llm3d.yaml
        assert cfg.diagnostics_topic == "/diagnostics" and cfg.diagnostics_window_s > 0
        assert cls(diagnostics_topic="").diagnostics_topic == ""  # '' turns it off
        with pytest.raises(ValueError, match="diagnostics_window_s"):
            cls(diagnostics_window_s=0)
    with pytest.raises(ValueError, match="max_drop_ratio"):
        MapperNodeConfig(max_drop_ratio=1.5)
    with pytest.raises(ValueError, match="min_rate_ratio"):
        SimBridgeConfig(min_rate_ratio=-0.1)


def test_the_rules_import_without_rclpy(python_exe):
    probe = textwrap.dedent("""
        import sys
        for name in ("rclpy", "diagnostic_msgs"):
            sys.modules[name] = None
        from llm3d_ros.diagnostics import Window, mapper_diagnosis
        print(mapper_diagnosis({}, Window(), frame_timeout_s=3.0, max_drop_ratio=0.8).message)
    """)
    result = subprocess.run([python_exe, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no camera frames received yet"
