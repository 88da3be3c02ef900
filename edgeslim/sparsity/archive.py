"""Compressed storage of a sparse model, as in Deep Compression (Han et al. 2016).

Every floating weight of two or more dimensions is stored as

* a bitmask of its nonzeros (1 bit per weight, ``np.packbits``), then
* its nonzero values: INT8 with one float32 scale per output channel
  (``values="int8"``: symmetric, ``scale = max|w| / 127``), ``bits``-bit indices
  into a k-means codebook of the tensor (``values="kmeans"``, Deep Compression's
  weight sharing, :mod:`edgeslim.sparsity.codebook`) or the original floats bit
  for bit (``values="float"``);

other tensors (biases, BatchNorm statistics, counters) are stored raw. The whole
payload is entropy coded with zstd. The archive reloads exactly: in float mode
bit-identical to the model, in int8 mode equal to the dequantized weights
(:func:`int8_dequantized`), in kmeans mode to each weight's centroid. It holds
weights only; the architecture comes from the saved model
(:mod:`edgeslim.models.saved`) it belongs to.

Layout: ``MAGIC`` then one zstd frame of ``u64 header length | JSON header | blobs``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zstandard
from torch import Tensor, nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.sparsity.codebook import kmeans_codebook, pack_bits, unpack_bits
from edgeslim.sparsity.mask import masked_layers, squashed

MAGIC = b"EDGESLIM-SPARSE\x00"
VERSION = 1
VALUES = ("int8", "float", "kmeans")
_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")


@dataclass(frozen=True)
class ArchiveInfo:
    """What was written: bytes on disk and against dense float32, and the nonzero count."""

    path: Path
    size_bytes: int  # the archive on disk
    dense_bytes: int  # the same tensors as raw float32 (integers at their own width)
    weights: int  # coded weights (floating tensors with >= 2 dims)
    nonzeros: int  # of those

    @property
    def ratio(self) -> float:
        """How many times smaller than the raw dense tensors."""
        return self.dense_bytes / self.size_bytes

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "dense_bytes": self.dense_bytes,
            "ratio": round(self.ratio, 3),
            "weights": self.weights,
            "nonzeros": self.nonzeros,
        }


def int8_quantize(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel INT8: ``(q, scale)`` with ``w ≈ q * scale``.

    ``scale = max|w_c| / 127`` per channel (1 for an all-zero channel), codes in [-127, 127].
    """
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def int8_dequantized(w: Tensor) -> Tensor:
    """What an int8 archive reloads ``w`` as (zeros stay exactly zero)."""
    q, scale = int8_quantize(w)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return (q.float() * scale.reshape(shape)).to(w.dtype)


def _bytes(t: Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _tensor(buf: bytes, dtype: str, shape: list[int]) -> Tensor:
    if dtype not in _DTYPES:
        raise EdgeslimError(f"archive: unsupported dtype {dtype!r}")
    dt = getattr(torch, dtype)
    if not buf:  # frombuffer refuses an empty buffer
        return torch.empty(shape, dtype=dt)
    raw = torch.frombuffer(bytearray(buf), dtype=torch.uint8)
    return raw.view(dt).reshape(shape).clone()


def _state(model: nn.Module | dict[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(model, nn.Module):
        return (squashed(model) if masked_layers(model) else model).state_dict()
    bad = [k for k in model if ".parametrizations." in k]
    if bad:
        raise EdgeslimError(f"archive: {bad[0]!r} is a masked weight; squash the model first")
    return model


def _coded(t: Tensor) -> bool:
    return t.is_floating_point() and t.dim() >= 2 and t.numel() > 0


def save_archive(
    model: nn.Module | dict[str, Tensor],
    path: str | Path,
    values: str = "int8",
    level: int = 19,
    bits: int = 4,
) -> ArchiveInfo:
    """Write the weights of ``model`` (masked layers are squashed in a copy) to ``path``.

    Args:
        model: a model or a plain ``state_dict``.
        path: destination file (written atomically).
        values: ``"int8"`` (per-channel INT8 nonzeros), ``"kmeans"`` (``bits``-bit
            codebook indices) or ``"float"`` (exact floats).
        level: zstd level (1-22).
        bits: codebook bits of ``values="kmeans"`` (1-8).

    Example:
        >>> m = nn.Linear(64, 64)
        >>> with torch.no_grad():
        ...     m.weight[:, ::2] = 0
        >>> info = save_archive(m, "/tmp/lin.esz", values="float")
        >>> torch.equal(load_archive("/tmp/lin.esz")["weight"], m.weight)
        True
    """
    if values not in VALUES:
        raise EdgeslimError(f"archive values must be one of {VALUES}, got {values!r}")
    if values == "kmeans" and not 1 <= bits <= 8:
        raise EdgeslimError(f"codebook bits must be in 1..8, got {bits}")
    state = _state(model)
    entries, blobs, at = [], [], 0
    dense = weights = nonzeros = 0

    def put(b: bytes) -> list[int]:
        nonlocal at
        blobs.append(b)
        at += len(b)
        return [at - len(b), len(b)]

    for name, t in state.items():
        t = t.detach().cpu()
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise EdgeslimError(f"archive: tensor {name!r} has unsupported dtype {dtype}")
        e = {"name": name, "dtype": dtype, "shape": list(t.shape)}
        dense += t.numel() * (4 if t.is_floating_point() else t.element_size())
        if _coded(t):
            nz = t != 0
            weights += t.numel()
            nonzeros += int(nz.sum())
            e["coding"] = "sparse"
            e["mask"] = put(np.packbits(nz.reshape(-1).numpy()).tobytes())
            if values == "int8":
                q, scale = int8_quantize(t)
                e["values"] = put(_bytes(q[nz]))
                e["scale"] = put(_bytes(scale))
            elif values == "kmeans":
                cb, idx = kmeans_codebook(t[nz], bits)
                e["bits"], e["codebook"] = bits, put(_bytes(cb))
                e["values"] = put(pack_bits(idx, bits))
            else:
                e["values"] = put(_bytes(t[nz]))
        else:
            e["coding"] = "raw"
            e["values"] = put(_bytes(t))
        entries.append(e)
    header = json.dumps(
        {"format": "edgeslim-sparse", "version": VERSION, "values": values, "tensors": entries}
    ).encode()
    payload = struct.pack("<Q", len(header)) + header + b"".join(blobs)
    data = MAGIC + zstandard.ZstdCompressor(level=level).compress(payload)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return ArchiveInfo(path, len(data), dense, weights, nonzeros)


def load_archive(path: str | Path) -> dict[str, Tensor]:
    """The ``state_dict`` stored in the archive at ``path``; clear errors on any damage."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EdgeslimError(f"cannot read archive {path}: {e}") from None
    if not data.startswith(MAGIC):
        raise EdgeslimError(f"{path} is not an edgeslim sparse archive")
    try:
        payload = zstandard.ZstdDecompressor().decompress(data[len(MAGIC) :])
        (n,) = struct.unpack_from("<Q", payload)
        header = json.loads(payload[8 : 8 + n])
    except (zstandard.ZstdError, struct.error, ValueError) as e:
        raise EdgeslimError(f"{path} is corrupt: {e}") from None
    if header.get("format") != "edgeslim-sparse" or header.get("version", 0) > VERSION:
        raise EdgeslimError(f"{path}: unknown archive format or newer version")
    blobs = payload[8 + n :]

    def get(span: list[int]) -> bytes:
        start, size = span
        if start < 0 or size < 0 or start + size > len(blobs):
            raise EdgeslimError(f"{path} is truncated or corrupt")
        return blobs[start : start + size]

    out = {}
    try:
        for e in header["tensors"]:
            out[e["name"]] = _decode(e, get, header["values"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise EdgeslimError(f"{path} is corrupt: {type(err).__name__}: {err}") from None
    return out


def _decode(e: dict, get, values: str) -> Tensor:
    shape, dtype = e["shape"], e["dtype"]
    if e["coding"] == "raw":
        return _tensor(get(e["values"]), dtype, shape)
    numel = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(get(e["mask"]), dtype=np.uint8), count=numel)
    nz = torch.from_numpy(bits.astype(bool)).reshape(shape)
    nnz = int(nz.sum())
    out = torch.zeros(shape, dtype=getattr(torch, dtype))
    if values == "int8":
        q = _tensor(get(e["values"]), "int8", [nnz])
        scale = _tensor(get(e["scale"]), "float32", [shape[0]])
        per = scale.reshape((-1,) + (1,) * (len(shape) - 1)).expand(shape)[nz]
        out[nz] = (q.float() * per).to(out.dtype)
    elif values == "kmeans":
        bits = int(e["bits"])
        cb = _tensor(get(e["codebook"]), "float32", [2**bits])
        out[nz] = cb[unpack_bits(get(e["values"]), bits, nnz)].to(out.dtype)
    else:
        out[nz] = _tensor(get(e["values"]), dtype, [nnz])
    return out


def load_archive_into_(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the archive's weights into ``model`` (plain layers, no masks) strictly."""
    state = load_archive(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise EdgeslimError(f"{path} does not match the model: {first}") from None
    return model
