"""Append box decoding and class-aware NMS to a deployed raw-head detector file.

:func:`edgeslim.export.detector.export_detector` exports a float detector together
with its post-processing. A deployed file can also be INT8 QDQ (with INT4-packed
weights), written by the quantize or export stage from edgeslim's own scales;
re-exporting the fake-quantized model inside :class:`Detect` would lose that. So
the post-processing is exported on its own (:class:`RawCandidates`: one input per
raw head map, traced on the maps the file itself returns), gets its
``NonMaxSuppression`` (:func:`~edgeslim.export.detector.add_nms`), and is joined
to the deployed graph with ``onnx.compose.merge_models``: the file's raw outputs
feed the decoder, and the result returns ``boxes, scores, classes, batch_index``.

The check is exact in what it adds: on a batch of 3, ONNX Runtime's detections of
the joined file must equal eager :class:`Detect`'s post-processing (the task's own
NMS) of the raw maps that ONNX Runtime computes from the deployed file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import compose

from edgeslim.core.atomic import atomic_path
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.modes import quiet_exporter
from edgeslim.export.detector import OUTPUTS, add_nms
from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.tasks.detection.detect import Detect, NMSConfig, RawCandidates


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _export_post(maps: list[torch.Tensor], cfg: NMSConfig, opset: int, dest: Path) -> None:
    names = [f"post_in{i}" for i in range(len(maps))]
    outs = ["post_shifted", "post_nms_scores", "post_boxes", "post_scores", "post_classes"]
    with quiet_exporter():
        torch.onnx.export(
            RawCandidates(cfg).eval(),
            tuple(maps),
            str(dest),
            dynamo=False,
            opset_version=min(opset, 20),
            input_names=names,
            output_names=outs,
            dynamic_axes={n: {0: "batch"} for n in names + outs},
        )


def append_postprocess(
    path: str | Path, spec: InputSpec, out: str | Path, cfg: NMSConfig | None = None
) -> dict[str, float]:
    """Write ``out``: the raw-head file ``path`` followed by decode + class-aware NMS.

    ``path`` is not changed (``out`` may be the same path: it is replaced atomically).
    Returns the max |ONNX Runtime - eager| of boxes and scores on the check batch.
    """
    cfg = cfg or NMSConfig()
    base = onnx.load(str(path))
    x = spec.example(batch=3, seed=1)
    raw = list(ort_outputs(ort_session(path), x.numpy()).values())
    if not raw or any(r.ndim != 4 for r in raw):
        raise EdgeslimError(
            f"{Path(path).name}: post-processing needs a detector's raw head maps "
            f"(4-D outputs), got shapes {[r.shape for r in raw]}"
        )
    maps = [torch.from_numpy(r) for r in raw]
    opset = _opset(base)
    with tempfile.TemporaryDirectory() as d:
        post_path = Path(d) / "post.onnx"
        _export_post(maps, cfg, opset, post_path)
        post = onnx.load(str(post_path))
    add_nms(post, cfg)
    if _opset(post) != opset:
        post = onnx.version_converter.convert_version(post, opset)
    post.ir_version = base.ir_version
    # the two graphs' exporters name edges alike ("/Concat_output_0"): prefix the decoder's
    post = compose.add_prefix(post, "post/", rename_outputs=False)
    io_map = [(o.name, i.name) for o, i in zip(base.graph.output, post.graph.input, strict=True)]
    joined = compose.merge_models(base, post, io_map=io_map)
    onnx.checker.check_model(joined)
    with atomic_path(Path(out)) as tmp:
        onnx.save(joined, str(tmp))
        diffs = _parity(maps, cfg, tmp, x)
    return diffs


def _parity(maps, cfg: NMSConfig, joined: Path, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        ref = [t.numpy() for t in Detect(_Maps(maps), cfg)(x)]
    got = list(ort_outputs(ort_session(joined), x.numpy()).values())
    if len(got[0]) != len(ref[0]):
        raise EdgeslimError(
            f"post-processing parity failed: ONNX Runtime kept {len(got[0])} detections, "
            f"the task's NMS {len(ref[0])}"
        )
    # rows of equal score may come in either order: compare in one canonical order
    got, ref = _canonical(got), _canonical(ref)
    if not np.array_equal(got[3], ref[3]):
        raise EdgeslimError("post-processing parity failed: detections per image differ")
    diffs = {
        n: float(np.abs(g - r).max(initial=0.0)) for n, g, r in zip(OUTPUTS, got, ref, strict=True)
    }
    if diffs["scores"] > 1e-4:
        raise EdgeslimError(f"post-processing parity failed on scores: {diffs['scores']:.3g}")
    rounded = np.round(ref[1], 5) + 10 * ref[3]
    ties = len(rounded) - len(np.unique(rounded))
    diffs["ties"] = float(ties)
    if ties:  # equal scores: NMS may keep either of two tied boxes; the scores still agree
        return diffs
    scale = max(1.0, float(np.abs(ref[0]).max(initial=0.0)))
    if diffs["classes"] > 0 or diffs["boxes"] > 1e-4 * scale:
        raise EdgeslimError(f"post-processing parity failed: {diffs}")
    return diffs


def _canonical(out: list[np.ndarray]) -> list[np.ndarray]:
    """Rows sorted by image, score (rounded to 1e-5: ties), class, then box."""
    boxes, scores, classes, index = out
    keys = (*boxes.T[::-1], classes, -np.round(scores, 5), index)
    order = np.lexsort(keys)
    return [a[order] for a in out]


class _Maps(torch.nn.Module):
    """Returns the maps ONNX Runtime computed, whatever the input: :class:`Detect`'s model."""

    def __init__(self, maps: list[torch.Tensor]) -> None:
        super().__init__()
        self.maps = maps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: ARG002
        return self.maps
