"""Graph rewrites that keep a model's function and make it cheaper: one rule per file."""

from edgeslim.fuse.conv_bn import conv_bn_pairs, fold_bn, fold_bn_, fold_conv_bn

__all__ = ["conv_bn_pairs", "fold_bn", "fold_bn_", "fold_conv_bn"]
