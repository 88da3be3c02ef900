"""Task registry and metric accumulators, checked against direct computations and sklearn."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, jaccard_score

from edgeslim.core import EdgeslimError
from edgeslim.tasks import TASKS, MeanIoU, PixelAccuracy, Task, TopK, get_task, register_task
from edgeslim.tasks.classification import CLASSIFICATION


def test_builtin_tasks_are_registered_with_directions():
    assert {"classification", "sequence_classification", "segmentation", "detection"} <= set(
        TASKS.names()
    )
    for name in TASKS:
        task = get_task(name)
        assert task.primary_metric.higher_is_better  # every built-in headline: higher is better
        assert get_task(task) is task


def test_registry_refuses_duplicates_and_bad_entries():
    with pytest.raises(ValueError, match="already registered"):
        register_task(CLASSIFICATION)
    with pytest.raises(ValueError, match="already registered"):
        register_task(dataclasses.replace(CLASSIFICATION, description="another"))
    with pytest.raises(ValueError, match="twice"):
        dataclasses.replace(CLASSIFICATION, metrics=CLASSIFICATION.metrics * 2)
    with pytest.raises(ValueError, match="primary"):
        dataclasses.replace(CLASSIFICATION, primary="miou")
    with pytest.raises(EdgeslimError, match="choose one of"):
        get_task("keypoints")
    with pytest.raises(EdgeslimError, match="no metric"):
        CLASSIFICATION.metric("miou")
    assert isinstance(CLASSIFICATION, Task)


def test_metric_drop_follows_direction():
    up = get_task("classification").primary_metric
    down = dataclasses.replace(up, higher_is_better=False)
    assert up.drop(0.9, 0.8) == pytest.approx(0.1)
    assert down.drop(0.9, 0.8) == pytest.approx(-0.1)


def _chunks(n: int, cuts: list[int]) -> list[slice]:
    edges = sorted({0, n, *[c % (n + 1) for c in cuts]})
    return [slice(a, b) for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    c=st.integers(2, 7),
    k=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_topk_over_batches_equals_a_direct_computation(n, c, k, seed, cuts):
    g = torch.Generator().manual_seed(seed)
    logits, y = torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)
    acc = TopK(k)
    for s in _chunks(n, cuts):
        acc.update(logits[s], y[s])
    top = np.argsort(-logits.numpy(), axis=1)[:, : min(k, c)]
    direct = float(np.mean([y[i].item() in top[i] for i in range(n)]))
    assert acc.compute() == pytest.approx(direct)
    if k == 1:
        assert acc.compute() == pytest.approx(accuracy_score(y, logits.argmax(1)))


def test_miou_on_a_hand_computed_confusion_matrix():
    # targets / predictions on 6 pixels, 3 classes
    y = torch.tensor([[0, 0, 1, 1, 2, 2]])
    p = torch.tensor([[0, 1, 1, 1, 2, 0]])
    logits = torch.nn.functional.one_hot(p, 3).permute(0, 2, 1).float()  # (1, 3, 6)
    # confusion (rows true): [[1,1,0],[0,2,0],[1,0,1]] -> IoU 1/3, 2/3, 1/2
    m = MeanIoU()
    m.update(logits, y)
    assert m.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.compute() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    pa = PixelAccuracy()
    pa.update(logits, y)
    assert pa.compute() == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miou_and_pixel_accuracy_match_sklearn_with_unlabelled_pixels(seed):
    g = torch.Generator().manual_seed(seed)
    c = 5
    logits = torch.randn(4, c, 9, 11, generator=g)
    y = torch.randint(0, c - 1, (4, 9, 11), generator=g)  # class 4 only ever predicted
    y[torch.rand(y.shape, generator=g) < 0.1] = 255  # unlabelled
    miou, pa = MeanIoU(), PixelAccuracy()
    for s in (slice(0, 1), slice(1, 4)):
        miou.update(logits[s], y[s])
        pa.update(logits[s], y[s])
    keep = (y != 255).reshape(-1)
    yt, yp = y.reshape(-1)[keep].numpy(), logits.argmax(1).reshape(-1)[keep].numpy()
    assert miou.compute() == pytest.approx(jaccard_score(yt, yp, average="macro"))
    assert pa.compute() == pytest.approx(accuracy_score(yt, yp))


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_summed_states_equal_one_pass(task):
    """What data-parallel evaluation does: per-process statistics summed, computed once."""
    t = get_task(task)
    g = torch.Generator().manual_seed(0)
    shape, tshape = ((12, 4), (12,)) if task == "classification" else ((12, 4, 5, 5), (12, 5, 5))
    out, y = torch.randn(*shape, generator=g), torch.randint(0, 4, tshape, generator=g)
    whole, a, b = t.new_metrics(), t.new_metrics(), t.new_metrics()
    whole.update(out, y)
    a.update(out[:5], y[:5])
    b.update(out[5:], y[5:])
    a.load_state([u + v for u, v in zip(a.state(), b.state(), strict=True)])
    assert a.compute() == pytest.approx(whole.compute())


def test_accumulators_reject_misshapen_outputs():
    with pytest.raises(EdgeslimError, match="not \\(batch, classes\\)"):
        TopK().update(torch.randn(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(EdgeslimError, match="per-pixel"):
        MeanIoU().update(torch.randn(2, 3), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(EdgeslimError, match="no samples"):
        TopK().compute()
