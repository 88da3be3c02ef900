"""Model outputs as named tensors: order matches torch.export's, names are stable,
unflatten inverts flatten, and differences are reported per named output."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.outputs import (
    flatten_outputs,
    leaf_names,
    output_diffs,
    output_structure,
    unflatten_outputs,
)


def t(v: float) -> torch.Tensor:
    return torch.full((2, 1), float(v))


def test_names_of_each_kind():
    assert list(flatten_outputs(t(0))) == ["output"]
    assert list(flatten_outputs((t(0), t(1)))) == ["output0", "output1"]
    assert list(flatten_outputs([t(0), [t(1), t(2)]])) == ["output0", "output1_0", "output1_1"]
    assert list(flatten_outputs({"boxes": t(0), "scores": (t(1), t(2))})) == [
        "boxes",
        "scores_0",
        "scores_1",
    ]
    assert list(flatten_outputs((t(0), None, t(2)))) == ["output0", "output2"]  # None dropped


def test_order_is_torch_export_order():
    y = {"b": (t(0), {"z": t(1), "a": t(2)}), "a": t(3)}
    leaves, _ = torch.utils._pytree.tree_flatten(y)
    flat = flatten_outputs(y)
    assert [float(v[0, 0]) for v in flat.values()] == [float(v[0, 0]) for v in leaves]


def test_non_tensor_leaf_and_collisions_are_errors():
    with pytest.raises(EdgeslimError, match=r"output \(output1\) is a int"):
        flatten_outputs((t(0), 3))
    with pytest.raises(EdgeslimError, match="both be named 'a_0'"):
        flatten_outputs({"a_0": t(0), "a": (t(1),)})
    with pytest.raises(EdgeslimError, match="no tensor"):
        flatten_outputs((None,))


nested = st.recursive(
    st.integers(0, 9).map(t),
    lambda kids: (
        st.lists(kids, min_size=1, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from("abcxyz"), kids, min_size=1, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(nested)
def test_unflatten_inverts_flatten(y):
    flat = flatten_outputs(y)
    s = output_structure(y)
    assert leaf_names(s) == list(flat)
    by_order = unflatten_outputs(s, list(flat.values()))
    by_name = unflatten_outputs(s, flat)
    for rebuilt in (by_order, by_name):
        assert torch.utils._pytree.tree_structure(rebuilt) == torch.utils._pytree.tree_structure(
            _tuples(y)
        )
        assert all(
            a is b for a, b in zip(flatten_outputs(rebuilt).values(), flat.values(), strict=True)
        )


def _tuples(y):
    if isinstance(y, dict):
        return {k: _tuples(v) for k, v in y.items()}
    if isinstance(y, (list, tuple)):
        return tuple(_tuples(v) for v in y)
    return y


def test_diffs_per_output_name_the_bad_one():
    ref = flatten_outputs({"p3": t(1), "p4": -t(4)})
    got = [np.full((2, 1), 1.5, np.float32), np.full((2, 1), -4.0, np.float32)]
    assert output_diffs(ref, got) == {"p3": (0.5, 1.0), "p4": (0.0, 4.0)}
    with pytest.raises(EdgeslimError, match="output 'p4' has shape"):
        output_diffs(ref, [got[0], np.zeros((3, 1))])
    with pytest.raises(EdgeslimError, match=r"1 outputs where the model has 2 \(p3, p4\)"):
        output_diffs(ref, got[:1])
