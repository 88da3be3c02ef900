"""Activation quantizers as data: *where* each one runs, replayed with module hooks.

A :class:`Site` names a tensor by what the model's own code does, never by a
traced graph, so a fake-quant model stays the user's ``nn.Module`` (same class,
same ``forward``, savable ``state_dict``):

* ``Site("layer1.0.relu")``: the output of that module's call;
* ``Site("", slot="in0")``: the model's first input;
* ``Site("attention.self", op="matmul", index=1, slot="in0")``: input 0 of the
  second ``matmul`` that module's ``forward`` runs itself (functional ops such as
  ``x + y`` or ``torch.matmul`` have no module of their own).

:class:`ActivationQuantizers` owns the :class:`FakeQuantize` modules (children
``"0"``, ``"1"``, ...; put in the model as ``act_fq``) and registers forward
pre/post hooks on the model's modules that count module calls and, when a site
names a functional op, enter a ``TorchFunctionMode`` for the duration of the
root's forward to catch it. No ``forward`` is replaced. (An ``nn.Sequential``
root runs every child in turn, so the container's own ``forward`` is the identity;
such a root has one more, trailing, child.) Hooks are callable
objects holding the container, so ``copy.deepcopy`` of the model carries working
hooks that point at the copy's quantizers.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from edgeslim.quant.config import QuantSpec
from edgeslim.quant.fake_quant import FakeQuantize


@dataclass(frozen=True)
class Site:
    """One place a quantizer runs (see the module docstring).

    Args:
        module: qualified module name, ``""`` for the root.
        call: which call of that module in one forward of the root (0 = first).
        op: ``None`` for the module call itself, else the name of a functional op
            its own code runs (``add``, ``matmul``, ``softmax``: :data:`FUNCTIONS`).
        index: which call of ``op`` (0 = first) in that module call's own code.
        slot: ``"out"``, or ``"in<i>"`` (positional argument ``i``), or
            ``"in<i>.<j>"`` (element ``j`` of a list argument, as in ``cat``).
        quantizer: index of the quantizer in :class:`ActivationQuantizers`.
    """

    module: str
    call: int = 0
    op: str | None = None
    index: int = 0
    slot: str = "out"
    quantizer: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Site:
        return cls(**d)

    def describe(self) -> str:
        where = self.module or "<model>"
        call = f"#{self.call}" if self.call else ""
        what = f"{self.op}#{self.index}." if self.op else ""
        return f"{where}{call}:{what}{self.slot} -> act_fq.{self.quantizer}"


def _table() -> dict[object, str]:
    T = torch.Tensor
    names = {
        "add": [torch.add, T.add, T.__add__, T.__radd__],
        "add_": [T.add_, T.__iadd__],
        "mul": [torch.mul, T.mul, T.__mul__, T.__rmul__],
        "mul_": [T.mul_, T.__imul__],
        "cat": [torch.cat],
        "concat": [torch.concat],
        "concatenate": [torch.concatenate],
        "matmul": [torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__],
        "bmm": [torch.bmm, T.bmm],
        "softmax": [torch.softmax, T.softmax, F.softmax],
        "layer_norm": [F.layer_norm],
        "gelu": [F.gelu],
        "sigmoid": [torch.sigmoid, T.sigmoid, F.sigmoid],
        "tanh": [torch.tanh, T.tanh, F.tanh],
        "relu": [torch.relu, T.relu, F.relu],
        "relu_": [torch.relu_, T.relu_],
        "relu6": [F.relu6],
        "hardtanh": [F.hardtanh],
        "conv1d": [F.conv1d],
        "conv2d": [F.conv2d],
        "conv3d": [F.conv3d],
        "linear": [F.linear],
        "avg_pool2d": [F.avg_pool2d],
        "adaptive_avg_pool2d": [F.adaptive_avg_pool2d],
        "max_pool2d": [F.max_pool2d],
        "mean": [torch.mean, T.mean],
        "embedding": [F.embedding],
    }
    return {f: name for name, fs in names.items() for f in fs}


# Python callables -> the ATen op name ``torch.export`` records for one call of them
FUNCTIONS: dict[object, str] = _table()
_INPLACE_KW = {"relu": "relu_", "hardtanh": "hardtanh_", "relu6": "relu6_"}


def function_name(func: object, kwargs: dict) -> str | None:
    """The ATen op name one call of ``func`` records (``F.relu(x, inplace=True)`` -> relu_)."""
    name = FUNCTIONS.get(func)
    if name in _INPLACE_KW and kwargs.get("inplace"):
        return _INPLACE_KW[name]
    return name


# calls whose results stand for Python ints while the TorchScript tracer runs
_SIZE_FUNCS = {torch.Tensor.size, torch.Tensor.numel, torch.numel, torch.Tensor.shape.__get__}


def _tensors(obj: object) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


class _Mode(TorchFunctionMode):
    """Counts (and quantizes at) the functional ops of each module call.

    Under the TorchScript tracer (the QDQ export: ``torch.export`` has no fake-tensor
    kernel for fake-quant ops), ``x.size()`` returns 0-dim integer tensors instead of
    Python ints, so shape arithmetic such as BERT embeddings' ``seq_length +
    cache_length`` becomes a Tensor ``add`` that eager runs and the ``torch.export``
    capture never see as one. Counting it would shift every later ``add`` of that
    module by one, and the exported file would quantize a different tensor than the
    simulation (BERT: the word+token-type sum instead of the layer norm's input).
    So, while tracing, tensors derived only from sizes are tracked and their
    arithmetic is neither counted nor quantized.
    """

    def __init__(self, ctl: ActivationQuantizers) -> None:
        super().__init__()
        self.ctl = ctl
        self.tracing = torch.jit.is_tracing()
        self._sizes: dict[int, Tensor] = {}  # id -> traced size scalar (kept alive)

    def _size_arithmetic(self, func, args, kwargs) -> tuple[bool, object]:
        """``(True, result)`` when ``func`` is a size query or arithmetic on sizes."""
        if func in _SIZE_FUNCS:
            out = func(*args, **kwargs)
        else:
            ins = _tensors(args) + _tensors(kwargs)
            if not ins or any(id(t) not in self._sizes for t in ins):
                return False, None
            out = func(*args, **kwargs)
        for t in _tensors(out):
            if t.dim() == 0 and not t.is_floating_point():
                self._sizes[id(t)] = t
        return True, out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        ctl = self.ctl
        if self.tracing:
            done, out = self._size_arithmetic(func, args, kwargs)
            if done:
                return out
        name = function_name(func, kwargs) if ctl._stack and not ctl._busy else None
        if name is None:
            return func(*args, **kwargs)
        scope = ctl._stack[-1]
        key = (scope[0], scope[1], name)
        k = ctl._fn_count[key]
        ctl._fn_count[key] = k + 1
        sites = ctl._fn_sites.get((*key, k), ())
        if not sites:
            return func(*args, **kwargs)
        args = list(args)
        for s in sites:
            if s.slot != "out":
                args = _apply_in(ctl, s, args)
        out = func(*args, **kwargs)
        for s in sites:
            if s.slot == "out":
                out = ctl._run(s, out)
        return out


def _slot(slot: str) -> tuple[int, int | None]:
    i, _, j = slot[2:].partition(".")
    return int(i), (int(j) if j else None)


def _apply_in(ctl: ActivationQuantizers, s: Site, args: list) -> list:
    i, j = _slot(s.slot)
    if i >= len(args):
        return args
    if j is None:
        args[i] = ctl._run(s, args[i])
    else:
        seq = list(args[i])
        seq[j] = ctl._run(s, seq[j])
        args[i] = seq
    return args


class _Enter:
    def __init__(self, ctl: ActivationQuantizers, path: str) -> None:
        self.ctl, self.path = ctl, path

    def __call__(self, module: nn.Module, args: tuple):
        return self.ctl._enter(self.path, args)


class _Exit:
    def __init__(self, ctl: ActivationQuantizers, path: str) -> None:
        self.ctl, self.path = ctl, path

    def __call__(self, module: nn.Module, args: tuple, output):
        return self.ctl._exit(self.path, output)


class ActivationQuantizers(nn.Module):
    """The activation :class:`FakeQuantize` modules of a model and the sites they run at.

    Example:
        >>> from edgeslim.quant.config import activation_spec
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> sites = [Site("", slot="in0"), Site("1", quantizer=1)]  # input, ReLU output
        >>> aq = ActivationQuantizers(activation_spec(), sites)
        >>> aq.attach_(m)
        >>> m(torch.randn(3, 4)).shape, len(aq)
        (torch.Size([3, 2]), 2)
    """

    def __init__(self, spec: QuantSpec, sites: list[Site]) -> None:
        super().__init__()
        self.sites = list(sites)
        n = 1 + max((s.quantizer for s in self.sites), default=-1)
        for i in range(n):
            self.add_module(str(i), FakeQuantize(spec))
        self._index()
        self._reset()
        self.recording = False  # count every functional call (see record_calls)
        self.outputs_seen: dict[tuple[str, int], bool] = {}
        self._warned = False

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: object) -> object:
        """Identity: an ``nn.Sequential`` root calls its children in turn, this one too."""
        return x

    def _index(self) -> None:
        self._mod_sites: dict[tuple[str, int], list[Site]] = {}
        self._fn_sites: dict[tuple, list[Site]] = {}
        for s in self.sites:
            if s.op is None:
                self._mod_sites.setdefault((s.module, s.call), []).append(s)
            else:
                self._fn_sites.setdefault((s.module, s.call, s.op, s.index), []).append(s)

    def _reset(self) -> None:
        self._stack: list[tuple[str, int]] = []
        self._calls: Counter = Counter()
        self._fn_count: Counter = Counter()
        self._fired = 0
        self._busy = False
        self._mode: _Mode | None = None

    def _run(self, s: Site, x: object) -> object:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            return x
        self._busy = True
        try:
            self._fired += 1
            return self.get_submodule(str(s.quantizer))(x)
        finally:
            self._busy = False

    # ----- hooks ------------------------------------------------------------------
    def attach_(self, model: nn.Module) -> None:
        """Put this container in ``model`` as ``act_fq`` and register its hooks."""
        if getattr(model, "act_fq", None) is not None and model.act_fq is not self:
            raise ValueError("model already has an 'act_fq' attribute")
        model.add_module("act_fq", self)
        skip = {id(m) for q in (self, *_fq_modules(model)) for m in q.modules()}
        for path, m in model.named_modules():
            if id(m) in skip:
                continue
            m.register_forward_pre_hook(_Enter(self, path))
            m.register_forward_hook(_Exit(self, path), always_call=True)

    def detach_(self, model: nn.Module) -> None:
        """Remove the hooks and the ``act_fq`` child from ``model``."""
        for m in model.modules():
            for hooks in (m._forward_pre_hooks, m._forward_hooks):
                for k in [k for k, h in hooks.items() if isinstance(h, _Enter | _Exit)]:
                    if hooks[k].ctl is self:
                        del hooks[k]
                        m._forward_hooks_always_called.pop(k, None)
        if getattr(model, "act_fq", None) is self:
            delattr(model, "act_fq")

    def _enter(self, path: str, args: tuple):
        if self._busy:
            return None
        if not self._stack or path == "":  # the root starts a forward
            self._drop_mode()  # left over if a forward was interrupted
            self._reset()
            if self._fn_sites or self.recording:
                self._mode = _Mode(self)
                self._mode.__enter__()
        call = self._calls[path]
        self._calls[path] = call + 1
        self._stack.append((path, call))
        sites = [s for s in self._mod_sites.get((path, call), ()) if s.slot != "out"]
        if not sites:
            return None
        args = list(args)
        for s in sites:
            args = _apply_in(self, s, args)
        return tuple(args)

    def _exit(self, path: str, output):
        if self._busy or not self._stack or self._stack[-1][0] != path:
            return None
        scope = self._stack.pop()
        if self.recording:
            self.outputs_seen[scope] = isinstance(output, Tensor)
        for s in self._mod_sites.get(scope, ()):
            if s.slot == "out":
                output = self._run(s, output)
        if not self._stack:  # the root's forward ends
            self._drop_mode()
            if output is not None:  # None: the forward raised (always-called hook)
                self._check()
        return output

    def _drop_mode(self) -> None:
        mode = getattr(self, "_mode", None)
        self._mode = None
        if mode is not None:
            mode.__exit__(None, None, None)

    def _check(self) -> None:
        if self.recording or self._fired >= len(self.sites) or self._warned:
            return
        self._warned = True
        warnings.warn(
            f"only {self._fired} of {len(self.sites)} activation quantizer sites ran in this "
            "forward: the model took a path its capture did not (sites: "
            f"{[s.describe() for s in self.sites][:5]} ...)",
            stacklevel=3,
        )


def _fq_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, FakeQuantize)]


def record_calls(model: nn.Module, example: Tensor) -> tuple[Counter, dict]:
    """Run ``model`` once and count, per module call, the functional ops its own code runs.

    Returns ``({(path, call, op name): calls}, {(path, call): output is a Tensor})``.
    The model is left as it was (no container, no hooks).
    """
    ctl = ActivationQuantizers(QuantSpec(), [])
    ctl.recording = True
    had = getattr(model, "act_fq", None)
    if had is not None:
        raise ValueError("record_calls needs a model without an 'act_fq' child")
    ctl.attach_(model)
    try:
        with torch.no_grad():
            model(example)
    finally:
        ctl.detach_(model)
    return ctl._fn_count.copy(), dict(ctl.outputs_seen)
