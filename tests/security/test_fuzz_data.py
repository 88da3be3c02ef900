"""Fuzz the file data loaders with Hypothesis (issue 17).

Truncated CIFAR ``.bin`` files, ``.npz`` files with wrong dtypes, shapes, labels,
NaN pixels or damaged bytes, and ImageFolders with zero-byte, truncated or garbage
images: each is loaded (the dataset, its info and its normalization) and must either
work or raise :class:`EdgeslimError`; never another exception.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeslim.cli.main import main
from edgeslim.core import EdgeslimError
from edgeslim.data import cifar as _cifar  # noqa: F401  (registers the datasets)
from edgeslim.data import imagefolder as _imagefolder  # noqa: F401
from edgeslim.data import npz as _npz  # noqa: F401
from edgeslim.data.registry import dataset_info, dataset_normalization, load_dataset

FAST = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def _exercise(spec: str, split: str = "train") -> None:
    """Everything a run does with a dataset spec; only EdgeslimError may escape."""
    try:
        dataset_info(spec)
        dataset_normalization(spec)
        ds = load_dataset(spec, split)
        if len(ds):
            ds[0], ds[len(ds) - 1]  # noqa: B018  (decoding the first and last sample)
    except EdgeslimError as e:
        assert str(e) and "\n" not in str(e), repr(e)


# ---- CIFAR .bin ----------------------------------------------------------------------


@FAST
@given(st.integers(min_value=0, max_value=3 * 3073 + 5), st.booleans())
def test_cifar_truncated_or_odd_sized(tmp_path_factory, size, cifar100):
    d = tmp_path_factory.mktemp("cifar")
    name = "test.bin" if cifar100 else "test_batch.bin"
    (d / name).write_bytes(np.random.default_rng(size).integers(0, 256, size, np.uint8).tobytes())
    if not cifar100:
        for i in range(1, 6):
            (d / f"data_batch_{i}.bin").write_bytes(b"\x01" * (size % 3074))
    _exercise(f"{'cifar100' if cifar100 else 'cifar10'}:{d}", "test")
    _exercise(f"{'cifar100' if cifar100 else 'cifar10'}:{d}", "train")


def test_cifar_labels_out_of_range_are_refused(tmp_path):
    rec = np.zeros((3, 3073), np.uint8)
    rec[:, 0] = [0, 3, 200]  # a CIFAR-10 label byte of 200
    (tmp_path / "test_batch.bin").write_bytes(rec.tobytes())
    with pytest.raises(EdgeslimError, match="label"):
        load_dataset(f"cifar10:{tmp_path}", "test")


# ---- npz -------------------------------------------------------------------------------

dtypes = st.sampled_from(
    ["uint8", "int8", "int16", "uint16", "int64", "float16", "float32", "float64", "bool"]
    + ["complex64", "<U3", "S2"]
)


@st.composite
def npz_arrays(draw):
    x = draw(
        hnp.arrays(
            draw(dtypes),
            hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
        )
    )
    n = x.shape[0] if x.ndim else 1
    ylen = draw(st.sampled_from([n, n + 1, 0]))
    y = draw(
        hnp.arrays(
            draw(st.sampled_from(["int64", "int8", "float32", "uint8", "<U1"])),
            (ylen,),
            elements=None,
        )
    )
    return x, y


@FAST
@given(npz_arrays(), st.sampled_from(["ok", "missing_y", "truncate", "garbage"]))
def test_npz_wrong_dtypes_shapes_and_bytes(tmp_path_factory, xy, damage):
    x, y = xy
    f = tmp_path_factory.mktemp("npz") / "d.npz"
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    if damage == "missing_y":
        del arrays["y_train"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue()
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "garbage":
        raw = raw[:40] + bytes(reversed(raw[40:200])) + raw[200:]
    f.write_bytes(raw)
    _exercise(f"npz:{f}", "train")
    _exercise(f"npz:{f}", "test")


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array([0, -1, 2]), "negative"),
        (np.array([0.5, 1.0, 2.0], np.float32), "integer"),
    ],
)
def test_npz_bad_labels_are_refused(tmp_path, y, match):
    f = tmp_path / "d.npz"
    np.savez(f, x_train=np.zeros((3, 8, 8, 3), np.uint8), y_train=y)
    with pytest.raises(EdgeslimError, match=match):
        load_dataset(f"npz:{f}", "train")


def test_npz_nan_pixels_are_refused(tmp_path):
    x = np.zeros((3, 3, 8, 8), np.float32)
    x[1, 0, 2, 2] = np.nan
    f = tmp_path / "d.npz"
    np.savez(f, x_train=x, y_train=np.array([0, 1, 0]))
    with pytest.raises(EdgeslimError, match="NaN or Inf"):
        load_dataset(f"npz:{f}", "train")


def test_npz_object_array_is_never_unpickled(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(EdgeslimError):
        load_dataset(f"npz:{f}", "train")


# ---- ImageFolder -----------------------------------------------------------------------


def _png(seed: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (6, 5, 3), np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@FAST
@given(
    st.sampled_from(["zero", "truncate", "garbage", "header_only", "flip"]),
    st.integers(min_value=0, max_value=10**6),
)
def test_imagefolder_with_broken_images(tmp_path_factory, kind, seed):
    root = tmp_path_factory.mktemp("imgs")
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(10):
            (root / c / f"{i}.png").write_bytes(_png(i))
    good = _png(seed)
    rng = np.random.default_rng(seed)
    bad = {
        "zero": b"",
        "truncate": good[: int(rng.integers(1, len(good)))],
        "garbage": rng.integers(0, 256, int(rng.integers(1, 300)), np.uint8).tobytes(),
        "header_only": good[:8] + rng.integers(0, 256, 64, np.uint8).tobytes(),
        "flip": bytes(
            b ^ 0xFF if j == int(rng.integers(8, len(good))) else b for j, b in enumerate(good)
        ),
    }[kind]
    (root / "b" / f"{int(rng.integers(0, 10))}.png").write_bytes(bad)
    for split in ("train", "val", "test"):
        _exercise(f"imagefolder:{root}", split)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_imagefolder_unreadable_image(tmp_path):
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "x.png"
    f.write_bytes(_png(0))
    f.chmod(0)
    with pytest.raises(EdgeslimError, match="x.png"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


@pytest.mark.slow
@SLOW
@given(npz_arrays(), st.sampled_from(["ok", "missing_y", "truncate", "garbage"]))
def test_npz_fuzz_long(tmp_path_factory, xy, damage):
    test_npz_wrong_dtypes_shapes_and_bytes.hypothesis.inner_test(tmp_path_factory, xy, damage)


@pytest.mark.parametrize("kind", ["npz", "cifar10", "imagefolder"])
def test_cli_bad_data_exits_cleanly(tmp_path, capsys, kind):
    if kind == "npz":
        buf = io.BytesIO()
        np.savez(buf, x_train=np.zeros((4, 8, 8, 3), np.uint8), y_train=np.arange(4))
        (tmp_path / "d.npz").write_bytes(buf.getvalue()[:-30])
        spec = f"npz:{tmp_path / 'd.npz'}"
    elif kind == "cifar10":
        for name in ["test_batch.bin"] + [f"data_batch_{i}.bin" for i in range(1, 6)]:
            (tmp_path / name).write_bytes(b"\x00" * 3000)  # shorter than one record
        spec = f"cifar10:{tmp_path}"
    else:
        for c in ("a", "b"):
            (tmp_path / c).mkdir()
            for i in range(3):
                (tmp_path / c / f"{i}.png").write_bytes(_png(i) if i else b"")
        spec = f"imagefolder:{tmp_path}"
    out = tmp_path / "out"
    code = main(["train", "resnet20_half", "--data", spec, "--epochs", "1", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edgeslim: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
