"""Feature capture with forward hooks, and the frozen teacher's forward pass.

Hooks are registered for one forward pass and removed in ``finally``, so an
exception (or a kill signal turned into one) never leaves a hook behind; the
teacher runs under ``no_grad`` in eval mode and every module's previous
train/eval mode is restored afterwards. Nothing is monkeypatched.

A layer name is a dotted module path (``layer2``, ``hf.bert.encoder.layer.1``).
Modules that return tuples (a transformers attention block returns
``(output, attention_probs)``) are read at element 0, or at element ``k`` with the
suffix ``#k``: ``hf.bert.encoder.layer.0.attention.self#1`` is layer 0's attention map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode


class Outputs(NamedTuple):
    """One model's logits plus the captured features, by layer name."""

    logits: torch.Tensor
    features: dict[str, torch.Tensor]


def parse_layer(name: str) -> tuple[str, int]:
    """``"block#1"`` -> ``("block", 1)``; ``"block"`` -> ``("block", 0)``."""
    module, _, index = name.partition("#")
    if index and not index.isdigit():
        raise EdgeslimError(f"bad layer {name!r}: the part after '#' must be an integer")
    return module, int(index or 0)


def resolve(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (without any ``#k``), with the choices named on a miss."""
    module = parse_layer(name)[0]
    try:
        return model.get_submodule(module)
    except AttributeError:
        near = [n for n, _ in model.named_modules() if n and n.split(".")[-1] in module][:8]
        raise EdgeslimError(
            f"model has no module {module!r}" + (f" (similar: {', '.join(near)})" if near else "")
        ) from None


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during the forward passes run inside the block.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with capture(m, ["1"]) as feats:
        ...     _ = m(torch.zeros(3, 4))
        >>> feats["1"].shape
        torch.Size([3, 8])
    """
    feats: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name in layers:
            _, index = parse_layer(name)

            def hook(_mod, _inp, out, name=name, index=index):
                if isinstance(out, (tuple, list)):
                    if index >= len(out) or out[index] is None:
                        raise EdgeslimError(
                            f"layer {name!r}: output {index} is missing (transformers returns "
                            "attention maps only with 'attn_implementation': 'eager')"
                        )
                    out = out[index]
                elif index:
                    raise EdgeslimError(f"layer {name!r} returns one tensor, not a tuple")
                feats[name] = out

            handles.append(resolve(model, name).register_forward_hook(hook))
        yield feats
    finally:
        for h in handles:
            h.remove()


def run_with_features(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> Outputs:
    """``model(x)`` in the model's current mode, with the outputs of ``layers`` captured."""
    with capture(model, layers) as feats:
        logits = model(x)
    return Outputs(logits, dict(feats))


def teacher_forward(teacher: nn.Module, x: torch.Tensor, layers: Sequence[str] = ()) -> Outputs:
    """The frozen teacher's outputs: eval mode (restored after), no gradients.

    Example:
        >>> t = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5)).train()
        >>> out = teacher_forward(t, torch.ones(1, 4))
        >>> t.training, out.logits.requires_grad
        (True, False)
    """
    with eval_mode(teacher), torch.no_grad():
        return run_with_features(teacher, x, layers)


def layer_shapes(model: nn.Module, example: torch.Tensor, layers: Sequence[str]) -> dict:
    """Shape (batch first) of each layer's output on ``example``; the model's mode is kept."""
    out = teacher_forward(model, example, layers)
    return {k: tuple(v.shape) for k, v in out.features.items()}
