"""The compressed archive reloads exactly: float bit for bit, int8 as the dequantized weights."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply_
from edgeslim.models import build_zoo_model
from edgeslim.sparsity import RTossConfig, squashed
from edgeslim.sparsity.archive import (
    int8_dequantized,
    load_archive,
    load_archive_into_,
    save_archive,
)
from edgeslim.sparsity.codebook import kmeans_codebook, pack_bits, unpack_bits


@pytest.fixture(scope="module")
def sparse_r20():
    torch.manual_seed(0)
    model, _ = apply_(build_zoo_model("resnet20"), RTossConfig(entries=2))
    return model.eval()


def test_float_archive_is_bit_exact_and_smaller(sparse_r20, tmp_path):
    info = save_archive(sparse_r20, tmp_path / "m.esz", values="float")
    plain = squashed(sparse_r20)
    ref, back = plain.state_dict(), load_archive(tmp_path / "m.esz")
    assert ref.keys() == back.keys()
    for k in ref:
        assert ref[k].dtype == back[k].dtype and torch.equal(ref[k], back[k]), k
    assert info.size_bytes == (tmp_path / "m.esz").stat().st_size
    assert info.nonzeros / info.weights < 0.25  # 2EP: at most 2 of 9
    assert info.ratio > 2.5  # bitmask + nonzero floats + zstd vs dense float32


def test_int8_archive_equals_the_dequantized_weights(sparse_r20, tmp_path):
    f = save_archive(sparse_r20, tmp_path / "f.esz", values="float")
    i = save_archive(sparse_r20, tmp_path / "i.esz", values="int8")
    ref, back = squashed(sparse_r20).state_dict(), load_archive(tmp_path / "i.esz")
    for k, t in ref.items():
        coded = t.is_floating_point() and t.dim() >= 2
        expected = int8_dequantized(t) if coded else t
        assert torch.equal(back[k], expected), k
    assert i.size_bytes < f.size_bytes
    # the model rebuilt from the archive computes what the dequantized model computes
    x = torch.randn(2, 3, 32, 32)
    rebuilt = load_archive_into_(build_zoo_model("resnet20").eval(), tmp_path / "i.esz")
    with torch.no_grad():
        assert (rebuilt(x) - squashed(sparse_r20)(x)).abs().max() < 0.05


def test_int8_reference_matches_the_textbook_formula():
    w = torch.tensor([[0.0, 0.5, -1.0], [2.0, 0.0, 0.013]])
    # scale per row: 1/127 and 2/127; q = round(w / scale)
    expected = torch.tensor([[0, 64, -127], [127, 0, 1]]) * torch.tensor([[1 / 127], [2 / 127]])
    assert torch.allclose(int8_dequantized(w), expected.float(), atol=0, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    density=st.floats(0, 1),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64]),
    seed=st.integers(0, 2**16),
)
def test_any_tensor_round_trips_exactly_in_float_mode(
    tmp_path_factory, shape, density, dtype, seed
):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < density)
    t = (t * 100).to(dtype)
    path = tmp_path_factory.mktemp("a") / "t.esz"
    save_archive({"t": t}, path, values="float", level=3)
    back = load_archive(path)["t"]
    assert back.dtype == t.dtype and torch.equal(back, t)


def test_damaged_or_masked_input_gives_clear_errors(sparse_r20, tmp_path):
    with pytest.raises(EdgeslimError, match="squash"):
        save_archive(sparse_r20.state_dict(), tmp_path / "x.esz")
    with pytest.raises(EdgeslimError, match="values"):
        save_archive(sparse_r20, tmp_path / "x.esz", values="int4")
    path = tmp_path / "m.esz"
    save_archive(sparse_r20, path)
    data = path.read_bytes()
    (tmp_path / "bad.esz").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeslimError, match="corrupt"):
        load_archive(tmp_path / "bad.esz")
    (tmp_path / "other.esz").write_bytes(b"not an archive")
    with pytest.raises(EdgeslimError, match="not an edgeslim"):
        load_archive(tmp_path / "other.esz")
    with pytest.raises(EdgeslimError, match="does not match"):
        load_archive_into_(build_zoo_model("resnet56"), path)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 300),
    bits=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_codebook_is_a_lloyd_fixed_point_and_codes_to_the_nearest_centroid(n, bits, seed):
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    cb, idx = kmeans_codebook(v, bits)
    assert cb.numel() == 2**bits and idx.numel() == n
    if n == 0:
        return
    dist = (v[:, None] - cb[None, :]).abs()
    chosen = dist.gather(1, idx.long()[:, None]).squeeze(1)
    assert bool((chosen <= dist.min(1).values + 1e-6).all())  # nearest centroid
    for k in idx.long().unique().tolist():  # each used centroid is its members' mean
        members = v[idx.long() == k]
        assert float(cb[k]) == pytest.approx(float(members.double().mean()), abs=1e-4)
    codes = torch.randint(0, 2**bits, (n,), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(unpack_bits(pack_bits(codes, bits), bits, n), codes)


def test_kmeans_archive_reloads_each_weight_as_its_centroid(tmp_path):
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(8, 32, 3), nn.Conv2d(32, 32, 1), nn.Flatten(), nn.Linear(32, 10))
    net, _ = apply_(net, RTossConfig(entries=3))
    info = save_archive(net, tmp_path / "k.esz", values="kmeans", bits=4)
    ref, back = squashed(net).state_dict(), load_archive(tmp_path / "k.esz")
    for k, t in ref.items():
        if not (t.is_floating_point() and t.dim() >= 2):
            assert torch.equal(back[k], t)
            continue
        nz = t != 0
        assert bool((back[k][~nz] == 0).all())
        cb, idx = kmeans_codebook(t[nz], 4)
        assert torch.equal(back[k][nz], cb[idx.long()])
        assert back[k][nz].unique().numel() <= 16
    int8 = save_archive(net, tmp_path / "i.esz", values="int8")
    assert info.size_bytes < int8.size_bytes
