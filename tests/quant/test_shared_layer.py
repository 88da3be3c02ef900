"""A layer called on several tensors (RetinaNet's head, shared by the pyramid levels)
gets one input quantizer for all its calls: its int32 bias has one scale, so the QDQ
graph, where every call is its own Conv node, computes what the simulation does. With
one quantizer per call the simulation biased every call at the last call's scale, and
ORT's int32 bias saturated on the levels with tiny activations (1.4 off on logits of 4.6)."""

import torch
from torch import nn

from edgeslim.export.ort import ort_outputs, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.ptq import PTQConfig, quantize_ptq
from edgeslim.quant.qdq import export_qdq


class SharedHead(nn.Module):
    """Two "levels" of very different scale through one conv + ReLU + conv head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 1))
        with torch.no_grad():
            self.stem.weight.mul_(1e-4)  # level 0: activations of ~1e-5 (an untrained head)
            self.stem.bias.zero_()
            self.head[0].bias.mul_(1e-4)
            self.down.weight.mul_(1e4)  # level 1: of ~1
            self.head[2].bias.fill_(-4.6)  # RetinaNet's class prior

    def forward(self, x):
        a = self.stem(x)
        return self.head(a), self.head(self.down(a))


def test_shared_layer_calls_share_one_quantizer(tmp_path):
    torch.manual_seed(0)
    model = SharedHead().eval()
    calib = [torch.randn(4, 3, 16, 16) for _ in range(2)]
    qm = quantize_ptq(model, calib, PTQConfig(calib_batches=2), progress=False)
    by_call = {(s.module, s.call): s.quantizer for s in qm.placement.sites}
    assert by_call[("head.1", 0)] == by_call[("head.1", 1)]
    r = export_qdq(qm.model, InputSpec((1, 3, 16, 16)), tmp_path / "q.onnx", atol=None)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = qm.model(x)
    got = list(ort_outputs(ort_session(r.path), x.numpy()).values())
    for a, b in zip(ref, got, strict=True):
        assert abs(a.numpy() - b).max() <= 0.05 * max(1.0, float(a.abs().max()))
