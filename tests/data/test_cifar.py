import numpy as np
import pytest

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import cifar, dataset_info, load_dataset


def _records(labels: list[list[int]], seed: int) -> tuple[bytes, np.ndarray]:
    """Binary CIFAR records with the given label bytes and random pixels (N,3,32,32)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), 3, 32, 32), np.uint8)
    blob = b"".join(bytes(lab) + px.tobytes() for lab, px in zip(labels, pixels, strict=True))
    return blob, pixels


@pytest.fixture
def small_val(monkeypatch):
    monkeypatch.setattr(cifar, "VAL_SIZE", 2)


def test_cifar10_decodes_channel_major_pixels(tmp_path, small_val):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    all_px, all_y = [], []
    for i in range(1, 6):
        blob, px = _records([[i], [i + 1]], seed=i)
        (d / f"data_batch_{i}.bin").write_bytes(blob)
        all_px.append(px)
        all_y += [i, i + 1]
    blob, test_px = _records([[7], [3], [9]], seed=0)
    (d / "test_batch.bin").write_bytes(blob)

    test = load_dataset(f"cifar10:{tmp_path}", "test")  # the parent dir works too
    assert len(test) == 3 and test.labels.tolist() == [7, 3, 9]
    # channel c, row r, column k of record n lands at images[n, c, r, k]
    np.testing.assert_array_equal(test.images.numpy(), test_px)
    assert test.images[1, 2, 5, 9] == test_px[1, 2, 5, 9]

    train = load_dataset(f"cifar10:{d}", "train", augment=True)
    val = load_dataset(f"cifar10:{d}", "val")
    px = np.concatenate(all_px)
    assert len(train) == 8 and len(val) == 2
    assert train.labels.tolist() == all_y[:8] and val.labels.tolist() == all_y[8:]
    np.testing.assert_array_equal(val.images.numpy(), px[8:])
    x, y = val[0]
    expected = (px[8, 0, 0, 0] / 255 - cifar.CIFAR10_MEAN[0]) / cifar.CIFAR10_STD[0]
    assert x.shape == (3, 32, 32) and y == 5 and abs(float(x[0, 0, 0]) - expected) < 1e-5
    assert dataset_info(f"cifar10:{d}").num_classes == 10


def test_cifar100_uses_the_fine_label(tmp_path, small_val):
    blob, px = _records([[1, 42], [2, 99], [3, 0], [4, 5]], seed=1)
    (tmp_path / "train.bin").write_bytes(blob)
    blob, test_px = _records([[19, 77]], seed=2)
    (tmp_path / "test.bin").write_bytes(blob)
    train = load_dataset(f"cifar100:{tmp_path}", "train")
    val = load_dataset(f"cifar100:{tmp_path}", "val")
    test = load_dataset(f"cifar100:{tmp_path}", "test")
    assert train.labels.tolist() == [42, 99] and val.labels.tolist() == [0, 5]
    assert test.labels.tolist() == [77]
    np.testing.assert_array_equal(train.images.numpy(), px[:2])
    np.testing.assert_array_equal(test.images.numpy(), test_px)
    assert dataset_info(f"cifar100:{tmp_path}").num_classes == 100


def test_missing_and_truncated_files_are_named(tmp_path):
    with pytest.raises(EdgeslimError, match="test_batch.bin"):
        load_dataset(f"cifar10:{tmp_path}", "test")
    with pytest.raises(EdgeslimError, match="does not exist"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}", "test")
    (tmp_path / "test.bin").write_bytes(_records([[0, 1]], seed=0)[0][:-10])
    with pytest.raises(EdgeslimError, match=r"truncated.*test\.bin.*3074"):
        load_dataset(f"cifar100:{tmp_path}", "test")
    with pytest.raises(EdgeslimError, match=r"needs a path: use 'cifar10:PATH'"):
        load_dataset("cifar10", "test")
