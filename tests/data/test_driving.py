"""The generated ``driving`` scenes: deterministic by seed, boxes inside the image with
positive size, classes in range, every class and every lighting drawn, a cache that
returns what was rendered, generation fast enough for thousands of images, and bad
options that name the problem."""

import time

import numpy as np
import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset
from edgeslim.data.driving import CLASS_NAMES, MAX_BOXES, generate_driving, parse_options
from edgeslim.data.driving_render import render_scene


@pytest.fixture(scope="module")
def scenes():
    return generate_driving(48, seed=3, size=128)


def test_deterministic_by_seed(scenes):
    x, b = generate_driving(6, seed=3, size=128)
    assert np.array_equal(x, scenes[0][:6]) and np.array_equal(b, scenes[1][:6])
    x2, _ = generate_driving(6, seed=4, size=128)
    assert not np.array_equal(x, x2)


def test_boxes_inside_and_classes_in_range(scenes):
    x, b = scenes
    assert x.shape == (48, 128, 128, 3) and x.dtype == np.uint8
    assert b.shape == (48, MAX_BOXES, 5)
    real = b[..., 0] >= 0
    assert (b[~real] == -1).all()  # padding rows are all -1
    rows = b[real]
    assert set(np.unique(rows[:, 0]).astype(int)) <= set(range(len(CLASS_NAMES)))
    assert (rows[:, 1:] >= 0).all() and (rows[:, [3]] <= 128).all() and (rows[:, [4]] <= 128).all()
    assert (rows[:, 3] > rows[:, 1]).all() and (rows[:, 4] - rows[:, 2] >= 3).all()
    assert real.sum(1).min() >= 1 and real.sum(1).mean() > 2.5  # several objects per scene


def test_variety_classes_scale_truncation_lighting():
    rng = np.random.default_rng(0)
    out = [render_scene(rng, (256, 256)) for _ in range(60)]
    rows = np.concatenate([b for _, b in out])
    assert len(np.unique(rows[:, 0])) == len(CLASS_NAMES)
    h = rows[:, 4] - rows[:, 2]
    assert h.min() < 10 and h.max() > 80  # scale follows distance: far and near objects
    at_border = (rows[:, 1] == 0) | (rows[:, 3] == 256) | (rows[:, 4] == 256)
    assert at_border.any()  # truncated at the frame
    brightness = np.array([img.mean() for img, _ in out])
    assert brightness.min() < 40 and brightness.max() > 110  # night and day


def test_registered_dataset_and_cache():
    spec = "driving:n=16,size=64"
    info = dataset_info(spec)
    assert info.task == "detection" and info.num_classes == 6 and info.input_shape == (3, 64, 64)
    ds = load_dataset(spec, "val")
    assert len(ds) == 8
    x, t = ds[0]
    assert (
        x.dtype == torch.float32 and tuple(x.shape) == (3, 64, 64) and 0 <= x.min() <= x.max() <= 1
    )
    assert tuple(t.shape) == (MAX_BOXES, 5)
    again = load_dataset(spec, "val")  # from the cache: the same scenes
    assert torch.equal(again[3][0], ds[3][0]) and torch.equal(again[3][1], ds[3][1])
    test = load_dataset(spec, "test")
    assert not torch.equal(test[0][0], x)  # splits come from different seeds


def test_flip_moves_boxes():
    ds = load_dataset("driving:n=16,size=64", "train", augment=True)
    torch.manual_seed(0)
    seen = {tuple(ds[0][1][0].tolist()) for _ in range(12)}
    assert len(seen) == 2
    (a, b) = sorted(seen)
    assert a[0] == b[0] and a[1] == pytest.approx(64 - b[3]) and a[3] == pytest.approx(64 - b[1])


def test_generation_is_fast():
    t = time.perf_counter()
    generate_driving(20, seed=0, size=256)
    per_image = (time.perf_counter() - t) / 20
    assert per_image < 0.06  # s; ~0.016 s here: 3000 images in under a minute even loaded


@pytest.mark.parametrize("arg", ["seed=x", "n=0", "size=100", "colour=1"])
def test_bad_options(arg):
    with pytest.raises(EdgeslimError, match="driving"):
        parse_options(arg)
