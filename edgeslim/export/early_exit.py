"""Early exit on ONNX Runtime: one ONNX graph per exit point, run in sequence.

A directory written by :func:`edgeslim.distill.fastbert.export_fastbert` holds
``segment_0.onnx`` ... ``segment_{L-1}.onnx`` and ``manifest.json``. Segment 0
takes the token ids, every later one the previous segment's ``hidden`` output;
each but the last also returns a branch's ``logits``, the last the model's own.
:class:`EarlyExitRunner` runs them in order and, per sample, stops at the first
branch whose normalised entropy ``-sum p log p / log C`` is below the threshold
(FastBERT, Liu et al., ACL 2020): the deeper graphs are really not run. In a
batch, samples that exited leave it and only the others go on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeslim.core.errors import EdgeslimError
from edgeslim.export.ort import ort_session

MANIFEST = "manifest.json"
FORMAT = "edgeslim-early-exit/1"
_KEYS = ("format", "layers", "num_classes", "input", "threshold", "segments")


def segment_file(i: int) -> str:
    return f"segment_{i}.onnx"


def normalized_entropy(logits: np.ndarray) -> np.ndarray:
    """Per-row entropy of ``softmax(logits)`` divided by ``log(C)``, in [0, 1].

    Example:
        >>> normalized_entropy(np.zeros((1, 4), np.float32))
        array([1.])
    """
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(np.exp(logp) * logp).sum(axis=1) / math.log(logits.shape[1])


def read_manifest(directory: str | Path) -> dict:
    """The checked manifest of an early-exit directory; an EdgeslimError names what is wrong."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise EdgeslimError(f"{path}: missing (not an early-exit export directory)")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgeslimError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(m, dict):
        raise EdgeslimError(f"{path}: expected a JSON object")
    missing = [k for k in _KEYS if k not in m]
    if missing:
        raise EdgeslimError(f"{path}: missing {', '.join(missing)}")
    if m["format"] != FORMAT:
        raise EdgeslimError(f"{path}: format {m['format']!r}, expected {FORMAT!r}")
    layers, segs = m["layers"], m["segments"]
    if not isinstance(layers, int) or layers < 1 or not isinstance(segs, list):
        raise EdgeslimError(f"{path}: 'layers' must be a positive integer, 'segments' a list")
    if len(segs) != layers:
        raise EdgeslimError(f"{path}: {len(segs)} segments for {layers} layers")
    if not isinstance(m["threshold"], (int, float)) or not 0 <= m["threshold"] <= 1:
        raise EdgeslimError(f"{path}: 'threshold' must be a number in [0, 1]")
    for i, s in enumerate(segs):
        if not isinstance(s, dict) or s.get("file") != segment_file(i):
            raise EdgeslimError(f"{path}: segment {i} must be {{'file': '{segment_file(i)}'}}")
        if not (Path(directory) / s["file"]).is_file():
            raise EdgeslimError(f"{Path(directory) / s['file']}: segment {i} is missing")
    return m


@dataclass(frozen=True)
class ExitOutput:
    """Per sample: the logits it left with and the layer (0-based) of its exit."""

    logits: np.ndarray  # (N, C) float32
    exits: np.ndarray  # (N,) int64; layers - 1 is the model's own classifier


class EarlyExitRunner:
    """FastBERT's early exit: one ONNX graph per exit point, run in sequence.

    Args:
        directory: written by :func:`edgeslim.distill.fastbert.export_fastbert`.
        threads: ONNX Runtime intra-op threads per segment (None: ORT's default).

    Example:
        >>> # run = EarlyExitRunner("out/fastbert", threads=1)
        >>> # out = run(ids[None], threshold=0.2)   # ids: (length,) int64
        >>> # out.exits   -> array([0])  (left after layer 0)
    """

    def __init__(self, directory: str | Path, threads: int | None = None) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.sessions = []
        for s in self.manifest["segments"]:
            sess = ort_session(self.directory / s["file"], threads)
            names = {o.name for o in sess.get_outputs()}
            last = len(self.sessions) == self.layers - 1
            if "logits" not in names or (not last and "hidden" not in names):
                raise EdgeslimError(
                    f"{self.directory / s['file']}: outputs {sorted(names)}, expected "
                    + ("'logits'" if last else "'hidden' and 'logits'")
                )
            self.sessions.append(sess)
        self._inputs = [s.get_inputs()[0].name for s in self.sessions]

    @property
    def layers(self) -> int:
        return int(self.manifest["layers"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    def __call__(self, input_ids: np.ndarray, threshold: float | None = None) -> ExitOutput:
        """Classify ``input_ids`` (N, length), each sample leaving at its first confident branch.

        A sample leaves when its entropy is strictly below ``threshold``: 0 never exits
        early (every sample reaches the last layer); 1 always exits at layer 0 (even a
        uniform prediction, whose entropy is exactly 1). None takes the manifest's.
        """
        t = self.threshold if threshold is None else float(threshold)
        n = input_ids.shape[0]
        logits = np.zeros((n, int(self.manifest["num_classes"])), np.float32)
        exits = np.full(n, self.layers - 1, np.int64)
        active = np.arange(n)
        x = np.ascontiguousarray(input_ids, dtype=np.int64)
        for i, (sess, name) in enumerate(zip(self.sessions, self._inputs, strict=True)):
            if i == self.layers - 1:
                logits[active] = sess.run(["logits"], {name: x})[0]
                break
            hidden, z = sess.run(["hidden", "logits"], {name: x})
            leave = normalized_entropy(z) < t if t < 1 else np.ones(len(z), bool)
            if leave.any():
                logits[active[leave]] = z[leave]
                exits[active[leave]] = i
                if leave.all():
                    break
                active, x = active[~leave], hidden[~leave]
            else:
                x = hidden
        return ExitOutput(logits, exits)
