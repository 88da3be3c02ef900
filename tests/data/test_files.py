import numpy as np
import pytest
from PIL import Image

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import dataset_info, load_dataset


def _png(path, colour, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_imagefolder_with_split_folders(tmp_path):
    for split in ("train", "val", "test"):
        _png(tmp_path / split / "cat" / "a.png", (255, 0, 0))
        _png(tmp_path / split / "dog" / "b.png", (0, 0, 255), size=(50, 70))
    _png(tmp_path / "train" / "dog" / "c.png", (0, 255, 0))
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    train = load_dataset(f"imagefolder:{tmp_path}", "train")
    assert len(train) == 3 and train.labels.tolist() == [0, 1, 1]
    assert train.images.shape == (3, 3, 32, 32)
    assert train.images[0, :, 5, 5].tolist() == [255, 0, 0]  # red cat, channels first
    assert train.images[1, :, 31, 0].tolist() == [0, 0, 255]
    info = dataset_info(f"imagefolder:{tmp_path}")
    assert info.class_names == ("cat", "dog") and info.input_shape == (3, 32, 32)


def test_imagefolder_plain_class_folders_are_split_80_10_10(tmp_path):
    for cls, colour in (("a", (10, 10, 10)), ("b", (200, 200, 200))):
        for i in range(10):
            _png(tmp_path / cls / f"{i}.png", colour)
    sizes = {s: len(load_dataset(f"imagefolder:{tmp_path}", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 16, "val": 2, "test": 2}
    a = load_dataset(f"imagefolder:{tmp_path}", "test").labels
    b = load_dataset(f"imagefolder:{tmp_path}", "test").labels
    np.testing.assert_array_equal(a, b)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(EdgeslimError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}", "train")
    with pytest.raises(EdgeslimError, match="no class folders"):
        load_dataset(f"imagefolder:{tmp_path}", "train")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(EdgeslimError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_npz_nhwc_uint8(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 8, 6, 3), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=np.arange(5) % 3, x_test=x[:2], y_test=np.array([2, 1]))
    ds = load_dataset(f"npz:{path}", "train")
    img, label = ds[4]
    assert img.shape == (3, 8, 6) and label == 1
    mean, std = (x[..., 0] / 255).mean(), (x[..., 0] / 255).std()  # the train split's own
    expected = (x[4, 2, 1, 0] / 255 - mean) / std
    assert abs(float(img[0, 2, 1]) - expected) < 1e-5
    assert dataset_info(f"npz:{path}").input_shape == (3, 8, 6)
    assert dataset_info(f"npz:{path}").num_classes == 3
    with pytest.raises(EdgeslimError, match="no x_val / y_val"):
        load_dataset(f"npz:{path}", "val")


def test_npz_nchw_float_is_used_as_is(tmp_path):
    x = np.random.default_rng(1).standard_normal((4, 1, 5, 5)).astype(np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, x_train=x, y_train=np.zeros(4, np.int64))
    img, _ = load_dataset(f"npz:{path}", "train")[2]
    np.testing.assert_allclose(img.numpy(), x[2], rtol=0, atol=1e-6)


def test_npz_errors(tmp_path):
    with pytest.raises(EdgeslimError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}", "train")
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 8, 8, 3), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(EdgeslimError, match="3 images but y_train has 2 labels"):
        load_dataset(f"npz:{path}", "train")
