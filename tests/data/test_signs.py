import numpy as np
import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import SIGN_CLASSES, dataset_info, generate_signs, load_dataset
from edgeslim.data import signs as signs_mod
from edgeslim.data.signs_render import SHAPES, glyph_mask


def test_shape_dtype_and_every_class_balanced():
    x, y = generate_signs(200, seed=0)
    assert x.shape == (200, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (200,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=len(SIGN_CLASSES))
    assert len(SIGN_CLASSES) >= 10 and len(counts) == len(SIGN_CLASSES)
    assert counts.min() >= 200 // len(SIGN_CLASSES) and counts.max() - counts.min() <= 1
    assert 0 < x.std() and x.min() < 40 and x.max() > 215  # real contrast, not blank


def test_same_seed_same_images_other_seed_different():
    a, ya = generate_signs(48, seed=3)
    b, yb = generate_signs(48, seed=3)
    c, _ = generate_signs(48, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_split_seeds_differ():
    seeds = {signs_mod.split_seed(0, s) for s in ("train", "val", "test")}
    assert len(seeds) == 3 and signs_mod.split_seed(1, "train") not in seeds


@pytest.mark.parametrize("glyph", ["3", "5", "8", "arrow_left", "arrow_up", "P", "cross", "text"])
def test_glyphs_are_distinct_and_inside_the_sign(glyph):
    t = np.linspace(-1, 1, 65, dtype=np.float32)
    u, v = np.meshgrid(t, t)
    m = glyph_mask(glyph, u, v)
    assert 0 < m.sum() and not (m & (u * u + v * v > 0.8**2)).any()
    assert not np.array_equal(m, glyph_mask("arrow_right", u, v))


def test_every_class_uses_a_known_shape():
    assert {c.shape for c in signs_mod._CLASSES} <= set(SHAPES)


def test_registered_dataset_caches_and_splits_do_not_overlap(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path))
    monkeypatch.setattr(signs_mod, "SIZES", {"train": 64, "val": 32, "test": 32})
    train = load_dataset("signs", "train", augment=True)
    test = load_dataset("signs", "test")
    assert len(train) == 64 and len(test) == 32
    assert len(list(tmp_path.glob("signs-v*.npz"))) == 1
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    train_rows = {r.tobytes() for r in train.images.numpy()}
    assert not any(r.tobytes() in train_rows for r in test.images.numpy())
    again = load_dataset("signs", "test")  # now served from the cache file
    torch.testing.assert_close(again.images, test.images)
    info = dataset_info("signs")
    assert info.num_classes == len(SIGN_CLASSES) and info.input_shape == (3, 32, 32)


def test_bad_signs_option(tmp_path):
    with pytest.raises(EdgeslimError, match="signs:seed=N"):
        dataset_info("signs:banana")
