"""``compress``: run a recipe end to end and write the deployable model and reports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm import tqdm

from edgeslim.bench.machine import machine_info, machine_line
from edgeslim.bench.report import summarize, write_reports
from edgeslim.bench.report.rows import target_line
from edgeslim.bench.stages import format_stages
from edgeslim.core.atomic import atomic_path, sweep_temporaries, write_bytes_atomic
from edgeslim.core.errors import EdgeslimError
from edgeslim.core.lock import output_lock
from edgeslim.models.saved import save_model
from edgeslim.recipe.archive import final_archive
from edgeslim.recipe.loader import LoadedRecipe
from edgeslim.recipe.measure import check_targets, layer_rows, measure_history
from edgeslim.recipe.runner import run_stages
from edgeslim.tasks.detection.detect import NMSConfig


def _with_latency(rows: list[dict], last, recipe) -> list[dict]:
    """The layer table with each layer's time in the last stage's ONNX file on ORT (its
    profiler, at the targets' batch) and the kernel it ran with the ops ORT fused into it,
    so the report shows where the time goes and what the runtime fused."""
    from edgeslim.bench.profile import layer_kernels, layer_times, profile_onnx

    if last.onnx is None:
        return rows
    batch, threads = recipe.targets.batch, recipe.measure.threads
    try:
        prof = profile_onnx(last.onnx, last.lm.require_input(), batch=batch, threads=threads)
    except EdgeslimError as e:  # a report without per-layer times, never a failed run
        tqdm.write(f"per-layer profile skipped: {e}")
        return rows
    ms, kernels = layer_times(prof, last.lm.model), layer_kernels(prof, last.lm.model)
    return [{**r, "ms": ms.get(r["name"]), "kernel": kernels.get(r["name"])} for r in rows]


def compress(loaded: LoadedRecipe, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Run ``loaded`` into ``out_dir``; return the report (also written as json/md/html).

    ``out_dir`` gets ``model.onnx`` (the deployable last stage), ``model/`` (its
    float PyTorch model), ``report.{json,md,html}`` and ``stages/`` (checkpoints;
    rerunning resumes from them). A second run on the same ``out_dir`` while this one
    runs is refused (:func:`edgeslim.core.lock.output_lock`).

    Example:
        >>> # from edgeslim.recipe import load_recipe
        >>> # report = compress(load_recipe("recipes/resnet20_signs.yaml"), "out")
    """
    out_dir = Path(out_dir)
    model_path = Path(loaded.recipe.model).expanduser()
    if model_path.exists() and (
        out_dir.resolve() == model_path.resolve()
        or model_path.resolve() in out_dir.resolve().parents
    ):
        raise EdgeslimError(f"output {out_dir} would overwrite the input model; choose another")
    with output_lock(out_dir):  # a second run on the same folder is refused
        # half-written files of a killed run (beside final paths, never at them); only
        # where compress writes, in case OUT is a folder with other content
        sweep_temporaries(out_dir, recursive=False)
        sweep_temporaries(out_dir / "model")
        sweep_temporaries(out_dir / "stages")
        return _compress(loaded, out_dir, progress)


def stage_notes(history) -> list[dict]:
    """Each stage's own one-line notes (what it did, and what it does *not* buy: packed
    INT4 weights that run as float, simulated-only activations), in stage order.

    Example:
        >>> from types import SimpleNamespace as S
        >>> stage_notes([("input", S(notes={})), ("quantize", S(notes={"quantize": "W8A8"}))])
        [{'stage': 'quantize', 'key': 'quantize', 'text': 'W8A8'}]
    """
    out, seen = [], {}
    for name, st in history:
        for k, v in st.notes.items():
            if isinstance(v, str) and not k.endswith("_file") and seen.get(k) != v:
                out.append({"stage": name, "key": k, "text": v})
        seen = {k: v for k, v in st.notes.items() if isinstance(v, str)}
    return out


def _detections_png(history, chosen, loaded: LoadedRecipe) -> bytes | None:
    """A detector's detections before (the input model) and after (the deployed file)."""
    from edgeslim.recipe.measure import recipe_task

    r = loaded.recipe
    if not r.data or recipe_task(r).name != "detection" or chosen.onnx is None:
        return None
    from edgeslim.data import dataset_info, load_dataset
    from edgeslim.workflows.predict import OnnxDetector, before_after_png, torch_detector

    cfg = NMSConfig()
    before = torch_detector(history[0][1].lm.model, cfg)
    after = OnnxDetector(Path(chosen.onnx), cfg)
    names = dataset_info(r.data).class_names
    return before_after_png(before, after, load_dataset(r.data, "test"), 3, names, cfg)


def _compress(loaded: LoadedRecipe, out_dir: Path, progress: bool) -> dict:
    history = run_stages(loaded, out_dir, progress=progress)
    tqdm.write("measuring every stage (accuracy, size, interleaved latency)")
    stages, deploy = measure_history(history, loaded.recipe, progress)
    last = history[-1][1]
    report = {
        "recipe": loaded.origin,
        "model": loaded.recipe.model,
        "data": loaded.recipe.data,
        "threads": loaded.recipe.measure.threads or os.cpu_count(),
        "machine": machine_info(loaded.recipe.measure.threads or os.cpu_count()),
        "stages": stages,
        "deploy": deploy,
        "targets": check_targets(stages, loaded.recipe),
        "layers": _with_latency(layer_rows(history), last, loaded.recipe),
        "summary": summarize(stages),
        "notes": stage_notes(history),
        "search": next(
            (st.notes.get("search") for _, st in history if st.notes.get("search")), None
        ),
        "alignment": next(  # kept-width multiple of the prune (or search) stage, and why
            (
                st.notes.get("alignment") or (st.notes.get("search") or {}).get("alignment")
                for _, st in history
                if st.notes.get("alignment") or (st.notes.get("search") or {}).get("alignment")
            ),
            None,
        ),
    }
    # the file the chosen runtime runs, and its PyTorch model (a BF16 pick is the float one)
    chosen = next((st for _, st in history if deploy and str(st.onnx) == deploy.get("onnx")), last)
    with atomic_path(out_dir / "model.onnx") as tmp:
        shutil.copyfile(chosen.onnx, tmp)
    # the last export stage's post-processed twin, if it wrote one (export: {postprocess: nms})
    twins = [
        Path(st.onnx).parent / st.notes["postprocess_file"]
        for _, st in history
        if st.notes.get("postprocess_file") and st.onnx is not None
    ]
    nms = next((p for p in reversed(twins) if p.is_file()), None)
    if nms is not None:
        with atomic_path(out_dir / "model_nms.onnx") as tmp:
            shutil.copyfile(nms, tmp)
    save_model(chosen.lm, out_dir / "model")
    archive = final_archive(history, out_dir)  # a sparse model's size on disk, if any
    if archive is not None:
        report["archive"] = archive
    png = _detections_png(history, chosen, loaded)
    if png is not None:  # detectors: boxes before and after, on a few test images
        write_bytes_atomic(out_dir / "detections.png", png)
        report["detections_png"] = str(out_dir / "detections.png")
    write_reports(out_dir, report)
    tqdm.write(format_stages(stages))
    tqdm.write(machine_line(report["machine"]))
    if deploy is not None:
        tqdm.write(f"deploy: {deploy['runtime']} {deploy['precision']} ({deploy['why']})")
    for k, t in report["targets"].items():
        tqdm.write(f"target {target_line(k, t)}")
    return report
