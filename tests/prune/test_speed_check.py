"""Never slower: re-align while the pruned model measures slower, keep the fastest, say why."""

from types import SimpleNamespace

import numpy as np

from edgeslim.workflows.speed_check import SpeedCheck, conclude, realign_loop, speedups


def _recs(speed: dict[str, float]) -> list[dict]:
    return [
        {"latency_ms": dict.fromkeys(speed, 1.0), "macs": 100},
        {"latency_ms": {b: 1.0 / s for b, s in speed.items()}, "macs": 50},
    ]


def _res(widths: list[int], size: int = 64):
    groups = [SimpleNamespace(size=size) for _ in widths]
    plan = {i: np.arange(size - w) for i, w in enumerate(widths) if w < size}
    return SimpleNamespace(plan=plan, graph=SimpleNamespace(groups=groups), macs=(100, 50))


def test_speedups_per_batch():
    assert speedups(_recs({"1": 2.0, "8": 0.5})) == {"1": 2.0, "8": 0.5}


def test_faster_first_try_is_kept_without_realigning():
    check, calls = SpeedCheck(), []
    res, recs = realign_loop(
        "r16", 16, [32], calls.append, lambda r: _recs({"1": 1.4, "8": 1.3}), check
    )
    assert res == "r16" and calls == [] and [a["round_to"] for a in check.attempts] == [16]


def test_slower_model_is_realigned_to_the_next_coarser_step():
    speeds = {"r1": {"1": 0.8, "8": 0.7}, "r8": {"1": 1.5, "8": 1.6}}
    check = SpeedCheck()
    res, recs = realign_loop("r1", 1, [8, 16], lambda a: f"r{a}", lambda r: _recs(speeds[r]), check)
    assert res == "r8" and [a["round_to"] for a in check.attempts] == [1, 8]
    conclude(check, recs, None, 8)
    assert not check.slower and check.message is None and check.to_dict()["chosen_round_to"] == 8


def test_all_slower_keeps_the_fastest_remeasured_and_warns():
    speeds = {"r16": {"1": 0.9}, "r32": {"1": 0.8}}
    measured = []

    def measure(r):
        measured.append(r)
        return _recs(speeds[r])

    check = SpeedCheck()
    res, recs = realign_loop("r16", 16, [32], lambda a: f"r{a}", measure, check)
    assert res == "r16" and measured == ["r16", "r32", "r16"]  # re-measured: files overwritten
    conclude(check, recs, _res([23, 17, 64]), 16)
    assert check.slower and "SLOWER" in check.message and "batch 1 (0.90x)" in check.message
    assert (
        "not multiples of 8 (17, 23)" in check.message and "16 (0.90x), 32 (0.80x)" in check.message
    )


def test_aligned_but_slower_and_within_noise_are_told_apart():
    check = conclude(SpeedCheck(), _recs({"1": 0.97}), _res([48, 32]), 16)
    assert "every pruned width is a multiple of 16" in check.message
    assert "within 5%" in check.message
    nothing = conclude(SpeedCheck(), _recs({"1": 0.9}), _res([64]), 16)
    assert "no channel was removed" in nothing.message
