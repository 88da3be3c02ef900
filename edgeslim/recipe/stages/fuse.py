"""``fuse`` stage: fold each BatchNorm into the conv before it, explicitly and on the record.

Quantization folds BN on its own; this stage makes the rewrite a visible step of
the pipeline (the report's notes list the pairs, each folded conv's row names its
BN) for a float deployable or before a stage that should see folded weights. A
conv's activation is fused by ONNX Runtime itself (``FusedConv``); the report's
layer table shows the kernel ORT ran for each layer and what it fused into it.
"""

from __future__ import annotations

from edgeslim.models.spec import LoadedModel
from edgeslim.recipe.registry import register_stage
from edgeslim.recipe.schema import Strict
from edgeslim.recipe.state import PipelineContext, PipelineState


class FuseSettings(Strict):
    """No settings: every conv -> BatchNorm pair the model's capture shows is folded."""


@register_stage("fuse", FuseSettings, "fold BatchNorm into the conv before it (Conv+BN)")
def run(state: PipelineState, s: FuseSettings, ctx: PipelineContext) -> PipelineState:
    from edgeslim.core.methods import apply
    from edgeslim.fuse.method import FuseBNConfig

    lm = state.lm
    example = lm.require_input().example(batch=1)
    model, record = apply(lm.model, FuseBNConfig(), calib=[example])
    pairs = record.details["pairs"]
    layers = {k: dict(v) for k, v in state.layers.items()}
    for conv, bn in pairs:
        layers.setdefault(conv, {})["bn_folded"] = bn
    notes = {
        **state.notes,
        "fuse": f"{len(pairs)} Conv+BN pairs folded"
        + (
            f" ({', '.join(f'{c}+{b}' for c, b in pairs[:6])}{', ...' if len(pairs) > 6 else ''})"
            if pairs
            else "; the model has no conv -> BatchNorm pair"
        )  # fmt: skip
        + "; activations are fused by ONNX Runtime (layer table: ORT kernel)",
    }
    new = LoadedModel(model.eval(), lm.source, lm.input, lm.name, lm.meta,
                      [*lm.methods, record.to_dict()])  # fmt: skip
    return PipelineState(new, None, layers, notes)
