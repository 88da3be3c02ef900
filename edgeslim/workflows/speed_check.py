"""Never slower: a pruned model that measures slower than its input is re-aligned or flagged.

edgeslim promises that a compressed model is faster *as measured*. After pruning,
the input and the result are timed interleaved at every batch size of the report
(:func:`edgeslim.workflows.measure.measure_stages`). When the result is slower at
any of them:

- with a measured alignment (``round_to="auto"``), the pruning is redone at the next
  coarser alignments (:func:`edgeslim.prune.align.coarser`) and the fastest attempt
  kept: the runtime's blocked kernels may want wider blocks than the staircase showed;
- in every case the report and the console say plainly that the runtime got slower,
  at which batch sizes and by how much, and the facts behind it (pruned widths the
  runtime's channel blocks do not divide, nothing removed, a gap within timing noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeslim.prune.structured import PruneResult

NOISE = 0.05  # ratios within 5% of 1 can be run-to-run noise on a loaded machine


def speedups(records: list[dict], base: int = 0, other: int = -1) -> dict[str, float]:
    """Per batch size: latency of ``records[base]`` / latency of ``records[other]``.

    Example:
        >>> speedups([{"latency_ms": {"1": 2.0}}, {"latency_ms": {"1": 1.0}}])
        {'1': 2.0}
    """
    a, b = records[base]["latency_ms"], records[other]["latency_ms"]
    return {k: float(a[k] / b[k]) for k in a if k in b and b[k] > 0}


def kept_widths(res: PruneResult) -> list[int]:
    """Kept widths of the groups that lost units."""
    return [g.size - len(res.plan[gi]) for gi, g in enumerate(res.graph.groups) if gi in res.plan]


def why_slower(res: PruneResult | None, round_to: int, sp: dict[str, float]) -> str:
    """The measured facts behind a slowdown, for the report and the console."""
    facts = []
    if res is not None:
        widths = kept_widths(res)
        if not widths:
            facts.append(
                "no channel was removed (every group is ignored or not larger than the "
                f"alignment {round_to}), so only timing noise separates the two"
            )
        else:
            odd = sorted({w for w in widths if w % 8})
            if odd:
                facts.append(
                    f"{len(odd)} distinct pruned widths are not multiples of 8 "
                    f"({', '.join(map(str, odd[:8]))}{', ...' if len(odd) > 8 else ''}): the "
                    "runtime's convolution kernels work in blocks of 8 or 16 channels and an "
                    "unaligned width pays for the whole block, or loses the blocked kernel "
                    "(prune without --round-to to align, or with --round-to 16)"
                )
            else:
                m0, m1 = res.macs
                facts.append(
                    f"every pruned width is a multiple of {round_to} and MACs fell to "
                    f"{m1 / max(m0, 1):.0%}, yet latency did not: the removed channels sit "
                    "where the runtime's cost does not shrink with them"
                )
    if sp and min(sp.values()) >= 1 - NOISE:
        facts.append(
            f"the gap is within {NOISE:.0%}, which run-to-run noise on a loaded machine can "
            "explain: rerun with more --runs on a quiet machine"
        )
    return "; ".join(facts) or "no cause found in the widths"


@dataclass
class SpeedCheck:
    """What the never-slower check measured and decided."""

    attempts: list[dict] = field(default_factory=list)  # {round_to, speedup, macs}
    chosen: int = 0  # index into attempts
    speedup: dict[str, float] = field(default_factory=dict)  # final model vs input
    slower: bool = False
    message: str | None = None

    def to_dict(self) -> dict:
        return {
            "attempts": self.attempts,
            "chosen_round_to": self.attempts[self.chosen]["round_to"] if self.attempts else None,
            "speedup": self.speedup,
            "slower": self.slower,
            "message": self.message,
        }


def realign_loop(
    first: PruneResult,
    round_to: int,
    ladder: list[int],
    prune_at: Callable[[int], PruneResult],
    measure: Callable[[PruneResult], list[dict]],
    check: SpeedCheck,
) -> tuple[PruneResult, list[dict]]:
    """Measure ``first``; while slower, re-prune at each alignment of ``ladder``; keep the best.

    ``measure`` returns stage records whose first is the input and last the candidate.
    Returns the chosen result and its records (re-measured when it was not the last).
    """
    tried: list[tuple[PruneResult, list[dict]]] = []
    res, a = first, round_to
    for nxt in [*ladder, None]:
        recs = measure(res)
        sp = speedups(recs)
        check.attempts.append({"round_to": a, "speedup": sp, "macs": recs[-1]["macs"]})
        tried.append((res, recs))
        if not sp or min(sp.values()) >= 1.0 or nxt is None:
            break
        res, a = prune_at(nxt), nxt
    scores = [min(t["speedup"].values(), default=0.0) for t in check.attempts]
    check.chosen = int(np.argmax(scores)) if scores[-1] < 1.0 else len(scores) - 1
    res, recs = tried[check.chosen]
    if check.chosen != len(tried) - 1:
        recs = measure(res)  # its files were overwritten by later attempts
    return res, recs


def conclude(
    check: SpeedCheck, records: list[dict], res: PruneResult | None, round_to: int
) -> SpeedCheck:
    """Compare the final stage with the input; a slowdown gets a plain message."""
    check.speedup = speedups(records)
    slow = {b: r for b, r in check.speedup.items() if r < 1.0}
    check.slower = bool(slow)
    if slow:
        tried = ""
        if len(check.attempts) > 1:
            tried = " after trying alignments " + ", ".join(
                f"{t['round_to']} ({min(t['speedup'].values(), default=0):.2f}x)"
                for t in check.attempts
            )
        check.message = (
            "WARNING: the pruned model is SLOWER than its input on onnxruntime at "
            + ", ".join(f"batch {b} ({r:.2f}x)" for b, r in slow.items())
            + tried
            + ": "
            + why_slower(res, round_to, check.speedup)
        )
    return check
