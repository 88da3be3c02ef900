"""The job behind ``edgeslim decompose``: factorize, measure before/after, save, report.

The input and the factorized model are exported to ONNX and timed on ONNX Runtime
in one interleaved run (:func:`edgeslim.workflows.measure.measure_stages`), so the
speedup in ``report.json`` is measured, not estimated from MACs; with data, both
are evaluated too. A MAC target is met by bisecting the per-layer ratio rule
(:mod:`edgeslim.lowrank.target`). No fine-tuning happens here: a distillation
stage follows in a recipe.

With ``measured`` (``--measured``), each factorized layer is kept only where it is
measured faster than the dense layer on ONNX Runtime at its real input shape
(:mod:`edgeslim.workflows.lowrank_measured`).

With ``search`` (``--search``), each layer's rank is chosen among a few candidates
by the channel search's MILP from measured damage and measured ONNX Runtime
latency, under a MAC or latency budget (:mod:`edgeslim.workflows.rank_search`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from edgeslim.bench.stages import format_stages
from edgeslim.core.atomic import write_text_atomic
from edgeslim.core.configs import to_json
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import FilterFn, MethodConfig, apply
from edgeslim.lowrank.ranks import RankRule
from edgeslim.lowrank.sharing import LayerSharingConfig
from edgeslim.lowrank.target import ratio_for_macs
from edgeslim.models.saved import save_model
from edgeslim.models.spec import LoadedModel
from edgeslim.workflows.lowrank_measured import MeasuredRule, keep_faster
from edgeslim.workflows.measure import Stage, measure_stages
from edgeslim.workflows.rank_search import Damage, RankSearch, output_damage, search_ranks


def decompose(
    lm: LoadedModel,
    config: MethodConfig,
    *,
    target_macs: float | None = None,
    filter_fn: FilterFn | None = None,
    measured: MeasuredRule | None = None,
    share: LayerSharingConfig | None = None,
    rank_search: RankSearch | None = None,
    damage: Damage | None = None,
) -> tuple[LoadedModel, dict]:
    """A factorized copy of ``lm`` (its record appended to ``methods``) and what was done.

    With ``share``, ALBERT's cross-layer sharing follows the factorization
    (``info["sharing"]``: the stack, its groups, the model's parameters before and after).

    With ``target_macs`` (MACs, or a fraction <= 1 of the input's), ``config``'s rule
    is replaced by the per-layer ratio that reaches it. With ``measured``, a layer
    stays factorized only where ONNX Runtime times it faster than the dense layer
    (the MAC target is then an upper bound on what is kept, not met exactly);
    ``info["measured"]`` holds each layer's dense and factorized ms.

    With ``rank_search`` (instead of ``target_macs`` and ``measured``), the MILP picks
    each layer's rank from its measured ``damage`` (default: the relative error of
    the model's output on 4 random example inputs) and ONNX Runtime timings;
    ``info["search"]`` holds every candidate and the choice.

    Example:
        >>> # new, info = decompose(load_model("resnet20"), Tucker2Config(), target_macs=0.5)
    """
    search = None
    if rank_search is not None and (target_macs is not None or measured is not None):
        raise EdgeslimError("the rank search sets its own budget and timing: drop target_macs")
    if rank_search is not None:
        spec = lm.require_input()
        if damage is None:
            damage = output_damage([spec.example(batch=1, seed=i) for i in range(4)])
        applied = search_ranks(
            lm.model, config, spec.example(batch=1), damage, rank_search, filter_fn=filter_fn
        )
        search = applied.record.details.pop("search")
    elif target_macs is not None:
        example = lm.require_input().example(batch=1)
        found = ratio_for_macs(lm.model, example, config, target_macs, filter_fn=filter_fn)
        config = replace(config, rule=RankRule(ratio=found.ratio))
        search = {
            "target_macs": target_macs,
            "ratio": found.ratio,
            "macs": found.macs,
            "input_macs": found.input_macs,
            "steps": [list(s) for s in found.steps],
        }
    if rank_search is None:
        applied = apply(lm.model, config, filter_fn=filter_fn)
    if measured is not None:
        example = lm.require_input().example(batch=1)
        applied = keep_faster(lm.model, applied, example, measured)
    model, rec = applied
    records = [rec.to_dict()]
    sharing = None
    if share is not None:
        model, shared = apply(model, share)
        records.append(shared.to_dict())
        sharing = {"config": to_json(share), **shared.details}
    new = LoadedModel(
        model.eval(),
        lm.source,
        lm.input,
        f"{lm.name}-{rec.method.removeprefix('lowrank_')}" + ("-shared" if share else ""),
        lm.meta,
        [*lm.methods, *records],
    )
    info = {"method": rec.method, "config": to_json(config), "search": search, **rec.details}
    if sharing is not None:
        info["sharing"] = sharing
    return new, info


def run_decompose(
    lm: LoadedModel,
    config: MethodConfig,
    out_dir: str | Path,
    *,
    target_macs: float | None = None,
    filter_fn: FilterFn | None = None,
    measured: MeasuredRule | None = None,
    share: LayerSharingConfig | None = None,
    rank_search: RankSearch | None = None,
    data: str | None = None,
    batches: tuple[int, ...] = (1, 8),
    runs: int = 30,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Factorize ``lm``; write ``out_dir`` (saved model, ``model.onnx``, ``report.json``).

    Example:
        >>> # run_decompose(load_model("resnet20"), SpatialSVDConfig(), "out", target_macs=0.5)
    """
    from edgeslim.data import dataset_info, load_dataset, make_loader

    spec = lm.require_input().with_batch(1)
    out_dir = Path(out_dir)
    damage = None
    if rank_search is not None and data:
        damage = data_damage(data)
    new, info = decompose(
        lm,
        config,
        target_macs=target_macs,
        filter_fn=filter_fn,
        measured=measured,
        share=share,
        rank_search=rank_search,
        damage=damage,
    )
    test = make_loader(load_dataset(data, "test"), 256, shuffle=False) if data else None
    task = dataset_info(data).task if data else "classification"
    records, rep = measure_stages(
        [
            Stage("input", lm.model, spec, evaluate="model"),
            Stage(
                "decomposed", new.model, spec, evaluate="model", export_to=out_dir / "model.onnx"
            ),
        ],
        batches=batches,
        runs=runs,
        threads=threads,
        loader=test,
        task=task,
        progress=progress,
    )
    save_model(new, out_dir)
    report = {
        "model": lm.name,
        "input_shape": list(spec.shape),
        **info,
        "stages": records,
        "speedup": rep.ratio,
    }
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    n, skipped = len(info["layers"]), len(info["skipped"])
    report["text"] = (
        f"{info['method']}: {n} layers factorized, {skipped} left alone "
        f"({info['params_before']} -> {info['params_after']} parameters in those layers)\n"
        + format_sharing(info.get("sharing"))
        + size_only(info["method"], info.get("sharing"))
        + format_measured(info.get("measured"))
        + format_search(info["search"] if rank_search is not None else None)
        + format_stages(records)
    )
    return report


def data_damage(data: str, batches: int = 4, batch_size: int = 128) -> Damage:
    """The rank search's damage on ``data``: the validation loss increase on a few batches."""
    from edgeslim.data import dataset_info, load_dataset, make_loader
    from edgeslim.workflows.rank_search import first_batches, loss_damage

    val = make_loader(load_dataset(data, "val"), batch_size, shuffle=False)
    return loss_damage(first_batches(val, batches), dataset_info(data).task)


def format_search(search: dict | None) -> str:
    """One line per layer of the rank search: the choice and how many forms were faster."""
    if not search:
        return ""
    p = search["predicted"]
    lines = [
        f"rank search (MILP) within {search['budgets']}: predicted MACs {p.get('macs', 0):.4g}, "
        f"timed layers {p.get('latency_ms', 0):.3f} ms of {search['base']['latency_ms']:.3f} "
        f"dense, damage {search['predicted_damage']:.4g}"
    ]
    fill = search.get("fill")
    if fill:
        lines.append(
            f"fill: at least {fill['asked']:.0%} of the budget "
            + ("(met)" if fill["met"] else "(NOT met by any policy of the measured candidates)")
        )
    for name, t in search["layers"].items():
        fast = sum(o["faster"] for o in t["options"][1:])
        lines.append(
            f"  {name}: {t['chosen']} ({fast} of {len(t['options']) - 1} candidates "
            "measured faster)"
        )
    return "\n".join(lines) + "\n"


def format_measured(measured: dict | None) -> str:
    """One line per timed layer: dense vs factorized ms and whether it was kept."""
    if not measured:
        return ""
    lines = [
        f"measured on {measured['runtime']}, {measured['cpu']}, {measured['threads']} threads:"
    ]
    for name, t in measured["layers"].items():
        verdict = "factorized" if t["kept"] else "left dense"
        lines.append(
            f"  {name}: dense {t['dense_ms']:.4f} ms, factorized {t['factorized_ms']:.4f} ms "
            f"({t['speedup']:.2f}x) -> {verdict}"
        )
    return "\n".join(lines) + "\n"


def format_sharing(sharing: dict | None) -> str:
    if not sharing:
        return ""
    groups = sharing["groups"]
    return (
        f"sharing: {len(groups)} distinct blocks for the {sum(map(len, groups))} layers of "
        f"{sharing['stack']} ({sharing['params_before']} -> "
        f"{sharing['params_after']} model parameters)\n"
    )


def size_only(method: str, sharing: dict | None) -> str:
    """The plain statement that embedding factorization and sharing buy size, not speed."""
    what = [w for w, on in (("a factorized embedding", method == "lowrank_embedding"),
                            ("cross-layer sharing", sharing is not None)) if on]  # fmt: skip
    if not what:
        return ""
    return (
        f"{' and '.join(what)} buy parameters and size on disk only: every layer still runs, "
        "so expect no speedup (the latency below is measured)\n"
    )
