"""Saved edgeslim models: a directory, never a pickle.

Layout::

    DIR/edgeslim_model.json   source spec, input spec, per-layer descriptions, metadata
    DIR/model.safetensors     weights

Loading rebuilds the source architecture, swaps in the layers whose saved
description differs (pruned widths, fused or factorised layers; see
:mod:`edgeslim.models.codecs`), replays the structure of every compression
method the manifest lists (folded BN, fake-quant twins, activation quantizers;
see :func:`edgeslim.core.methods.restore_`, after NVIDIA ModelOpt's
save/restore) and loads the weights strictly, so a compressed or fake-quantized
model reloads with its new shapes and scales, and nothing from the file is
executed. A fake-quant model is never saved as a traced graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from edgeslim.core.atomic import atomic_path, write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.layer_types import layer_type_of
from edgeslim.core.methods import restore_
from edgeslim.models.codecs import apply_descriptions, describe_modules
from edgeslim.models.inputs import InputSpec
from edgeslim.models.spec import LoadedModel, build_source

MANIFEST = "edgeslim_model.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


def is_saved_model(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def save_model(
    lm: LoadedModel, out_dir: str | Path, extra_files: dict[str, str] | None = None
) -> Path:
    """Write ``lm`` into ``out_dir``: each file atomically, the manifest last.

    Other files in ``out_dir`` (checkpoints, reports) are left alone. ``extra_files``
    maps file names to text content written alongside.

    Example:
        >>> # save_model(load_model("resnet20"), "out/r20"); load_saved("out/r20")
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": "edgeslim-model",
        "format_version": FORMAT_VERSION,
        "name": lm.name,
        "source": lm.source,
        "input": lm.input.to_dict() if lm.input else None,
        "modules": describe_modules(lm.model),
        "methods": lm.methods,
        "meta": lm.meta,
    }
    with atomic_path(out_dir / WEIGHTS) as tmp:
        safetensors.torch.save_model(lm.model, str(tmp))
    for fname, text in (extra_files or {}).items():
        write_text_atomic(out_dir / fname, text)
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return out_dir


def load_saved(path: str | Path) -> LoadedModel:
    """Load a directory written by :func:`save_model`; clear errors on any damage."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise EdgeslimError(f"{path} is not a saved edgeslim model (no {MANIFEST})")
    if not (path / WEIGHTS).is_file():
        raise EdgeslimError(f"{path}: weights file {WEIGHTS} is missing")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except json.JSONDecodeError as e:
        raise EdgeslimError(f"{path / MANIFEST} is corrupt: {e}") from None
    if manifest.get("format") != "edgeslim-model":
        raise EdgeslimError(f"{path / MANIFEST} is not an edgeslim model manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise EdgeslimError(
            f"{path} was written by a newer edgeslim (format {manifest['format_version']})"
        )
    model = build_source(manifest["source"])
    methods = manifest.get("methods", [])
    modules = manifest.get("modules", {})
    if not methods:
        apply_descriptions(model, modules)
    else:
        try:
            model = restore_(model, methods, apply_descriptions)
        except EdgeslimError as e:
            raise EdgeslimError(f"{path}: cannot replay its compression methods: {e}") from None
        _resize_plain_layers(model, modules)
        if describe_modules(model) != modules:
            raise EdgeslimError(
                f"{path}: layers changed after a compression method was applied "
                "(e.g. pruned after quantization); such a model cannot be rebuilt"
            )
    try:
        missing, unexpected = safetensors.torch.load_model(model, str(path / WEIGHTS), strict=False)
    except (safetensors.SafetensorError, OSError, RuntimeError) as e:
        raise EdgeslimError(
            f"{path / WEIGHTS} is corrupt or does not match the architecture: {e}"
        ) from None
    if missing or unexpected:
        raise EdgeslimError(
            f"{path}: weights do not match the architecture "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    _check_finite(model, path)
    inp = manifest.get("input")
    return LoadedModel(
        model.eval(),
        manifest["source"],
        InputSpec.from_dict(inp) if inp else None,
        manifest.get("name", path.name),
        manifest.get("meta", {}),
        methods,
    )


def _resize_plain_layers(model: torch.nn.Module, modules: dict[str, dict]) -> None:
    """Give plain layers the widths saved for them after the last method was replayed.

    A model pruned after a structural method (e.g. a factorized model whose factors
    were then pruned) differs from the replay only in plain layers; those are
    rebuilt from their descriptions. A fake-quant twin is never replaced (its saved
    description is its float type), so pruning after quantization is still refused.
    """
    current = describe_modules(model)
    plain = {
        name: desc
        for name, desc in modules.items()
        if name in current
        and current[name] != desc
        and layer_type_of(type(model.get_submodule(name))) is not None
    }
    if plain:
        apply_descriptions(model, plain)


def _check_finite(model: torch.nn.Module, path: Path) -> None:
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise EdgeslimError(f"{path}: weight {name!r} contains NaN or Inf")
