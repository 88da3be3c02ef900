"""ONNX Runtime sessions: one place that decides threads and optimisation level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeslim.core.errors import EdgeslimError


def ort_session(
    path: str | Path, threads: int | None = None, *, profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A CPU session with full graph optimisation and ``threads`` intra-op threads.

    ``profile_prefix``: turn on ORT's per-node profiler, writing ``<prefix>_<date>.json``
    when ``end_profiling()`` is called.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgeslimError(f"ONNX model not found: {path}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No spin-waiting between runs: spinning pools of several live sessions starve every
    # other thread on a small CPU (eager PyTorch timed next to them ran 2.5x-50x slow).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise EdgeslimError(f"ONNX Runtime cannot load {path}: {e}") from None


def ort_run(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Run a single-input, first-output session."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


def ort_outputs(session: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run a single-input session; every output by its graph name, in graph order.

    Example:
        >>> # ort_outputs(ort_session("yolo.onnx"), x)  -> {"output0": ..., "output1": ...}
    """
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {name: x}), strict=True))


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32"}


def onnx_input_spec(path: str | Path) -> tuple[tuple[int | str, ...], str]:
    """Shape (symbolic dims as strings) and dtype of an ONNX model's first input."""
    sess = ort_session(path, threads=1)
    inp = sess.get_inputs()[0]
    return tuple(inp.shape), _ORT_DTYPES.get(inp.type, "float32")
