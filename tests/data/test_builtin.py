import numpy as np
import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.data import DATASETS, ArrayDataset, arrays, dataset_info, load_dataset, make_loader
from edgeslim.data.digits import _images, split_indices


def test_every_family_is_registered():
    assert set(DATASETS.names()) >= {
        "signs", "digits", "cifar10", "cifar100", "imagefolder", "npz", "random",
    }  # fmt: skip


def test_digits_split_sizes_disjoint_and_stratified():
    images, labels = _images()
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    parts = split_indices(labels)
    sizes = {s: len(i) for s, i in parts.items()}
    assert sum(sizes.values()) == 1797
    assert abs(sizes["train"] - 0.70 * 1797) < 15 and abs(sizes["test"] - 0.15 * 1797) < 15
    all_idx = np.concatenate(list(parts.values()))
    assert len(np.unique(all_idx)) == len(all_idx)  # no overlap
    for idx in parts.values():
        assert len(np.unique(labels[idx])) == 10
    ds = load_dataset("digits", "val")
    x, y = ds[0]
    assert len(ds) == sizes["val"] and x.shape == (3, 32, 32) and 0 <= y < 10
    assert torch.equal(x[0], x[1])  # grey replicated to 3 channels
    assert dataset_info("digits").num_classes == 10


def test_unknown_names_and_splits_are_clear():
    with pytest.raises(EdgeslimError, match="unknown dataset 'nope'; choose one of: .*signs"):
        load_dataset("nope")
    with pytest.raises(EdgeslimError, match="unknown split 'dev'"):
        load_dataset("digits", "dev")
    with pytest.raises(EdgeslimError, match="takes no argument"):
        dataset_info("digits:x")


def test_random_spec_warns_and_is_seeded():
    with pytest.warns(UserWarning, match="not real data"):
        a = load_dataset("random:3,16,8", "test")
    with pytest.warns(UserWarning):
        b = load_dataset("random:3,16,8", "test")
    x, y = a[0]
    assert len(a) == 256 and x.shape == (3, 16, 8) and y == 0
    assert torch.equal(a.images, b.images)
    assert dataset_info("random:1,28,28").input_shape == (1, 28, 28)
    with pytest.raises(EdgeslimError, match="random:C,H,W"):
        dataset_info("random:3,32")


def test_augmentation_crops_and_flips_without_changing_shape(monkeypatch):
    img = np.zeros((1, 8, 8, 3), np.uint8)
    img[0, :, :4] = 255  # left half white
    plain = ArrayDataset(img, [0], (0.0,) * 3, (1.0,) * 3)[0][0]
    aug = ArrayDataset(img, [0], (0.0,) * 3, (1.0,) * 3, augment=True, flip=True)
    torch.manual_seed(0)
    outs = [aug[0][0] for _ in range(40)]
    assert all(o.shape == (3, 8, 8) for o in outs)
    assert any(not torch.equal(o, plain) and not torch.equal(o, plain.flip(-1)) for o in outs)
    monkeypatch.setattr(arrays, "PAD", 0)  # no crop left: only the flip can change it
    outs = [aug[0][0] for _ in range(40)]
    assert all(torch.equal(o, plain) or torch.equal(o, plain.flip(-1)) for o in outs)
    assert any(torch.equal(o, plain.flip(-1)) for o in outs)
    no_flip = ArrayDataset(img, [0], (0.0,) * 3, (1.0,) * 3, augment=True)
    assert all(torch.equal(no_flip[0][0], plain) for _ in range(20))


def test_make_loader_shuffle_is_seeded():
    ds = ArrayDataset(np.zeros((50, 2, 2, 1), np.uint8), np.arange(50), (0.0,), (1.0,))

    def order(seed):
        return torch.cat([y for _, y in make_loader(ds, 16, shuffle=True, seed=seed)]).tolist()

    assert order(1) == order(1) and order(1) != order(2) and sorted(order(1)) == list(range(50))
    batches = list(make_loader(ds, 16, shuffle=False, drop_last=True))
    assert len(batches) == 3 and batches[0][1].tolist() == list(range(16))
