"""The QDQ export (TorchScript tracer) quantizes the same tensors as the eager simulation.

Under the tracer ``x.size()`` returns 0-dim tensors, so shape arithmetic (BERT
embeddings' ``seq_length + cache_length``) is a Tensor ``add`` that eager never runs.
Counted as a functional op, it shifted the module's later ``add`` sites by one: the
exported BERT quantized the word + token-type sum with the scale calibrated for the
layer norm's input (word + token-type + position), and the recipe's parity check
failed (``max |ort - eager| = 0.311 > 0.17`` on a distilled 6-layer BERT).
"""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeslim.export.ort import ort_run, ort_session
from edgeslim.models.inputs import InputSpec
from edgeslim.quant.config import PTQConfig, activation_spec
from edgeslim.quant.ptq import quantize_ptq
from edgeslim.quant.qdq import export_qdq
from edgeslim.quant.sites import ActivationQuantizers, Site


class _ShapeArithmetic(nn.Module):
    def __init__(self, size) -> None:
        super().__init__()
        self.size = size

    def forward(self, x):
        n = self.size(x) + 0  # Python ints in eager, 0-dim tensors under the tracer
        a = x + 1.0  # add #0 of this forward in eager: the quantized one
        return (a + x)[:, :n]


def _frozen(aq: ActivationQuantizers, scale: float) -> None:
    fq = aq.get_submodule("0")
    fq._set_qparams(torch.tensor([scale]), torch.tensor([128], dtype=torch.int32))
    fq._cache_scalars()
    fq.observing, fq.quantizing = False, True


@pytest.mark.parametrize(
    "size",
    [lambda x: x.size(1), lambda x: x.shape[1], lambda x: x.size()[1] * x.numel() // x.numel()],
    ids=["size", "shape", "numel"],
)
def test_traced_forward_quantizes_the_eager_add_not_the_shape_arithmetic(size):
    model = _ShapeArithmetic(size).eval()
    aq = ActivationQuantizers(activation_spec(), [Site("", op="add", index=0, slot="out")])
    aq.attach_(model)
    _frozen(aq, 0.5)  # coarse: a quantized x + 1 is visibly on the 0.5 grid
    x = torch.linspace(-3, 3, 24).reshape(2, 12)
    with torch.no_grad():
        eager = model(x)
        traced = torch.jit.trace(model, (x,), check_trace=False)(x)
        unquantized = (x + 1.0) + x
    assert not torch.allclose(eager, unquantized)  # the site does something
    torch.testing.assert_close(traced, eager, rtol=0, atol=1e-6)


pytest.importorskip("transformers")

from edgeslim.models.hf import build_hf  # noqa: E402

CFG = {
    "model_type": "bert",
    "vocab_size": 128,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_labels": 4,
}


def _bert():
    torch.manual_seed(0)
    model = build_hf({**CFG, "initializer_range": 0.2}).eval()
    with torch.no_grad():
        # position embeddings wider than the word ones (as after training): the layer
        # norm's input then has a range the word + token-type sum does not
        model.hf.bert.embeddings.position_embeddings.weight.mul_(5)
        model.hf.classifier.weight.mul_(10)  # confident logits (~10), as a distilled model's
    return model


def test_exported_bert_quantizes_the_layer_norm_input_like_the_simulation(tmp_path):
    model = _bert()
    spec = InputSpec((1, 16), "int64", 128)
    calib = [spec.example(batch=8, seed=i) for i in range(4)]
    qm = quantize_ptq(model, calib, PTQConfig(calib_batches=4), progress=False)
    emb = "hf.bert.embeddings"
    assert Site(emb, 0, "add", 1, "out", 0) in qm.placement.sites  # (word + type) + position
    # the default parity check; before the fix: max |ort - eager| = 1.25 > 0.50
    res = export_qdq(qm.model, spec, tmp_path / "bert.onnx")
    graph = onnx.load(str(res.path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    ln = next(n for n in graph.node if n.op_type == "LayerNormalization")
    dq = producer[ln.input[0]]  # the embeddings' layer norm reads the quantized sum ...
    assert dq.op_type == "DequantizeLinear"
    q = producer[dq.input[0]]
    add = producer[q.input[0]]  # ... of all three embeddings, position included
    assert add.op_type == "Add"
    assert any("position_embeddings" in producer[i].name for i in add.input if i in producer)
    x = spec.example(batch=16, seed=9)
    sim = qm.model(x).detach().numpy()
    got = ort_run(ort_session(res.path, threads=1), x.numpy())
    assert np.abs(sim).max() > 3  # confident logits
    assert np.abs(got - sim).max() <= 0.05 * np.abs(sim).max()
