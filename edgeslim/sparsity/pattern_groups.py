"""Filter groups that share one 3×3 pattern: chosen by kept energy, jointly over coupled convs.

Each filter (output channel) ``u`` of a 3×3 conv has a tap energy ``E[u, t]`` (the
squared weights at tap ``t`` summed over input channels). A group of filters that
shares pattern ``p`` keeps ``sum_u E[u] · p``. When several convs must order their
filters the same way (their output channels are one dependency group, e.g. the
convs feeding a residual add), a group is a *tuple* of patterns, one per conv, and
a filter's score is the sum over the convs of its kept energy, each conv's energy
normalised to total 1 so that every conv counts equally.

The choice alternates, as k-means does, and never lowers the kept energy:

1. every filter's best pattern from the full dictionary; the ``G`` most used
   (per conv, paired by rank) start the groups (R-TOSS's reduced dictionary, here of
   size ``G``);
2. every filter joins the group whose patterns keep most of its energy;
3. every group takes, per conv, the pattern keeping most of its members' energy;
4. repeat 2-3 until nothing changes.

Last, the groups are ordered so that adjacent groups share taps: the executor runs one
GEMM per tap and run of adjacent groups using it (:func:`order_groups`).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from edgeslim.core.errors import EdgeslimError
from edgeslim.sparsity.patterns import best_patterns, reduce_dictionary


def tap_energy(w: Tensor) -> Tensor:
    """``(out, 9)`` squared weights per tap, summed over input channels, of a 3×3 weight."""
    if tuple(w.shape[2:]) != (3, 3):
        raise EdgeslimError(f"shared patterns need a 3x3 kernel, got {tuple(w.shape[2:])}")
    return w.detach().double().pow(2).sum(1).reshape(w.shape[0], 9)


def group_filters(
    energies: list[Tensor], patterns: Tensor, groups: int, iters: int = 20
) -> tuple[Tensor, Tensor]:
    """Assign ``U`` filters to at most ``groups`` groups, each with one pattern per conv.

    Args:
        energies: one ``(U, 9)`` tap energy per coupled conv (same filter order).
        patterns: ``(P, 9)`` 0/1 dictionary rows.
        groups: the most groups ``G`` (fewer when the data uses fewer).
        iters: the most assign / refit rounds.

    Returns:
        ``assign (U,)`` group index per filter (groups numbered 0.. without gaps) and
        ``chosen (G', C)`` pattern index per group and conv.
    """
    if groups < 1:
        raise EdgeslimError(f"shared patterns need >= 1 group, got {groups}")
    pat = patterns.double()
    scores = [e / e.sum().clamp_min(1e-30) @ pat.T for e in energies]  # C x (U, P)
    n_pat = pat.shape[0]
    starts = []
    for e in energies:
        top = reduce_dictionary(best_patterns(e, patterns), n_pat, groups)
        starts.append(top + [top[-1]] * (groups - len(top)))  # pad: duplicates merge later
    chosen = torch.tensor(starts, dtype=torch.long).T  # (G, C)
    assign = None
    for _ in range(max(1, iters)):
        fit = sum(s[:, chosen[:, c]] for c, s in enumerate(scores))  # (U, G)
        new = fit.argmax(dim=1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for g in range(chosen.shape[0]):
            members = assign == g
            if members.any():
                for c, s in enumerate(scores):
                    chosen[g, c] = int(s[members].sum(0).argmax())
    used = sorted(set(assign.tolist()), key=lambda g: tuple(chosen[g].tolist()))
    used = [used[i] for i in order_groups([[patterns[int(p)] for p in chosen[g]] for g in used])]
    remap = torch.full((chosen.shape[0],), -1, dtype=torch.long)
    remap[torch.tensor(used)] = torch.arange(len(used))
    return remap[assign], chosen[used]


def tap_runs(rows: list[Tensor]) -> int:
    """GEMMs of groups with 0/1 tap rows ``rows`` in this order: a tap's run of adjacent
    groups is one GEMM."""
    runs, prev = 0, torch.zeros(9, dtype=torch.bool)
    for r in rows:
        cur = r.bool()
        runs += int((cur & ~prev).sum())
        prev = cur
    return runs


def order_groups(rows: list[list[Tensor]], exhaustive: int = 6) -> list[int]:
    """The order of groups (each with one 0/1 tap row per coupled conv) with fewest GEMMs.

    Every order is tried for up to ``exhaustive`` groups; beyond, the given order stays.
    """
    n = len(rows)
    if n > exhaustive:
        return list(range(n))
    convs = len(rows[0]) if rows else 0

    def cost(order: tuple[int, ...]) -> int:
        return sum(tap_runs([rows[g][c] for g in order]) for c in range(convs))

    return list(min(itertools.permutations(range(n)), key=lambda o: (cost(o), o)))


def run_layout(rows: Tensor) -> list[tuple[int, tuple[int, ...]]]:
    """Run-length ``[(count, taps), ...]`` of consecutive equal ``(out, 9)`` 0/1 tap rows."""
    out: list[tuple[int, tuple[int, ...]]] = []
    for r in rows:
        taps = tuple(int(t) for t in torch.nonzero(r).flatten())
        if out and out[-1][1] == taps:
            out[-1] = (out[-1][0] + 1, taps)
        else:
            out.append((1, taps))
    return out
