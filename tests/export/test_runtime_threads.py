"""``threads`` reaches every runtime: the count is read back from the runtime itself.

ONNX Runtime and OpenVINO report the setting of the loaded session; PyTorch's count is
process-wide, so it is recorded inside ``forward`` and must be the caller's again after.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.export.onnx import export_onnx
from edgeslim.export.runtimes import available_runtimes, get_runtime
from edgeslim.models.inputs import InputSpec

SPEC = InputSpec((1, 3, 8, 8))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten()).eval()


@torch.compiler.disable  # a graph break: torch_compile runs this eagerly, no codegen
def _record(x: torch.Tensor) -> torch.Tensor:
    ThreadProbe.seen.append(torch.get_num_threads())
    return x.clone()


class ThreadProbe(nn.Module):
    """Identity that records the intra-op thread count its forward ran with.

    A class attribute, not an instance one: sessions deep-copy the module they load.
    """

    seen: ClassVar[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _record(x)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    return export_onnx(_net(), SPEC, tmp_path_factory.mktemp("threads") / "m.onnx").path


@pytest.fixture
def two_torch_threads():
    """Make the caller's count 2, so that a session asked for 1 has something to change."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield 2
    finally:
        torch.set_num_threads(old)


def test_onnxruntime_session_gets_intra_op_threads(onnx_file):
    sess = get_runtime("onnxruntime").load(onnx_file, threads=1)
    opts = sess.sess.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.inter_op_num_threads == 1
    assert sess.run([SPEC.example(batch=2).numpy()])[0].shape == (2, 4 * 8 * 8)


@pytest.mark.skipif("openvino" not in available_runtimes(), reason="openvino not installed")
@pytest.mark.parametrize("threads", [1, 2])
def test_openvino_compiled_model_gets_inference_num_threads(onnx_file, threads):
    sess = get_runtime("openvino").load(onnx_file, threads=threads, batch=2)
    assert int(sess.compiled.get_property("INFERENCE_NUM_THREADS")) == threads
    x = SPEC.example(batch=2).numpy()
    expected = _net()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(sess.run([x])[0], expected, atol=1e-4)


@pytest.mark.parametrize("name", available_runtimes("module"))
def test_torch_runs_with_threads_and_restores_the_callers_count(name, two_torch_threads):
    sess = get_runtime(name).load(ThreadProbe(), threads=1)
    ThreadProbe.seen.clear()
    x = SPEC.example(batch=2).numpy()
    np.testing.assert_array_equal(sess.run([x])[0], x)
    assert ThreadProbe.seen == [1]
    assert torch.get_num_threads() == two_torch_threads


@pytest.mark.parametrize("name", available_runtimes("module"))
def test_torch_without_threads_keeps_the_callers_count(name, two_torch_threads):
    sess = get_runtime(name).load(ThreadProbe())
    ThreadProbe.seen.clear()
    sess.run([SPEC.example(batch=1).numpy()])
    assert ThreadProbe.seen == [two_torch_threads]
    assert torch.get_num_threads() == two_torch_threads
