"""MACs of attention: the fused CPU kernels count what the unfused computation does.

``nn.MultiheadAttention`` in eval mode without grad runs one fused kernel that
PyTorch's FlopCounterMode counted as 0 MACs, while edgeslim's pruned twin
(``HeadPrunableMHA``: plain linears and matmuls) was counted in full; a pruned ViT
then reported more MACs than its input. The oracle here is the hand formula and
the same module on its unfused path (``torch.backends.mha`` fast path off).
"""

import contextlib
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.bench.macs import count_macs
from edgeslim.graph.attention import convert_mha_


@contextlib.contextmanager
def unfused():
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


class SelfAttention(nn.Module):
    def __init__(self, e: int, h: int, need_weights: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(e, h, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


def mha_formula(b: int, lq: int, lk: int, e: int) -> int:
    # q, out projections on lq tokens; k, v on lk tokens; QK^T and AV over all heads
    return b * (2 * lq * e * e + 2 * lk * e * e + 2 * lq * lk * e)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_fast_path_counts_like_formula_unfused_and_pruned_twin(need_weights):
    m = SelfAttention(64, 4, need_weights).eval()
    x = torch.randn(3, 17, 64)
    fused = count_macs(m, x)[0]
    with unfused():
        slow = count_macs(m, x)[0]
    twin = count_macs(convert_mha_(copy.deepcopy(m)), x)[0]
    assert fused == slow == twin == mha_formula(3, 17, 17, 64)
    assert count_macs(m, x)[1]["attn"] == fused  # attributed to the attention module


def test_encoder_layer_fast_path():
    layer = nn.TransformerEncoderLayer(32, 4, 80, batch_first=True, dropout=0.0).eval()
    x = torch.randn(2, 9, 32)
    with unfused():
        slow = count_macs(layer, x)[0]
    ffn = 2 * 2 * 9 * 32 * 80
    assert count_macs(layer, x)[0] == slow == mha_formula(2, 9, 9, 32) + ffn


def test_cpu_sdpa_counts_both_products():
    class Sdpa(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)

    q = torch.randn(2, 3, 10, 8)  # batch, heads, tokens, head dim
    assert count_macs(Sdpa(), q)[0] == 2 * (2 * 3 * 10 * 10 * 8)


def test_bert_sdpa_counts_like_eager():
    pytest.importorskip("transformers")
    from edgeslim.models.tv import TorchvisionRepairWarning, repair_torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TorchvisionRepairWarning)
        repair_torchvision()  # transformers imports an installed torchvision: it must import
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    counts = []
    for impl in ("eager", "sdpa"):
        torch.manual_seed(0)
        m = transformers.BertForSequenceClassification._from_config(cfg, attn_implementation=impl)
        counts.append(count_macs(m.eval(), ids)[0])
    per_layer = 2 * 12 * (4 * 32 * 32 + 2 * 12 * 32 + 2 * 32 * 64)  # batch 2, 12 tokens
    assert counts[0] == counts[1] == 2 * per_layer + 2 * (32 * 32 + 32 * 3)  # + pooler, head
