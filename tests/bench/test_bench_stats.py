"""The benchmark's intervals (llm3d_bench.stats): checked against cases whose answer is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from llm3d_bench.embodied_stats import add_statistics, breakdown_rows, comparison_rows, format_interval
from llm3d_bench.stats import bootstrap_interval, paired_difference


def test_two_episodes_match_the_exact_bootstrap():
    # Episodes all-right and all-wrong: the 4 equally likely draws pool to means 1, .5, .5, 0, so the
    # exact bootstrap puts 1/4 of its mass at 0 and 1/4 at 1: the 95 % interval is [0, 1].
    iv = bootstrap_interval([[1, 1], [0, 0]], draws=4000)
    assert iv.value == 0.5 and (iv.low, iv.high) == (0.0, 1.0) and iv.records == 4
    exact = sorted(np.mean([x for e in draw for x in ([1, 1], [0, 0])[e]]) for draw in itertools.product([0, 1], repeat=2))
    assert exact == [0.0, 0.5, 0.5, 1.0]


def test_many_independent_episodes_match_the_normal_interval():
    # 400 episodes of one Bernoulli(0.3) record: the bootstrap interval is the binomial one,
    # 0.3 +- 1.96 sqrt(p (1 - p) / n), to within sampling error.
    rng = np.random.default_rng(1)
    values = [[float(v)] for v in rng.random(400) < 0.3]
    iv = bootstrap_interval(values, draws=4000, seed=2)
    p = iv.value
    half = 1.96 * math.sqrt(p * (1 - p) / 400)
    assert iv.low == pytest.approx(p - half, abs=0.008) and iv.high == pytest.approx(p + half, abs=0.008)


def test_constant_values_give_a_zero_width_interval_and_empty_gives_none():
    iv = bootstrap_interval([[0.25, 0.25], [0.25], []])
    assert (iv.value, iv.low, iv.high) == (0.25, 0.25, 0.25)
    assert bootstrap_interval([[], []]) is None


def test_paired_difference_is_exact_when_the_gap_is_the_same_in_every_episode():
    # b is a shifted by 0.1 in every episode: every draw differs by 0.1, however noisy a is.
    a = [[0.9, 0.2], [0.5], [0.7, 0.1, 0.4]]
    b = [[v - 0.1 for v in e] for e in a]
    d = paired_difference(a, b)
    assert d.value == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert d.excludes(0.0)
    same = paired_difference(a, a)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes(0.0)
    with pytest.raises(ValueError, match="same episodes"):
        paired_difference(a, a[:2])


def test_add_statistics_on_a_result():
    def system(name, correct):
        qa = [{"scene": s, "correct": c, "qtype": "count" if k % 2 else "color"}
              for s, cs in zip(("s1", "s2", "s3"), correct) for k, c in enumerate(cs)]
        return {"name": name, "status": "ok", "metrics": {"qa_em@1": float(np.mean([c for cs in correct for c in cs]))},
                "qa": qa}

    result = {"episodes": [{"scene": "s1"}, {"scene": "s2"}, {"scene": "s3"}],
              "systems": [system("3D-LLM, objects encoder", [[1, 1], [1, 0], [1, 1]]),
                          system("2D baseline (per-frame features, same LLM)", [[0, 0], [0, 0], [1, 0]]),
                          {"name": "3D-LLM, points encoder (Q-Former)", "status": "no checkpoint", "metrics": {}}]}
    add_statistics(result, draws=500)
    objects = result["systems"][0]
    assert objects["intervals"]["qa_em@1"]["value"] == pytest.approx(5 / 6)
    assert set(objects["breakdowns"]["QA EM@1 by question type"]) == {"color", "count"}
    (cmp,) = result["comparisons"]  # the points row did not run: only 3D vs 2D is compared
    assert cmp["what"] == "3D map vs 2D frames" and cmp["value"] == pytest.approx(5 / 6 - 1 / 6)
    assert cmp["significant"] == (cmp["low"] > 0)
    assert comparison_rows(result)[0][0] == "3D map vs 2D frames" and len(breakdown_rows(result)) == 4
    assert format_interval({"value": 0.5, "low": 0.25, "high": 0.75}) == "0.50 (0.25–0.75)"
    assert format_interval(None) == "n/a"
