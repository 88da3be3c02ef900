"""Normalization statistics of user data: numpy is the oracle, every split shares them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import Normalization, channel_stats, dataset_normalization, load_dataset
from edgeslim.data.npz import iter_npz_rows


def _oracle(x_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = x_nhwc.astype(np.float64) / 255
    return f.mean(axis=(0, 1, 2)), f.std(axis=(0, 1, 2))


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("compressed", [False, True])
def test_npz_stats_match_numpy_and_apply_to_every_split(tmp_path, layout, compressed):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (37, 6, 5, 3), dtype=np.uint8)
    x[..., 1] //= 4  # channels with different statistics
    x_test = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    store = (lambda a: a.transpose(0, 3, 1, 2)) if layout == "nchw" else (lambda a: a)
    save = np.savez_compressed if compressed else np.savez
    path = tmp_path / "d.npz"
    save(path, x_train=store(x), y_train=np.arange(37) % 2, x_test=store(x_test), y_test=[0] * 4)
    mean, std = _oracle(x)
    norm = dataset_normalization(f"npz:{path}")
    np.testing.assert_allclose(norm.mean, mean, atol=1e-6)
    np.testing.assert_allclose(norm.std, std, atol=1e-6)
    test = load_dataset(f"npz:{path}", "test")  # the test split is normalized with train stats
    img, _ = test[2]
    expected = (x_test[2].transpose(2, 0, 1) / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(img.numpy(), expected, atol=1e-4)


def test_npz_rows_stream_in_bounded_chunks(tmp_path):
    x = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x_train=x, y_train=np.zeros(10, np.int64))
    chunks = list(iter_npz_rows(str(path), "x_train", chunk_bytes=3 * 48))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), x)


def test_float_npz_and_builtin_data_keep_their_statistics(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, x_train=np.ones((3, 4, 4, 1), np.float32), y_train=[0, 1, 0])
    assert dataset_normalization(f"npz:{path}") is None
    assert dataset_normalization("digits") is None


def test_imagefolder_stats_match_numpy(tmp_path):
    rng = np.random.default_rng(2)
    arrays = []
    for cls in ("a", "b"):
        for i in range(3):
            arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # 32x32: no resize
            (tmp_path / "train" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(tmp_path / "train" / cls / f"{i}.png")
            arrays.append(arr)
    mean, std = _oracle(np.stack(arrays))
    norm = dataset_normalization(f"imagefolder:{tmp_path}")
    np.testing.assert_allclose(norm.mean, mean, atol=1e-6)
    np.testing.assert_allclose(norm.std, std, atol=1e-6)
    assert load_dataset(f"imagefolder:{tmp_path}", "train").normalization == norm


def test_explicit_statistics_override_the_datasets_own():
    norm = Normalization((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    ds = load_dataset("digits", "val", normalization=norm)
    plain = load_dataset("digits", "val")
    assert ds.normalization == norm and plain.normalization != norm
    raw = ds.images[0].float() / 255
    expected = (raw - ds._mean) / ds._std
    np.testing.assert_allclose(ds[0][0].numpy(), expected.numpy(), atol=1e-6)
    with pytest.raises(EdgeslimError, match="channels"):
        load_dataset("digits", "val", normalization=Normalization((0.5,), (0.5,)))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 12),
    c=st.sampled_from([1, 3]),
    split=st.integers(1, 11),
    seed=st.integers(0, 10_000),
)
def test_chunking_never_changes_the_statistics(n, c, split, seed):
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, 2, c), dtype=np.uint8)
    whole = channel_stats([x])
    parts = channel_stats([x[:split], x[split:]] if split < n else [x])
    np.testing.assert_allclose(whole.mean, parts.mean, atol=2e-6)
    np.testing.assert_allclose(whole.std, parts.std, atol=2e-6)
    mean, std = _oracle(x)
    np.testing.assert_allclose(whole.mean, mean, atol=1e-6)
    np.testing.assert_allclose(whole.std, np.maximum(std, 1e-3), atol=1e-6)


def test_bad_statistics_are_refused():
    with pytest.raises(EdgeslimError, match="> 0"):
        Normalization((0.5,), (0.0,))
    with pytest.raises(EdgeslimError, match="one mean and one std"):
        Normalization((0.5, 0.5), (0.2,))
    with pytest.raises(EdgeslimError, match="empty"):
        channel_stats([])
    with pytest.raises(EdgeslimError, match="bad 'normalization'"):
        Normalization.from_meta({"normalization": {"mean": [0.5]}})
