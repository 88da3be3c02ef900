"""Learned adapters that map a student feature onto its teacher feature's width.

FitNets (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015) regress
the teacher's hint layer from the student's guided layer through a learned
regressor; here it is a 1x1 convolution for feature maps and a linear layer for
token or vector features (TinyBERT's ``W_h``, Jiao et al. 2020). When the student
is the teacher pruned by some ratio, widths differ and the adapter is required;
when they match it is the identity (no parameters).
"""

from __future__ import annotations

from torch import nn

from edgeslim.core.errors import EdgeslimError


def make_adapter(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Module:
    """An adapter from a student feature of ``student_shape`` to ``teacher_shape`` (batch first).

    Example:
        >>> make_adapter((2, 8, 16, 16), (2, 16, 16, 16))
        Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1), bias=False)
        >>> make_adapter((2, 5, 32), (2, 5, 32))
        Identity()
    """
    if len(student_shape) != len(teacher_shape):
        raise EdgeslimError(
            f"cannot match a student feature of shape {student_shape} to a teacher "
            f"feature of shape {teacher_shape}: different ranks"
        )
    if len(student_shape) == 4:  # N, C, H, W: channels are dim 1
        s, t = student_shape[1], teacher_shape[1]
        return nn.Identity() if s == t else nn.Conv2d(s, t, 1, bias=False)
    s, t = student_shape[-1], teacher_shape[-1]  # N, ..., D: features are the last dim
    return nn.Identity() if s == t else nn.Linear(s, t, bias=False)
