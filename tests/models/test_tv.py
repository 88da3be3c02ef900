"""``tv:NAME`` specs and the torchvision import repair (needs the ``vision`` extra for most)."""

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.models.tv import nms_reference

HAS_TV = importlib.util.find_spec("torchvision") is not None
needs_tv = pytest.mark.skipif(not HAS_TV, reason="torchvision not installed (vision extra)")


def _brute_nms(boxes, scores, thr):
    """The definition, one box at a time: keep a box unless a kept better box overlaps it."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > thr:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 30), st.floats(0.1, 0.9), st.integers(0, 10_000))
def test_nms_reference_matches_its_definition(n, thr, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 10
    wh = 0.5 + torch.rand(n, 2, generator=g) * 4
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(n, generator=g)
    got = nms_reference(boxes, scores, thr).tolist()
    assert got == _brute_nms(boxes.tolist(), scores.tolist(), thr)


@needs_tv
def test_torchvision_imports_and_its_nms_runs():
    from edgeslim.models.tv import import_torchvision

    tv = import_torchvision()
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert tv.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]


@needs_tv
def test_tv_spec_builds_a_model_with_the_requested_head():
    from edgeslim.models.spec import load_model

    lm = load_model("tv:mobilenet_v3_small", num_classes=7)
    assert lm.source == {"kind": "tv", "name": "mobilenet_v3_small", "num_classes": 7}
    assert lm.model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@needs_tv
def test_unknown_tv_model_is_a_clear_error():
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.models.spec import load_model

    with pytest.raises(EdgeslimError, match="tv:no_such_net"):
        load_model("tv:no_such_net")


@needs_tv
def test_hf_models_build_while_torchvision_is_installed(tmp_path):
    pytest.importorskip("transformers")
    import json

    from edgeslim.models.spec import load_model

    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "model_type": "bert",
                "vocab_size": 50,
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 32,
                "num_labels": 2,
            }
        )
    )
    lm = load_model(f"hf:{cfg}", input_shape=(1, 8))
    assert lm.model(lm.input.example()).shape == (1, 2)
