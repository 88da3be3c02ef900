"""Small random search problems and their brute-force optimum (the oracle for the MILP)."""

import itertools

import numpy as np

from edgeslim.search.milp import Cost, Problem, evaluate


def random_problem(seed: int, n_d: int = 4, n_r: int = 3, n_f: int = 2) -> Problem:
    """Costs fall with the ratio; shared layers give positive (bilinear-like) pair terms."""
    rng = np.random.default_rng(seed)
    loss = np.cumsum(rng.uniform(0, 1, (n_d, n_r)), axis=1)
    loss[:, 0] = 0
    costs = {}
    for name, base in (("latency_ms", 10.0), ("macs", 1e7)):
        single = -np.cumsum(rng.uniform(0, base / n_d / n_r, (n_d, n_r)), axis=1)
        single[:, 0] = 0
        pair = {}
        for a, b in [(0, 1), (1, 2), (0, 3)][: n_d - 1]:
            m = rng.uniform(0, base / n_d / n_r / 2, (n_r, n_r))
            m[0, :] = m[:, 0] = 0
            pair[(a, b)] = m
        fb = rng.uniform(0, base / 10, n_f) if name == "latency_ms" else np.zeros(n_f)
        costs[name] = Cost(base, single, pair, fb)
    return Problem(loss, costs, rng.uniform(0, 1.5, n_f))


def brute_force(p: Problem, budgets: dict) -> float | None:
    n_d, n_r, n_f = p.shape
    best = None
    for choice in itertools.product(range(n_r), repeat=n_d):
        for fb in itertools.product((False, True), repeat=n_f):
            if any(sum(fb[i] for i in s) > 1 for s in p.exclusive):
                continue
            obj, costs = evaluate(p, choice, fb)
            if all(costs[k] <= b + 1e-9 for k, b in budgets.items()):
                best = obj if best is None else min(best, obj)
    return best


def bits_problem(seed: int) -> Problem:
    """``random_problem`` plus a 4-bit switch for each of its two float layers.

    Switches 0, 1: keep layer a / b in float (damage avoided, latency paid);
    switches 2, 3: layer a / b at 4 bits (damage added, size and a little latency saved).
    A layer is in float or at 4 bits, never both.
    """
    rng = np.random.default_rng(1000 + seed)
    base = random_problem(seed)
    costs = {}
    for name, c in base.costs.items():
        low = -rng.uniform(0, c.base / 8, 2) if name == "latency_ms" else np.zeros(2)
        costs[name] = Cost(c.base, c.single, c.pair, np.concatenate([c.fallback, low]))
    size_single = np.zeros_like(base.loss)
    size_single[:, 1:] = -rng.uniform(0, 2e5, (base.loss.shape[0], base.loss.shape[1] - 1))
    costs["size_bytes"] = Cost(1e6, size_single, {}, np.array([1e5, 1e5, -2.5e5, -2e5]))
    gain = np.concatenate([base.gain, -rng.uniform(0, 1.0, 2)])
    return Problem(base.loss, costs, gain, ((0, 2), (1, 3)))
