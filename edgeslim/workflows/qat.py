"""The QAT job: apply a method, train through its quantizers, save, export, report honestly.

Shared by ``edgeslim qat`` and the recipe stage ``qat``. The deployable is INT8
QDQ when every quantizer is on the 8-bit grid (:func:`edgeslim.quant.qat.check_exportable`);
otherwise it is the float graph of the simulation, and the report says that the
quantization is simulated only: ONNX Runtime on CPU has no kernel for
activations below 8 bits, nor for binary or ternary weights (their gain is size
in a packed format, not speed).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from edgeslim.bench.accuracy import evaluate_model, primary_value
from edgeslim.bench.machine import machine_info
from edgeslim.bench.report import plots
from edgeslim.core.atomic import write_bytes_atomic, write_text_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import Record, apply
from edgeslim.data import dataset_info, load_dataset, make_loader
from edgeslim.export.onnx import DEFAULT_OPSET, export_onnx
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.quant.qat import QATConfig, check_exportable, export_qat_qdq, freeze_
from edgeslim.quant.qat.learned_bits import LearnedBitsConfig
from edgeslim.quant.qat.pack import export_packed, int4_weights, weight_storage
from edgeslim.tasks import get_task
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer
from edgeslim.workflows.learned_bits import train_learned_bits
from edgeslim.workflows.quantize import calibration_loader

SIMULATED = (
    "simulated only: activations below 8 bits and binary/ternary weights have no faster "
    "kernel on ONNX Runtime CPU; the ONNX file is the float graph of the simulation"
)


def kd_loss_fn(teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> Callable:
    """Hinton KD from a frozen ``teacher`` (the float model), as a trainer ``loss_fn``."""
    from edgeslim.distill.losses.kd import kd_loss

    teacher.eval()

    def loss_fn(model, x, y):
        with torch.no_grad():
            t = teacher(x)
        out = model(x)
        return kd_loss(out, t, y, temperature, alpha), out

    return loss_fn


def train_qat(
    model: nn.Module,
    config: QATConfig,
    data: str,
    train: TrainConfig,
    *,
    overrides: dict | None = None,
    distill: bool = False,
    temperature: float = 4.0,
    alpha: float = 0.9,
    ckpt_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[nn.Module, Record, list[dict]]:
    """Apply ``config`` to a copy of ``model`` (calibrated on ``data``) and train it.

    Returns the QAT model (eval mode), its method record and the training history.
    BN statistics and observers freeze at the config's epochs.
    """
    task = dataset_info(data).task
    teacher = copy.deepcopy(model) if distill else None
    kd = kd_loss_fn(teacher, temperature, alpha) if teacher is not None else None
    if isinstance(config, LearnedBitsConfig):
        qmodel, record, history, _ = train_learned_bits(
            model, config, data, train, calib=calibration_loader(data), overrides=overrides,
            loss_fn=kd, ckpt_dir=ckpt_dir, progress=progress,
        )  # fmt: skip
        return qmodel, record, history
    qmodel, record = apply(model, config, overrides=overrides, calib=calibration_loader(data))
    freeze_(qmodel, config, 0)
    history = Trainer(
        qmodel,
        train,
        loss_fn=kd,
        ckpt_dir=ckpt_dir,
        progress=progress,
        task=task,
        on_epoch=lambda h: freeze_(qmodel, config, len(h)),
    ).fit(load_dataset(data, "train", augment=True), load_dataset(data, "val"))
    return qmodel.eval(), record, history


REDUCED = (
    "; 8-bit weights are coded in 7 bits of their int8 storage (this CPU has no VNNI: its "
    "u8 x s8 kernels saturate full-range 8-bit weights)"
)
INT4_IN_INT8 = (
    "; {n} layers' weights stored as INT4 (--pack-int4): a smaller file, but ONNX Runtime has "
    "no int4 conv kernel, so those layers run in float, not in its integer kernels"
)
PACKED = (
    "; weights stored as int2/int4/int8 codes (DequantizeLinear), so the file is smaller, but "
    "ONNX Runtime expands them to float at load and runs those layers at float speed"
)


def deployment(model: nn.Module) -> tuple[bool, str]:
    """``(INT8 exportable, what the deployable is)`` for a QAT model."""
    try:
        check_exportable(model)
    except EdgeslimError as e:
        return False, f"{SIMULATED} ({e})"
    return True, "INT8 QDQ (ONNX Runtime integer kernels)"


def export_deployable_qat(
    model: nn.Module, spec, path: Path, opset: int = DEFAULT_OPSET, pack_int4: bool = False
) -> Path:
    """INT8 QDQ when on the 8-bit grid, else the float graph of the simulation, weights packed.

    The float graph stores each quantized weight as int2, int4 or int8 codes
    (:func:`edgeslim.quant.qat.pack.export_packed`); a model whose weights cannot be
    packed falls back to float32 weights, with a warning. ``pack_int4`` also stores
    the QDQ file's weights that fit in 4 bits as INT4, which halves them on disk but
    takes those layers off ONNX Runtime's integer kernels.
    """
    path = Path(path)
    if deployment(model)[0]:
        out = export_qat_qdq(model, spec, path, opset=opset).path
        if pack_int4:
            int4_weights(out, out)
        return out
    try:
        return export_packed(model, spec, path).path
    except EdgeslimError as e:
        warnings.warn(f"weights kept in float32 in {path.name}: {e}", stacklevel=2)
        return export_onnx(model, spec, path, opset=opset).path


def run_qat(
    lm: LoadedModel,
    config: QATConfig,
    out_dir: str | Path,
    *,
    data: str,
    train: TrainConfig,
    distill: bool = False,
    progress: bool = True,
    pack_int4: bool = False,
) -> dict:
    """QAT ``lm`` on ``data``; write ``out_dir/model/`` (reloadable), ``model.onnx``, a report.

    Example:
        >>> # run_qat(load_model("resnet20"), LSQConfig(w_bits=4, a_bits=4), "out",
        >>> #         data="signs", train=TrainConfig(epochs=2, lr=0.01))
    """
    out_dir = Path(out_dir)
    spec = lm.require_input()
    qmodel, record, history = train_qat(
        lm.model,
        config,
        data,
        train,
        distill=distill,
        ckpt_dir=out_dir / "ckpt",
        progress=progress,
    )
    saved = LoadedModel(
        qmodel, lm.source, lm.input, lm.name, lm.meta, [*lm.methods, record.to_dict()]
    )
    save_model(saved, out_dir / "model")
    int8, note = deployment(qmodel)
    if config.reduce_range and config.w_bits == 7:
        note += REDUCED
    onnx = export_deployable_qat(qmodel, spec, out_dir / "model.onnx", pack_int4=pack_int4)
    storage = weight_storage(onnx)
    if not int8 and sum(storage.get(k, 0) for k in ("int2", "int4", "int8")):
        note += PACKED
    elif int8 and storage.get("int4", 0):
        note += INT4_IN_INT8.format(n=storage["int4"])
    task = dataset_info(data).task
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False)
    primary = get_task(task).primary
    report = {
        "model": lm.name,
        "method": record.method,
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "data": data,
        "quantized_layers": list(record.layers),
        "history": history,
        f"fp32_{primary}": primary_value(evaluate_model(lm.model, test, task)),
        f"qat_simulated_{primary}": primary_value(evaluate_model(qmodel, test, task)),
        "onnx": str(onnx),
        "onnx_kind": "int8_qdq" if int8 else "float_simulation",
        "onnx_size_bytes": onnx.stat().st_size,
        "onnx_weight_storage": storage,
        "deployment": note,
        "machine": machine_info(None),
    }
    bits = record.details.get("learned_bits")
    rows = bits or []
    if bits:
        report["learned_bits"] = bits
        report["avg_w_bits"] = record.details.get("avg_w_bits")
        png = plots.bits_per_layer(bits)
        if png is not None:
            write_bytes_atomic(out_dir / "learned_bits.png", png)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    bits_name = (
        f"learned bits (avg {report['avg_w_bits']:.2f} weight bits)"
        if bits
        else f"W{config.w_bits}A{config.a_bits or 'float'}"
    )
    report["text"] = (
        f"{record.method} {bits_name}: "
        f"fp32 {primary} {report[f'fp32_{primary}']:.4f}, "
        f"QAT (simulated) {report[f'qat_simulated_{primary}']:.4f}\n"
        + "".join(f"  {r['name']}: W{r['w_bits']:g} A{r['a_bits'] or 'float'}\n" for r in rows)
        + f"deployable: {note}"
    )
    return report
