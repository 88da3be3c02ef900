"""Key/value metadata stored inside an ONNX file (``metadata_props``).

A deployed model needs what its inputs were normalized with; ``edgeslim export`` writes
a saved model's ``meta["normalization"]`` here as JSON, and ``edgeslim evaluate`` on the
``.onnx`` file reads it back, so the file is self-describing without a sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeslim.core.errors import EdgeslimError

PREFIX = "edgeslim."


def write_onnx_metadata(path: str | Path, values: dict[str, object]) -> None:
    """Store ``values`` (JSON-encoded, keys prefixed ``edgeslim.``) in the ONNX file ``path``.

    External weight files are left untouched: only the graph file is rewritten.

    Example:
        >>> # write_onnx_metadata("m.onnx", {"normalization": {"mean": [0.5], "std": [0.2]}})
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = PREFIX + key, json.dumps(value)
    onnx.save(model, str(path))


def read_onnx_metadata(path: str | Path) -> dict[str, object]:
    """The ``edgeslim.`` metadata of the ONNX file ``path`` (prefix removed)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises several unrelated types for a bad file
        raise EdgeslimError(f"cannot read {path} as ONNX: {e}") from None
    out: dict[str, object] = {}
    for p in model.metadata_props:
        if p.key.startswith(PREFIX):
            try:
                out[p.key[len(PREFIX) :]] = json.loads(p.value)
            except json.JSONDecodeError:
                raise EdgeslimError(f"{path}: metadata {p.key!r} is not JSON") from None
    return out
