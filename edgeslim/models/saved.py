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
        try:
            safetensors.torch.save_model(lm.model, str(tmp))
        except safetensors.SafetensorError as e:  # e.g. a full disk: its I/O error, one line
            raise EdgeslimError(f"cannot write {out_dir / WEIGHTS}: {e}") from None
    for fname, text in (extra_files or {}).items():
        write_text_atomic(out_dir / fname, text)
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return out_dir


def load_saved(path: str | Path) -> LoadedModel:
    """Load a directory written by :func:`save_model`; clear errors on any damage.

    Only the directory's own two files are read: a manifest or weights file that is a
    symlink leading out of the directory is refused, and so is a ``file`` source that
    is relative or lies inside the directory (a saved model never ships code; a
    ``file.py:factory`` source runs the user's own file, by design).
    """
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise EdgeslimError(f"{path} is not a saved edgeslim model (no {MANIFEST})")
    if not (path / WEIGHTS).is_file():
        raise EdgeslimError(f"{path}: weights file {WEIGHTS} is missing")
    _check_inside(path)
    manifest = _read_manifest(path)
    source = manifest["source"]
    _check_source(path, source)
    methods = manifest.get("methods") or []
    modules = manifest.get("modules") or {}
    try:
        model = build_source(source)
        if not methods:
            apply_descriptions(model, modules)
        else:
            model = restore_(model, methods, apply_descriptions)
            _resize_plain_layers(model, modules)
            if describe_modules(model) != modules:
                raise EdgeslimError(
                    "layers changed after a compression method was applied "
                    "(e.g. pruned after quantization); such a model cannot be rebuilt"
                )
    except EdgeslimError as e:
        raise EdgeslimError(f"{path}: cannot rebuild the model it describes: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        # the manifest is data written by save_model; a damaged one must not crash
        raise EdgeslimError(
            f"{path / MANIFEST} does not describe a buildable model: {type(e).__name__}: {e}"
        ) from None
    try:
        _check_dtypes(model, path)
        missing, unexpected = safetensors.torch.load_model(model, str(path / WEIGHTS), strict=False)
    except (safetensors.SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise EdgeslimError(
            f"{path / WEIGHTS} is corrupt or does not match the architecture: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    if missing or unexpected:
        raise EdgeslimError(
            f"{path}: weights do not match the architecture "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    _check_finite(model, path)
    inp = manifest.get("input")
    try:
        spec = InputSpec.from_dict(inp) if inp else None
    except (KeyError, TypeError, ValueError) as e:
        raise EdgeslimError(f"{path / MANIFEST}: bad 'input' entry: {e}") from None
    meta = manifest.get("meta") or {}
    return LoadedModel(
        model.eval(),
        source,
        spec,
        str(manifest.get("name", path.name)),
        meta if isinstance(meta, dict) else {},
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


def _check_inside(path: Path) -> None:
    root = path.resolve()
    for fname in (MANIFEST, WEIGHTS):
        f = path / fname
        if f.is_symlink() and f.resolve().parent != root:
            raise EdgeslimError(
                f"{f} is a symlink to {f.resolve()}, outside the saved model; refusing to read it"
            )


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeslimError(f"{path / MANIFEST} is corrupt: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "edgeslim-model":
        raise EdgeslimError(f"{path / MANIFEST} is not an edgeslim model manifest")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int):
        raise EdgeslimError(f"{path / MANIFEST}: format_version must be an integer")
    if version > FORMAT_VERSION:
        raise EdgeslimError(f"{path} was written by a newer edgeslim (format {version})")
    for key, kind in (("source", dict), ("methods", list), ("modules", dict)):
        value = manifest.get(key)
        if (key == "source" or value is not None) and not isinstance(value, kind):
            raise EdgeslimError(
                f"{path / MANIFEST}: {key!r} must be a JSON {'object' if kind is dict else 'list'}"
            )
    return manifest


def _check_source(path: Path, source: dict) -> None:
    """A ``file`` source must name the user's own file by absolute path, outside ``path``."""
    if source.get("kind") != "file":
        return
    file = source.get("path")
    if not isinstance(file, str) or not isinstance(source.get("factory"), str):
        raise EdgeslimError(f"{path / MANIFEST}: a 'file' source needs a path and a factory")
    if not Path(file).is_absolute():
        raise EdgeslimError(
            f"{path / MANIFEST}: source file {file!r} is relative; a saved model names "
            "the user's model file by absolute path"
        )
    root = path.resolve()
    if root == Path(file).resolve() or root in Path(file).resolve().parents:
        raise EdgeslimError(
            f"{path / MANIFEST}: source file {file} lies inside the saved model; "
            "a saved model never ships code, refusing to import it"
        )


def _check_dtypes(model: torch.nn.Module, path: Path) -> None:
    """Refuse integer or bool tensors for float weights: loading would cast them silently.
    Float to float (fp16 weights into an fp32 model) is allowed: shipped models use it."""
    state = model.state_dict()
    with safetensors.safe_open(str(path / WEIGHTS), framework="pt") as f:
        for key in f.keys():
            if key not in state:
                continue  # reported as unexpected after loading
            dtype = f.get_slice(key).get_dtype()
            is_float = dtype.startswith(("F", "BF"))
            if state[key].is_floating_point() != is_float:
                raise EdgeslimError(
                    f"{path / WEIGHTS}: {key!r} is stored as {dtype}, "
                    f"but the layer holds {str(state[key].dtype).removeprefix('torch.')}: "
                    "wrong dtype"
                )


def _check_finite(model: torch.nn.Module, path: Path) -> None:
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise EdgeslimError(f"{path}: weight {name!r} contains NaN or Inf")
