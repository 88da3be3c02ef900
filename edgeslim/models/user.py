"""Build a model from the user's own code: ``path/to/file.py:factory``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from torch import nn

from edgeslim.core.errors import EdgeslimError


def is_file_spec(spec: str) -> bool:
    path, sep, factory = spec.rpartition(":")
    return bool(sep) and path.endswith(".py") and factory.isidentifier()


def build_from_file(spec: str) -> nn.Module:
    """Import ``file.py`` and call ``factory()``; it must return an ``nn.Module``.

    Example:
        >>> # model = build_from_file("my_models.py:make_net")
    """
    path_s, _, factory = spec.rpartition(":")
    path = Path(path_s).expanduser().resolve()
    if not path.is_file():
        raise EdgeslimError(f"model file not found: {path_s}")
    mod_name = f"edgeslim_user_{abs(hash(str(path)))}"
    module = sys.modules.get(mod_name)
    if module is None:
        spec_obj = importlib.util.spec_from_file_location(mod_name, path)
        if spec_obj is None or spec_obj.loader is None:
            raise EdgeslimError(f"{path_s} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec_obj)
        try:
            spec_obj.loader.exec_module(module)
        except Exception as e:  # the user's code failed: say where, keep it on one line
            raise EdgeslimError(f"importing {path_s} failed: {type(e).__name__}: {e}") from e
        sys.modules[mod_name] = module
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        raise EdgeslimError(f"{path_s} has no callable {factory!r}")
    try:
        model = fn()
    except Exception as e:  # the user's factory failed: say which, keep it on one line
        raise EdgeslimError(f"{spec}: {factory}() raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise EdgeslimError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model
