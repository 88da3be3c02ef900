"""Layer mapping between a student and its teacher, by module name.

``parse_layer_map("layer1=layer1,layer3=layer3")`` reads the user's mapping; with
none given, :func:`default_layer_pairs` maps the stage outputs both models share
by name (``layer1..layerN`` in the zoo ResNets, so a pruned teacher or a
half-width or shallower student of the same family maps stage to stage), or, for
transformers, TinyBERT's uniform layer mapping (Jiao et al. 2020).
"""

from __future__ import annotations

import re

from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.distill.losses.base import LayerPair

_STAGE = re.compile(r"^(layer|stage|features|block)\d+$")


def parse_layer_map(text: str) -> tuple[LayerPair, ...]:
    """``"s1=t1,s2"`` -> ``(("s1", "t1"), ("s2", "s2"))``.

    Example:
        >>> parse_layer_map("layer1=layer2, fc")
        (('layer1', 'layer2'), ('fc', 'fc'))
    """
    pairs = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        s, _, t = item.partition("=")
        if not s or (_ and not t):
            raise EdgeslimError(f"bad layer mapping {item!r}: use STUDENT=TEACHER or NAME")
        pairs.append((s.strip(), (t or s).strip()))
    if not pairs:
        raise EdgeslimError(f"empty layer mapping {text!r}")
    return tuple(pairs)


def stage_names(model: nn.Module) -> list[str]:
    """Top-level children that look like stages (``layer1``, ``stage2``, ...), in order."""
    return [n for n, _ in model.named_children() if _STAGE.match(n)]


def transformer_layers(model: nn.Module) -> tuple[str, list[str]] | None:
    """``(embeddings, [layer names])`` of a wrapped transformers encoder, or None."""
    hf = getattr(model, "hf", None)
    base = getattr(hf, getattr(hf, "base_model_prefix", ""), None) if hf is not None else None
    enc = getattr(base, "encoder", None)
    if base is None or enc is None or not hasattr(enc, "layer"):
        return None
    prefix = f"hf.{hf.base_model_prefix}"
    return f"{prefix}.embeddings", [f"{prefix}.encoder.layer.{i}" for i in range(len(enc.layer))]


def transformer_pairs(
    student: nn.Module, teacher: nn.Module, attention: bool = False
) -> tuple[LayerPair, ...]:
    """TinyBERT's uniform mapping as module-name pairs (hidden states; attention maps too).

    Attention pairs read element 1 (the probabilities) of each layer's self-attention.
    """
    from edgeslim.distill.losses.tinybert import uniform_layer_map

    s, t = transformer_layers(student), transformer_layers(teacher)
    if s is None or t is None:
        raise EdgeslimError("both models must be transformers encoders for a layer mapping")
    (s_emb, s_layers), (t_emb, t_layers) = s, t
    pairs: list[LayerPair] = []
    for m, n in uniform_layer_map(len(s_layers), len(t_layers)):
        pairs.append((s_emb, t_emb) if m == 0 else (s_layers[m - 1], t_layers[n - 1]))
        if attention and m > 0:
            pairs.append(
                (f"{s_layers[m - 1]}.attention.self#1", f"{t_layers[n - 1]}.attention.self#1")
            )
    return tuple(pairs)


def default_layer_pairs(
    student: nn.Module, teacher: nn.Module | None, attention: bool = False
) -> tuple[LayerPair, ...]:
    """Stage outputs shared by name, or the transformers uniform mapping (with the attention
    maps when ``attention``); else an error."""
    if transformer_layers(student) is not None and (
        teacher is None or transformer_layers(teacher) is not None
    ):
        return transformer_pairs(student, teacher or student, attention)
    names = stage_names(student)
    if teacher is not None:
        names = [n for n in names if n in set(stage_names(teacher))]
    if not names:
        raise EdgeslimError(
            "no stage layers shared by name between student and teacher; "
            "pass the mapping explicitly (--layers STUDENT=TEACHER,...)"
        )
    return tuple((n, n) for n in names)
