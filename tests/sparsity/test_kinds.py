"""Every sparsity kind hits its exact target and keeps its structure (property tests)."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply, apply_
from edgeslim.models import build_zoo_model
from edgeslim.sparsity import (
    MagnitudeConfig,
    NMConfig,
    RTossConfig,
    adjacent_patterns,
    masked_layers,
    nm_mask,
    rtoss_masks,
    sparsity_of,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16, 5)
    )


def _convnet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 16, 1), nn.Conv2d(16, 8, 3))


@pytest.mark.parametrize("s", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_layerwise_is_exact_per_layer_and_keeps_the_largest(s):
    model = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 7))
    ref = {n: model.get_submodule(n).weight.detach().clone() for n in ("0", "2")}
    model, rec = apply_(model, MagnitudeConfig(s))
    for name in ("0", "2"):
        w, w0 = model.get_submodule(name).weight.detach(), ref[name]
        assert int((w == 0).sum()) == round(s * w.numel())
        kept, dropped = w0[w != 0].abs(), w0[w == 0].abs()
        if len(dropped) and len(kept):
            assert kept.min() >= dropped.max()
        assert torch.equal(w[w != 0], w0[w != 0])  # kept weights untouched


def test_magnitude_global_is_exact_overall_with_one_threshold():
    model = build_zoo_model("resnet20")
    model, rec = apply_(model, MagnitudeConfig(0.8, scope="global"))
    names = list(rec.layers)
    total = sum(model.get_submodule(n).weight.numel() for n in names)
    zeros = sum(int((model.get_submodule(n).weight == 0).sum()) for n in names)
    assert zeros == round(0.8 * total)
    per_layer = {n: float((model.get_submodule(n).weight == 0).float().mean()) for n in names}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05  # not uniform
    assert rec.details["sparsity"] == pytest.approx(0.8, abs=1e-6)


def test_overrides_and_filter_leave_layers_dense():
    model, rec = apply(
        _convnet(), MagnitudeConfig(0.5), overrides={"1": None, "2": MagnitudeConfig(0.25)}
    )
    assert set(rec.layers) == {"0", "2"}
    assert list(masked_layers(model)) == ["0", "2"]
    assert sparsity_of(model, ["2"]) == pytest.approx(0.25, abs=1 / 1152)


@settings(max_examples=40, deadline=None)
@given(
    nm=st.sampled_from([(2, 4), (1, 4), (4, 8)]),
    out=st.integers(1, 6),
    groups=st.integers(1, 4),
    k=st.sampled_from([0, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_nm_keeps_exactly_n_largest_of_every_m_along_the_reduction_axis(nm, out, groups, k, seed):
    n, m = nm
    g = torch.Generator().manual_seed(seed)
    shape = (out, groups * m) if k == 0 else (out, groups * m, k, k)
    w = torch.randn(shape, generator=g)
    mask = nm_mask(w, n, m)
    # reference: walk every output row and kernel position by hand
    for idx in itertools.product(range(out), *(range(k) for _ in range(w.dim() - 2))):
        o, pos = idx[0], idx[1:]
        line = w[(o, slice(None), *pos)]
        mline = mask[(o, slice(None), *pos)]
        for j in range(0, line.numel(), m):
            chunk, mchunk = line[j : j + m].abs(), mline[j : j + m]
            assert int(mchunk.sum()) == n
            assert chunk[mchunk == 1].min() >= chunk[mchunk == 0].max()
    assert float(mask.mean()) == pytest.approx(n / m)


def test_nm_skips_layers_whose_width_does_not_divide():
    model, rec = apply(_net(), NMConfig(2, 4))  # stem has 3 input channels
    assert rec.details["skipped"] == ["0"]
    assert set(rec.layers) == {"2", "4"}
    assert sparsity_of(model) == pytest.approx(0.5)
    with pytest.raises(EdgeslimError):
        NMConfig(4, 4)


def _connected_4(cells):
    cells = set(cells)
    start = next(iter(cells))
    seen, todo = {start}, [start]
    while todo:
        r, c = divmod(todo.pop(), 3)
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            rr, cc = r + dr, c + dc
            q = rr * 3 + cc
            if 0 <= rr < 3 and 0 <= cc < 3 and q in cells and q not in seen:
                seen.add(q)
                todo.append(q)
    return len(seen) == len(cells)


def test_adjacent_patterns_match_a_brute_force_count():
    for k, expected in ((2, 12), (3, 22)):
        brute = [c for c in itertools.combinations(range(9), k) if _connected_4(c)]
        assert list(adjacent_patterns(k)) == brute and len(brute) == expected
    assert len(adjacent_patterns(2, diagonal=True)) == 20


@settings(max_examples=25, deadline=None)
@given(
    entries=st.sampled_from([2, 3]),
    dictionary=st.integers(1, 21),
    cout=st.integers(1, 6),
    cin=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_rtoss_3x3_kernels_keep_exactly_k_adjacent_entries_best_in_the_dictionary(
    entries, dictionary, cout, cin, seed
):
    w = torch.randn(cout, cin, 3, 3, generator=torch.Generator().manual_seed(seed))
    masks, kept = rtoss_masks({"c": w}, RTossConfig(entries=entries, dictionary=dictionary))
    mask = masks["c"].reshape(-1, 9)
    used = {tuple(torch.nonzero(row).flatten().tolist()) for row in mask}
    assert used <= set(kept) and len(kept) <= dictionary
    for row, kern in zip(mask, w.reshape(-1, 9), strict=True):
        cells = torch.nonzero(row).flatten().tolist()
        assert len(cells) == entries and _connected_4(cells)
        # the chosen pattern keeps at least the energy of every dictionary pattern
        best = max(float(kern[list(p)].pow(2).sum()) for p in kept)
        assert float(kern[cells].pow(2).sum()) == pytest.approx(best, rel=1e-6)


def test_rtoss_1x1_kernels_are_regrouped_nine_at_a_time_and_the_rest_pruned():
    w = torch.randn(5, 4, 1, 1)  # 20 weights: two 3x3 groups, 2 left over
    mask = rtoss_masks({"c": w}, RTossConfig(entries=2))[0]["c"].reshape(-1)
    assert mask[:9].sum() == 2 and mask[9:18].sum() == 2 and mask[18:].sum() == 0
    for group in (mask[:9], mask[9:18]):
        assert _connected_4(torch.nonzero(group).flatten().tolist())


@pytest.mark.parametrize("entries", [2, 3])
def test_rtoss_on_resnet20_reaches_the_pattern_sparsity(entries):
    model, rec = apply(build_zoo_model("resnet20"), RTossConfig(entries=entries))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert set(rec.layers) == set(convs)  # every conv is 3x3 or 1x1
    for n in convs:
        w = model.get_submodule(n).weight
        if w.shape[-1] == 3:
            nz = (w.detach().reshape(-1, 9) != 0).sum(1)
            assert bool((nz <= entries).all())  # == entries unless a kept weight is exactly 0
    assert sum(1 for d in rec.details["dictionaries"] for _ in d["patterns"]) <= 21
    assert sparsity_of(model) >= 1 - entries / 9 - 1e-6
