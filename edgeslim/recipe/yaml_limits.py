"""Bounds on a recipe's YAML before it is built: nesting depth and alias expansion.

A recipe is a few dozen keys, a few levels deep. Deeply nested flow collections
(``[[[[...]]]]``) make PyYAML's recursive composer overflow the stack, and anchors
that reference anchors (the "billion laughs") expand exponentially once validation
walks the tree. Both are refused up front with the line where the limit was crossed.
The depth is counted on the token stream (PyYAML's scanner does not recurse).
"""

from __future__ import annotations

import yaml

from edgeslim.core.errors import EdgeslimError

MAX_DEPTH = 32  # nested mappings/sequences; real recipes use 4
MAX_NODES = 100_000  # scalars + collections after expanding aliases

_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def check_depth(text: str, origin: str) -> None:
    """Raise :class:`EdgeslimError` if ``text`` nests deeper than :data:`MAX_DEPTH`."""
    depth = 0
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise EdgeslimError(
                    f"{origin} line {tok.start_mark.line + 1}: nested more than "
                    f"{MAX_DEPTH} levels deep; a recipe is a few levels of keys"
                )
        elif isinstance(tok, _CLOSE):
            depth -= 1


def check_size(root: yaml.Node | None, origin: str) -> None:
    """Raise if the tree under ``root``, aliases expanded, has more than :data:`MAX_NODES`."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:  # an alias is the same node object: count it once, reuse
            return sizes[id(node)]
        if isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(v) for v in node.value)
        else:
            n = 1
        sizes[id(node)] = n
        return n

    if root is not None and size(root) > MAX_NODES:
        raise EdgeslimError(
            f"{origin}: aliases expand to more than {MAX_NODES} values; "
            "a recipe is a few dozen keys (an alias bomb?)"
        )
