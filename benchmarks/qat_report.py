"""``benchmarks/results/qat[_MODEL].md`` from its json: tables over seeds and issue 13's targets."""

from __future__ import annotations

import statistics
from collections import defaultdict

from edgeslim.bench.machine import machine_line

EDGESLIM_QAT = ("ste", "lsq", "lsq_plus", "pact", "dorefa", "dsq")
PEERS = ("ptq", "brevitas")
NAMES = {"resnet20": "ResNet-20", "mobilenet_v2_cifar": "MobileNetV2 (CIFAR layout)"}


def ours(by) -> list[str]:
    """edgeslim's QAT methods and variants (``lsq+pc``) present, in table order."""
    names = {m for m, *_ in by if m not in PEERS}
    rank = {m: i for i, m in enumerate(EDGESLIM_QAT)}
    return sorted(names, key=lambda m: (rank.get(base(m), 99), m))


def base(label: str) -> str:
    """``lsq+pc@3ep`` -> ``lsq``."""
    return label.split("@")[0].split("+")[0]


def groups(runs: dict) -> dict[tuple[str, int, int], list[dict]]:
    """Runs by (method, weight bits, activation bits); a run without ``a_bits`` is W=A."""
    by: dict[tuple[str, int, int], list[dict]] = defaultdict(list)
    for r in runs.values():
        by[(r.get("label", r["method"]), r["bits"], r.get("a_bits", r["bits"]))].append(r)
    return by


def stats(rs: list[dict]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation of top-1 (a failed run counts as NaN), seeds."""
    vals = [r["top1"] if r["top1"] is not None else float("nan") for r in rs]
    mean = statistics.fmean(vals) if vals else None
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return mean, std, len(vals)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _table(by, fp32: float) -> list[str]:
    lines = [
        "| method | bits | seeds | top-1 mean | std (pts) | vs FP32 (pts) | s/run | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    order = {m: i for i, m in enumerate((*ours(by), *PEERS))}
    for (method, bits, a_bits), rs in sorted(
        by.items(), key=lambda kv: (-kv[0][1], -kv[0][2], order.get(kv[0][0], 99))
    ):
        mean, std, n = stats(rs)
        secs = statistics.fmean(r["seconds"] for r in rs)
        errors = "; ".join(sorted({r["error"] for r in rs if r.get("error")}))
        lines.append(
            f"| {method} | W{bits}A{a_bits} | {n} | {pct(mean)} | "
            f"{'' if std is None else f'{100 * std:.2f}'} | {100 * (mean - fp32):+.2f} | "
            f"{secs:.0f} | {errors} |"
        )
    return lines


def _matrix(by) -> list[str]:
    wa = sorted({(w, a) for _, w, a in by if w in (4, 3, 2)}, reverse=True)
    if not wa:
        return []
    lines = [
        "| method | " + " | ".join(f"W{w}A{a}" for w, a in wa) + " |",
        "|---|" + "---:|" * len(wa),
    ]
    for m in (*ours(by), "brevitas"):
        if any((m, *b) in by for b in wa):
            cells = []
            for b in wa:
                mean, _, n = stats(by[(m, *b)]) if (m, *b) in by else (None, None, 0)
                cells.append(f"{pct(mean)} ({n})" if n else "")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def targets(by, fp32: float) -> list[str]:
    """Issue 13's checks that these runs can answer, each met / missed / not run."""
    out = []
    # (bits, points): W4A4 within 1.0 (ResNet-20), W4A8 within 1.5 (MobileNetV2, depthwise)
    for (w, a), pts in (((4, 4), 1.0), ((4, 8), 1.5)):
        for m in [m for m in ours(by) if base(m) == "lsq" and (m, w, a) in by]:
            mean, _, n = stats(by[(m, w, a)])
            ok = mean >= fp32 - pts / 100
            out.append(
                f"- W{w}A{a} {m} within {pts} point{'s' if pts != 1 else ''} of FP32 "
                f"(mean of {n} seed(s)): {pct(mean)} vs {pct(fp32)}, "
                f"{100 * (mean - fp32):+.2f} pts: "
                f"**{'met' if ok else 'missed'}**{'' if n >= 3 else ' (fewer than 3 seeds)'}."
            )
    if ("lsq", 2, 2) in by:
        mean, _, n = stats(by[("lsq", 2, 2)])
        out.append(
            f"- W2A2 LSQ (reported, {n} seed(s)): {pct(mean)}, {100 * (mean - fp32):+.2f} pts."
        )
    if ("ptq", 8, 8) in by:
        ptq = stats(by[("ptq", 8, 8)])[0]
        for m in ours(by):
            if (m, 8, 8) in by:
                qat = stats(by[(m, 8, 8)])[0]
                out.append(
                    f"- W8A8 QAT ({m}) at least matches PTQ: {pct(qat)} vs {pct(ptq)}: "
                    f"**{'met' if qat >= ptq else 'missed'}**."
                )
    for bits in sorted({b for m, b, _ in by if m == "brevitas"}, reverse=True):
        peer = stats(by[("brevitas", bits, bits)])[0]
        mine = [(stats(by[(m, bits, bits)])[0], m) for m in ours(by) if (m, bits, bits) in by]
        if mine:
            best, name = max(mine, key=lambda t: -1 if t[0] != t[0] else t[0])
            out.append(
                f"- W{bits}A{bits}: edgeslim's best ({name}, {pct(best)}) at least as "
                f"accurate as Brevitas ({pct(peer)}): **{'met' if best >= peer else 'missed'}**."
            )
    return out


def markdown(results: dict) -> str:
    runs = results.get("runs", {})
    fp32 = results["fp32"]["top1"]
    by = groups(runs)
    protocols = sorted({r["protocol"] for r in runs.values()})
    loads = [v for r in runs.values() for v in r.get("load_1min", [])]
    model = results.get("model", "resnet20")
    name = NAMES.get(model, model)
    first, last = results.get("keep_8bit", ("conv1", "fc"))
    wa = "W=A=bits" if all(a == w for _, w, a in by) else "the row's W (weight) / A bits"
    lines = [
        f"# QAT at low bits on {name} / signs (issue 13)",
        "",
        f"{machine_line(results['machine'])}",
        "",
        f"FP32 {name}: {results['fp32']['pretrain_epochs']} epochs on "
        f"{results['fp32']['train_samples']} training images (SGD lr 0.1 cosine, seed 0"
        f"{', bf16 autocast, channels-last' if results['fp32'].get('pretrain_bf16') else ''}), "
        f"top-1 **{pct(fp32)}** on {results['fp32']['test_samples']} test images. "
        f"Every run starts from these weights; `{first}` and `{last}` stay at W8A8, every "
        f"other layer at {wa}. Activations below 8 bits are simulated only (ONNX Runtime has "
        "no CPU kernel for them): no speedup is claimed.",
        "",
        "Protocol: " + " / ".join(protocols) + ".",
    ]
    if loads:
        lines.append(
            f"Machine load (1-min average at the start and end of each run): "
            f"{min(loads):.2f} to {max(loads):.2f} on 2 cores (other jobs shared the box)."
        )
    if results.get("brevitas"):
        lines.append(f"Peer: Brevitas {results['brevitas']}.")
    lines += ["", "## All runs", "", *_table(by, fp32)]
    matrix = _matrix(by)
    if matrix:
        lines += ["", "## Low-bit table (top-1 mean, seeds in brackets)", "", *matrix]
    lines += ["", "## Targets", "", *targets(by, fp32)]
    if results.get("notes"):
        lines += ["", "## Notes", "", *(f"- {n}" for n in results["notes"])]
    lines += ["", "## Commands", "", "```", *results.get("commands", []), "```", ""]
    return "\n".join(lines)
