"""FastBERT deployed on ONNX Runtime: one ONNX graph per exit point, run in sequence.

A BERT with FastBERT branches (:class:`~edgeslim.distill.losses.fastbert.FastBERTDistillation`)
is cut into one segment per encoder layer:

- segment 0: embeddings + layer 0 + branch 0, ``input_ids -> (hidden, logits)``;
- segment i: layer i + branch i, ``hidden -> (hidden, logits)``;
- the last segment: the last layer + the model's own pooler and classifier, ``hidden -> logits``.

Each segment is exported (and parity-checked against eager) as its own ONNX
file; :class:`~edgeslim.export.early_exit.EarlyExitRunner` runs them in
sequence and stops at the first branch whose normalised entropy is below the
threshold, so the deeper graphs are never run. The files and a ``manifest.json``
(layer count, input spec, thresholds) are written to one directory atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import eval_mode
from edgeslim.distill.layers import transformer_layers
from edgeslim.export.early_exit import FORMAT, MANIFEST, segment_file
from edgeslim.export.onnx import DEFAULT_OPSET, export_onnx
from edgeslim.models.inputs import InputSpec


class _Segment(nn.Module):
    """``[embeddings] -> layer -> (hidden, branch logits)`` or ``-> final logits``."""

    def __init__(
        self, embeddings: nn.Module | None, layer: nn.Module, branch: nn.Module | None, final
    ) -> None:
        super().__init__()
        self.embeddings, self.layer, self.branch, self.final = embeddings, layer, branch, final

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embeddings(input_ids=x) if self.embeddings is not None else x
        h = self.layer(h)
        h = h[0] if isinstance(h, (tuple, list)) else h
        if self.branch is not None:
            return {"hidden": h, "logits": self.branch(h)[1]}
        return {"logits": self.final(h)}


class _BertHead(nn.Module):
    """BERT's sequence-classification head: pooler (dense + tanh on [CLS]) and classifier."""

    def __init__(self, pooler: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.pooler, self.classifier = pooler, classifier

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooler(h))


def segments(model: nn.Module, branches: nn.Module) -> list[nn.Module]:
    """The exit segments of a wrapped transformers BERT and its FastBERT ``branches``.

    ``branches`` has ``heads`` (one per layer but the last) and ``student_layers``.
    The modules are shared with ``model``, not copied.
    """
    found = transformer_layers(model)
    hf = getattr(model, "hf", None)
    base = getattr(hf, getattr(hf, "base_model_prefix", ""), None)
    pooler, classifier = getattr(base, "pooler", None), getattr(hf, "classifier", None)
    if found is None or pooler is None or not isinstance(classifier, nn.Module):
        raise EdgeslimError("FastBERT segments need a BERT-style hf: model (pooler + classifier)")
    emb_name, layer_names = found
    heads: Sequence[nn.Module] = list(branches.heads)
    if len(heads) != len(layer_names) - 1:
        raise EdgeslimError(
            f"{len(heads)} branches for {len(layer_names)} layers: FastBERT needs one per layer "
            "but the last"
        )
    if tuple(getattr(branches, "student_layers", ())) != tuple(layer_names):
        raise EdgeslimError("the branches were trained on other layers than this model's")
    final = _BertHead(pooler, classifier)
    out: list[nn.Module] = []
    for i, name in enumerate(layer_names):
        emb = model.get_submodule(emb_name) if i == 0 else None
        last = i == len(layer_names) - 1
        out.append(
            _Segment(
                emb, model.get_submodule(name), None if last else heads[i], final if last else None
            )
        )
    return out


def export_fastbert(
    model: nn.Module,
    branches: nn.Module,
    input_spec: InputSpec,
    out_dir: str | Path,
    *,
    threshold: float = 0.3,
    thresholds: Sequence[float] = (),
    opset: int = DEFAULT_OPSET,
    dynamo: bool = True,
) -> Path:
    """Write one parity-checked ONNX graph per exit point and ``manifest.json`` to ``out_dir``.

    Args:
        model: the BERT (``hf:``) classifier; its mode is restored afterwards.
        branches: the trained FastBERT loss (``Distiller.losses[0]``).
        input_spec: token ids, ``(1, length)`` int64.
        out_dir: the directory, replaced atomically.
        threshold: the default exit threshold recorded in the manifest.
        thresholds: thresholds measured for this export, recorded for the reader.
        dynamo: export with ``torch.export`` (False: the faster TorchScript tracer).

    Example:
        >>> # export_fastbert(lm.model, distiller.losses[0], lm.input, "out/fastbert")
        >>> # EarlyExitRunner("out/fastbert")(ids, threshold=0.3)
    """
    if input_spec.dtype != "int64" or len(input_spec.shape) != 2:
        raise EdgeslimError(f"FastBERT export takes token ids (1, length), got {input_spec}")
    if not 0.0 <= threshold <= 1.0:
        raise EdgeslimError(f"threshold must be in [0, 1], got {threshold}")
    parts = segments(model, branches)
    out_dir = Path(out_dir)
    with eval_mode(model), eval_mode(branches), torch.no_grad():
        example = input_spec.example(batch=1)
        classes = int(model(example).shape[1])
        hidden = parts[0](example).get("hidden")
        info = []
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            for i, seg in enumerate(parts):
                spec = input_spec if i == 0 else InputSpec(tuple(hidden.shape), "float32")
                res = export_onnx(seg, spec, tmp / segment_file(i), opset=opset, dynamo=dynamo)
                info.append({"file": segment_file(i), "parity": res.max_abs_diff})
            manifest = {
                "format": FORMAT,
                "layers": len(parts),
                "num_classes": classes,
                "input": input_spec.to_dict(),
                "threshold": threshold,
                "thresholds": [float(t) for t in thresholds],
                "entropy": "normalized: -sum p log p / log C",
                "segments": info,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def branch_parity(
    model: nn.Module, branches: nn.Module, directory: str | Path, input_ids: torch.Tensor
) -> dict[str, float]:
    """Max |ONNX Runtime - eager| of every branch's logits and of the final logits.

    The exported segments are run in sequence without exiting, on real inputs, and each
    segment's ``logits`` is compared with the eager branch (the eager model's own logits
    for the last segment).

    Example:
        >>> # branch_parity(model, distiller.losses[0], "out/fastbert", test_ids[:64])
        >>> # {'branch_0': 3e-07, 'branch_1': 4e-07, 'final': 5e-07}
    """
    from edgeslim.distill.hooks import run_with_features
    from edgeslim.export.early_exit import EarlyExitRunner

    runner = EarlyExitRunner(directory, threads=1)
    with eval_mode(model), eval_mode(branches), torch.no_grad():
        out = run_with_features(model, input_ids, branches.student_layers)
        ref = [
            h(out.features[b])[1]
            for h, b in zip(branches.heads, branches.student_layers, strict=False)
        ]
    ref.append(out.logits)
    diffs: dict[str, float] = {}
    x = input_ids.numpy()
    for i, (sess, name) in enumerate(zip(runner.sessions, runner._inputs, strict=True)):
        got = dict(
            zip([o.name for o in sess.get_outputs()], sess.run(None, {name: x}), strict=True)
        )
        key = "final" if i == runner.layers - 1 else f"branch_{i}"
        diffs[key] = float(abs(got["logits"] - ref[i].numpy()).max())
        x = got.get("hidden")
    return diffs
