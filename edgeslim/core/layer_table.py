"""The built-in entries of the layer-type table (:mod:`edgeslim.core.layer_types`).

One entry per ``torch.nn`` layer class edgeslim handles, each with its pruning
layout, saved-model codec, fake-quant twin and storage coding, or the reason a
part does not apply.
"""

from __future__ import annotations

from torch import nn

from edgeslim.core.layer_types import (
    LayerLayout,
    LayerType,
    ModuleCodec,
    ParamAxes,
    WeightCoding,
    register_layer_type,
    resolve_class,
)

_TWIN = "edgeslim.quant.fake_quant:"
WEIGHT = WeightCoding("weight", 0)
NO_TWIN_NORM = ("twin", "a normalization is folded or kept in float; it has no integer kernel")
NO_CODING_NORM = ("coding", "per-channel affine parameters are too small to code")


# -- layouts: which axes hold channels, and the constructor attributes to fix ------------
def _resize_conv(m: nn.Module, kind: str, n: int) -> None:
    if kind == "out":
        if m.groups > 1:  # grouped or depthwise: whole groups go, inputs follow outputs
            per_in, per_out = m.in_channels // m.groups, m.out_channels // m.groups
            m.groups = n // per_out
            m.in_channels = m.groups * per_in
        m.out_channels = n
    else:
        m.in_channels = n


def _resize_linear(m: nn.Module, kind: str, n: int) -> None:
    if kind == "out":
        m.out_features = n
    else:
        m.in_features = n


def _resize_norm(m: nn.Module, kind: str, n: int) -> None:
    m.num_features = n


def _resize_gn(m: nn.Module, kind: str, n: int) -> None:
    per_group = m.num_channels // m.num_groups
    m.num_groups, m.num_channels = n // per_group, n


def _resize_embedding(m: nn.Module, kind: str, n: int) -> None:
    m.embedding_dim = n


_NORM_OUT: ParamAxes = (("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0))
CONV = LayerLayout((("weight", 0), ("bias", 0)), (("weight", 1),), _resize_conv)
CONV_T = LayerLayout((("weight", 1), ("bias", 0)), (("weight", 0),), _resize_conv)
NORM = LayerLayout(_NORM_OUT, (), _resize_norm, scale="weight")


# -- codecs: constructor arguments as JSON -------------------------------------------------
def _conv_args(m: nn.Module) -> dict:
    args = dict(
        in_channels=m.in_channels,
        out_channels=m.out_channels,
        kernel_size=list(m.kernel_size),
        stride=list(m.stride),
        padding=m.padding if isinstance(m.padding, str) else list(m.padding),
        dilation=list(m.dilation),
        groups=m.groups,
        bias=m.bias is not None,
        padding_mode=m.padding_mode,
    )
    if m.transposed:
        args["output_padding"] = list(m.output_padding)
    return args


def _codec(cls: type[nn.Module], describe) -> ModuleCodec:
    return ModuleCodec(describe, lambda d: cls(**d))


def _norm_args(m: nn.Module) -> dict:
    return dict(
        num_features=m.num_features,
        eps=m.eps,
        momentum=m.momentum,
        affine=m.affine,
        track_running_stats=m.track_running_stats,
    )


def _build_head_mha(d: dict) -> nn.Module:
    return resolve_class("edgeslim.graph.attention:HeadPrunableMHA")(**d)


# -- the entries ---------------------------------------------------------------------------
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    _twin = f"{_TWIN}QuantConv2d" if _cls is nn.Conv2d else None
    register_layer_type(
        LayerType(
            _cls,
            CONV,
            _codec(_cls, _conv_args),
            _twin,
            WEIGHT,
            () if _twin else (("twin", "no fake-quant twin yet: PTQ keeps it in float"),),
        )
    )
for _cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_layer_type(
        LayerType(
            _cls,
            CONV_T,
            _codec(_cls, _conv_args),
            None,
            None,
            (
                ("twin", "no fake-quant twin yet: PTQ keeps it in float"),
                ("coding", "codings take per-row side data on dim 0, the input channels here"),
            ),
        )
    )
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    register_layer_type(
        LayerType(_cls, NORM, _codec(_cls, _norm_args), None, None, (NO_TWIN_NORM, NO_CODING_NORM))
    )
for _cls in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
    register_layer_type(
        LayerType(_cls, NORM, _codec(_cls, _norm_args), None, None, (NO_TWIN_NORM, NO_CODING_NORM))
    )
register_layer_type(
    LayerType(
        nn.Linear,
        LayerLayout((("weight", 0), ("bias", 0)), (("weight", 1),), _resize_linear),
        ModuleCodec(
            lambda m: dict(
                in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None
            ),
            lambda d: nn.Linear(**d),
        ),
        f"{_TWIN}QuantLinear",
        WEIGHT,
    )
)
register_layer_type(
    LayerType(
        nn.GroupNorm,
        LayerLayout((("weight", 0), ("bias", 0)), (), _resize_gn, "weight"),
        ModuleCodec(
            lambda m: dict(
                num_groups=m.num_groups, num_channels=m.num_channels, eps=m.eps, affine=m.affine
            ),
            lambda d: nn.GroupNorm(**d),
        ),
        None,
        None,
        (NO_TWIN_NORM, NO_CODING_NORM),
    )
)
register_layer_type(
    LayerType(
        nn.LayerNorm,
        None,
        ModuleCodec(
            lambda m: dict(
                normalized_shape=list(m.normalized_shape),
                eps=m.eps,
                elementwise_affine=m.elementwise_affine,
                bias=getattr(m, "bias", None) is not None,
            ),
            lambda d: nn.LayerNorm(**d),
        ),
        None,
        None,
        (
            ("layout", "pruned by its op handler (graph.ops), which knows the normalized dims"),
            NO_TWIN_NORM,
            NO_CODING_NORM,
        ),
    )
)
register_layer_type(
    LayerType(
        nn.Embedding,
        LayerLayout((("weight", 1),), (), _resize_embedding),
        ModuleCodec(
            lambda m: dict(
                num_embeddings=m.num_embeddings,
                embedding_dim=m.embedding_dim,
                padding_idx=m.padding_idx,
            ),
            lambda d: nn.Embedding(**d),
        ),
        None,
        None,
        (
            ("twin", "a lookup table has no integer kernel to feed: PTQ keeps it in float"),
            ("coding", "not coded yet: weight codings target conv/linear GEMMs"),
        ),
    )
)
_MHA_WHY = (
    ("layout", "heads are pruned by the attention handler (graph.attention), not by channel"),
    ("twin", "its projections are fused inside one op: PTQ keeps it in float"),
    ("coding", "its packed in_proj weight is not coded yet"),
)
register_layer_type(
    LayerType(
        nn.MultiheadAttention,
        None,
        ModuleCodec(
            lambda m: dict(
                embed_dim=m.embed_dim,
                num_heads=m.num_heads,
                dropout=m.dropout,
                bias=m.in_proj_bias is not None,
                kdim=m.kdim,
                vdim=m.vdim,
                batch_first=m.batch_first,
            ),
            lambda d: nn.MultiheadAttention(**d),
        ),
        None,
        None,
        _MHA_WHY,
    )
)
register_layer_type(
    LayerType(
        "edgeslim.graph.attention:HeadPrunableMHA",
        None,
        ModuleCodec(
            lambda m: dict(
                embed_dim=m.embed_dim,
                num_heads=m.num_heads,
                head_dim=m.head_dim,
                bias=m.q_proj.bias is not None,
                batch_first=m.batch_first,
                dropout=m.dropout,
                kdim=m.k_proj.in_features,
                vdim=m.v_proj.in_features,
            ),
            _build_head_mha,
        ),
        None,
        None,
        (
            ("layout", "a pruning output: its q/k/v/out projections are plain Linear layers"),
            ("twin", "its Linear projections get their own twins"),
            ("coding", "its Linear projections are coded one by one"),
        ),
    )
)
