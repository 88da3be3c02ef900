"""Model specs: the one string every command takes to name a model.

- a zoo name: ``resnet18``
- the user's code: ``path/to/file.py:factory``
- a saved edgeslim model directory (see :mod:`edgeslim.models.saved`)
- ``hf:path/to/config.json``: a transformers classifier built offline (``hf`` extra)
- ``tv:NAME``: a torchvision classification model, random weights (``vision`` extra)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.models.hf import build_hf, load_config_dict
from edgeslim.models.inputs import InputSpec
from edgeslim.models.user import build_from_file, is_file_spec
from edgeslim.models.zoo import ZOO

HF_SEQ_LEN = 128  # default token length for transformers example inputs


@dataclass
class LoadedModel:
    """A model plus what is needed to rebuild, feed and describe it."""

    model: nn.Module
    source: dict  # how to rebuild the architecture: {"kind": "zoo"|"file"|"hf", ...}
    input: InputSpec | None  # default example input; None when unknown
    name: str
    meta: dict = field(default_factory=dict)  # free-form: training metrics, dataset, ...
    # compression methods applied, in order (``Record.to_dict()`` of edgeslim.core.methods):
    # a saved model replays their structure on reload
    methods: list[dict] = field(default_factory=list)

    def require_input(self) -> InputSpec:
        if self.input is None:
            raise EdgeslimError(f"{self.name}: no default input shape; pass --input-shape")
        return self.input


def build_source(source: dict) -> nn.Module:
    """Build the (random-weight) architecture that ``source`` describes."""
    kind = source.get("kind")
    if kind == "zoo":
        return ZOO.get(source["name"]).factory(num_classes=source["num_classes"])
    if kind == "file":
        return build_from_file(f"{source['path']}:{source['factory']}")
    if kind == "hf":
        return build_hf(source["config"])
    if kind == "tv":
        from edgeslim.models.tv import build_tv

        return build_tv(source["name"], source.get("num_classes"))
    raise EdgeslimError(f"unknown model source kind {kind!r}")


def load_model(
    spec: str, *, num_classes: int | None = None, input_shape: tuple[int, ...] | None = None
) -> LoadedModel:
    """Resolve a model spec into a :class:`LoadedModel` (in eval mode).

    Example:
        >>> lm = load_model("resnet20", num_classes=10)
        >>> lm.input.shape
        (1, 3, 32, 32)
    """
    lm = _resolve(spec, num_classes)
    if input_shape is not None:
        base = lm.input or InputSpec(input_shape)
        if base.dtype == "int64" and len(input_shape) != 2:
            raise EdgeslimError(f"{spec}: token inputs are (batch, length); got {input_shape}")
        lm.input = InputSpec(tuple(input_shape), base.dtype, base.vocab_size)
    lm.model.eval()
    return lm


def _resolve(spec: str, num_classes: int | None) -> LoadedModel:
    if not spec:
        raise EdgeslimError("empty model spec")
    path = Path(spec).expanduser()
    if path.is_dir():
        from edgeslim.models.saved import load_saved

        return load_saved(path)
    if spec.startswith("hf:"):
        config = load_config_dict(spec[3:])
        if num_classes:
            config["num_labels"] = num_classes
        source = {"kind": "hf", "config": config}
        inp = InputSpec((1, HF_SEQ_LEN), "int64", int(config.get("vocab_size", 30522)))
        return LoadedModel(build_source(source), source, inp, Path(spec[3:]).stem)
    if spec.startswith("tv:"):
        source = {"kind": "tv", "name": spec[3:], "num_classes": num_classes}
        inp = InputSpec((1, 3, 224, 224))
        return LoadedModel(build_source(source), source, inp, spec[3:])
    if is_file_spec(spec):
        file, _, factory = spec.rpartition(":")
        source = {
            "kind": "file",
            "path": str(Path(file).expanduser().resolve()),
            "factory": factory,
        }
        return LoadedModel(build_source(source), source, None, factory)
    if spec in ZOO:
        entry = ZOO.get(spec)
        source = {"kind": "zoo", "name": spec, "num_classes": num_classes or entry.num_classes}
        return LoadedModel(build_source(source), source, InputSpec(entry.input_shape), spec)
    if spec.endswith(".onnx"):
        raise EdgeslimError(
            f"{spec}: an ONNX file can be benchmarked or evaluated, not loaded here"
        )
    if path.suffix or "/" in spec:
        raise EdgeslimError(f"model not found: {spec} (no such file or saved model directory)")
    raise EdgeslimError(
        f"unknown model {spec!r}: not a zoo model ({', '.join(ZOO.names())}), "
        "a saved model directory, 'file.py:factory' or 'hf:config.json'"
    )
