"""Calibrate the difficulty of ``textlogic`` / ``textpair``: a 6-layer BERT teacher and
2-layer students trained alone (random init, cross-entropy only), with test top-1 per
kind of sentence, so that the task sits where distillation can show (issue 16: the
teacher ~85-93%, the student alone several points below).

Usage (the numbers in benchmarks/results/textlogic.md come from exactly this)::

    nice -n 10 python benchmarks/text_calibrate.py --data textlogic --teacher-epochs 8 \
        --student-epochs 8 --seeds 0,1,2

``--only teacher`` / ``--only student`` run one side (two processes can share the
work); each run appends its record to ``benchmarks/results/textlogic.runs.jsonl``,
and ``--report`` writes the markdown and json from those records.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.text_models import (  # noqa: E402
    STUDENT_CONFIG,
    new_bert,
    teacher_path,
    train_config,
    trained_teacher,
)
from edgeslim.data import dataset_info, load_dataset  # noqa: E402
from edgeslim.data.textlogic import split_samples  # noqa: E402
from edgeslim.train.trainer import Trainer  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "textlogic.runs.jsonl"
PROBES = RESULTS / "textlogic.probes.jsonl"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


@torch.no_grad()
def per_kind(model: torch.nn.Module, data: str, split: str) -> dict[str, float]:
    """Top-1 on ``split`` overall and per kind of sentence (order, count, ...)."""
    was = model.training
    model.eval()
    ds = load_dataset(data, split)
    pred = torch.cat([model(ds.tokens[i : i + 256]).argmax(-1) for i in range(0, len(ds), 256)])
    model.train(was)
    hits = defaultdict(list)
    for s, p in zip(split_samples(data.split(":")[0])[split], pred.tolist(), strict=True):
        hits[s.kind].append(p == s.label)
        hits["all"].append(p == s.label)
    return {k: round(sum(v) / len(v), 4) for k, v in hits.items()}


def run(data: str, role: str, seed: int, epochs: int, lr: float, amp: bool = False) -> dict:
    info = dataset_info(data)
    curve = []

    def log(model: torch.nn.Module, history: list[dict]) -> None:
        curve.append(per_kind(model, data, "val"))
        print(f"{role} s{seed} epoch {len(history)}: val {curve[-1]}", flush=True)

    t0 = time.time()
    if role == "teacher":  # trained and cached where the other text benchmarks find it
        lm = trained_teacher(data, seed, epochs, progress=False, on_epoch=log, lr=lr, amp=amp)
        print(f"teacher cached at {teacher_path(data, seed, epochs, lr, amp)}", flush=True)
    else:
        torch.manual_seed(seed)
        lm = new_bert(STUDENT_CONFIG(info.vocab_size, info.num_classes), data, role)
        cfg = train_config(epochs, seed, lr, amp)
        Trainer(
            lm.model, cfg, progress=False, task="sequence_classification",
            on_epoch=lambda h: log(lm.model, h),
        ).fit(load_dataset(data, "train"))  # fmt: skip
    seconds = lm.meta.get("train_seconds", time.time() - t0)
    rec = {
        "data": data,
        "role": role,
        "layers": lm.source["config"]["num_hidden_layers"],
        "seed": seed,
        "epochs": epochs,
        "lr": lr,
        "amp": amp,
        "version": info.version,
        "train_size": len(load_dataset(data, "train")),
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "test": per_kind(lm.model, data, "test"),
        "val_curve": curve,
        "cpu": cpu_model(),
        "command": " ".join(["nice -n 10 python benchmarks/text_calibrate.py", *sys.argv[1:]]),
    }
    with RUNS.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec["test"]), f"{seconds:.0f}s", flush=True)
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="textlogic")
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student-epochs", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2", help="student seeds (the teacher uses the first)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--only", choices=("teacher", "student"), default=None)
    p.add_argument("--report", action="store_true", help="only write the md/json from the runs")
    args = p.parse_args()
    if args.report:
        write_report([json.loads(ln) for ln in RUNS.read_text().splitlines() if ln.strip()])
        return
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.only != "student":
        run(args.data, "teacher", seeds[0], args.teacher_epochs, args.lr, args.amp)
    if args.only != "teacher":
        for s in seeds:
            run(args.data, "student", s, args.student_epochs, args.lr, args.amp)


def summary(records: list[dict]) -> dict:
    """Mean and spread of test top-1 by (data, role, epochs), over seeds."""
    out = {}
    for (data, role, epochs, amp, lr), rs in _groups(records).items():
        v = [r["test"]["all"] for r in rs]
        out[_key(data, role, epochs, amp, lr)] = {
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "values": v,
            "seconds": [r["seconds"] for r in rs],
        }
    return out


def _version(r: dict) -> str:
    return r.get("version", "textlogic-v4")  # records before v6 carry no version


def _groups(records: list[dict]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in records:
        data = f"{r['data']} ({_version(r).split('-')[-1]})"
        groups[(data, r["role"], r["epochs"], r.get("amp", False), r["lr"])].append(r)
    return groups


def _key(data: str, role: str, epochs: int, amp: bool, lr: float) -> str:
    return f"{data} {role} {epochs}ep lr{lr:g}{' bf16' if amp else ''}"


def write_report(records: list[dict]) -> None:
    """``textlogic.json`` (every run and the summary) and ``textlogic.md``."""
    summ = summary(records)
    out = RESULTS / "textlogic.json"
    out.write_text(json.dumps({"summary": summ, "runs": records}, indent=2) + "\n")
    kinds = sorted({k for r in records for k in r["test"] if k != "all"})
    lines = [
        "# `textlogic` / `textverdict` / `textpair` difficulty calibration",
        "",
        "A 6-layer BERT teacher and 2-layer students trained alone (random init, cross-entropy",
        "only) on the generated tasks of `edgeslim.data.textlogic`; configs in",
        "`benchmarks/text_models.py` (hidden 128, 4 heads, FFN 512). AdamW, batch 64, cosine",
        "schedule after one warm-up epoch, grad norm <= 1; test top-1 on 1000 samples (one",
        "sample = 0.1 point). CPU: per row (`lscpu` model name); 1 torch thread per run. v4",
        "ran on an AMD EPYC (AVX-512 VNNI, BF16, no AMX) shared with 4-5 other jobs (load",
        "average ~10); v6 on an Intel Xeon with AMX, the other core training a RetinaNet.",
        "",
        "Rows are tagged with the grammar version they ran on: v4 (50% flips) and v6 (the",
        "review grammar now in the tree); v5 has short probes only. Since v6 the teacher",
        "trains at lr 3e-4 with bf16 autocast: at 1e-3 the post-LN 6-layer BERT fell onto",
        "the class prior (probe `v6 review probe 6L`), which is also what v4's teacher did.",
        "",
        *V6_VERDICT,
        "",
        *verdict_section(records),
        "| data | model | epochs | seeds | test top-1 mean | std | per seed | "
        + " | ".join(kinds)
        + " | seconds per run | threads | CPU | command |",
        "|---|---|---:|---:|---:|---:|---|" + "---:|" * len(kinds) + "---:|---:|---|---|",
    ]
    for (data, role, epochs, amp, lr), rs in _groups(records).items():
        tag = " bf16" if amp else ""
        s = summ[_key(data, role, epochs, amp, lr)]
        per_kind = [statistics.mean(r["test"].get(k, float("nan")) for r in rs) for k in kinds]
        lines.append(
            f"| {data} | {role} {rs[0]['layers']}L{tag} lr {lr:g} | {epochs} | {len(rs)} | "
            f"{100 * s['mean']:.1f}% | {100 * s['std']:.1f} | "
            + ", ".join(f"{100 * v:.1f}" for v in s["values"])
            + " | "
            + " | ".join("-" if v != v else f"{100 * v:.1f}" for v in per_kind)  # nan: no such kind
            + f" | {statistics.mean(s['seconds']):.0f} | {rs[0]['threads']} | {rs[0]['cpu']} | "
            f"`{rs[0]['command']}` |"
        )
    bow = {task: bag_of_words(task) for task in ("textlogic", "textverdict", "textpair")}
    lines += [
        "",
        "Reference: logistic regression on word + bigram counts (4000 train samples), test",
        "top-1 per kind (the grammar in the tree): textlogic's tally and negation fall to",
        "word and bigram counts by design (the on-ramp), contrast only in part, doubt not:",
        "",
    ]
    for task, accs in bow.items():
        lines.append(f"- `{task}`: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in accs.items()))
    lines += ["", *probe_table(), "", *HISTORY]
    (RESULTS / "textlogic.md").write_text("\n".join(lines) + "\n")
    probes = [json.loads(ln) for ln in PROBES.read_text().splitlines()] if PROBES.exists() else []
    body = {"summary": summ, "bag_of_words": bow, "runs": records, "probes": probes}
    out.write_text(json.dumps(body, indent=2))


def verdict_section(records: list[dict]) -> list[str]:
    """The pair task's calibration, from its runs (none yet: nothing)."""
    rs = [r for r in records if r["data"].startswith("textverdict")]
    teacher = [r for r in rs if r["role"] == "teacher"]
    students = [r for r in rs if r["role"] == "student"]
    if not teacher:
        return []
    t = teacher[-1]
    acc = t["test"]["all"]
    off = max(0.85 - acc, acc - 0.93, 0.0)
    band = "inside" if off == 0 else f"{100 * off:.1f} points outside"
    out = [
        "## textverdict (the pair task): premise = a v6 review, hypothesis = a verdict",
        "",
        'Like GLUE\'s RTE: "review [SEP] it is [not] good|bad .", entailment if the verdict is',
        "the review's. Trained from scratch, the 6-layer teacher was at 57% after 6 of 10",
        "epochs (stopped); the teacher here starts from the textlogic teacher's weights",
        "(`INIT_FROM` in `benchmarks/text_models.py`), as an RTE teacher starts from a",
        "pre-trained BERT.",
        "",
        f"- 6-layer teacher, {t['epochs']} epochs from the textlogic teacher: "
        f"**{100 * t['test']['all']:.1f}%** test ("
        + ", ".join(f"{k} {100 * v:.1f}" for k, v in t["test"].items() if k != "all")
        + f"): {band} the issue's 85-93% band.",
    ]
    for r in students:
        out.append(
            f"- 2-layer BERT trained alone (random init), {r['epochs']} epochs, seed "
            f"{r['seed']}: **{100 * r['test']['all']:.1f}%**, "
            f"{100 * (t['test']['all'] - r['test']['all']):.1f} points below the teacher."
        )
    return [*out, ""]


def probe_table() -> list[str]:
    """The short probes of ``benchmarks/text_probe.py`` (one row each, in run order)."""
    if not PROBES.exists():
        return []
    lines = [
        "## Short probes (`benchmarks/text_probe.py`, 2-layer, bf16 unless said, batch 64)",
        "",
        "Test top-1 (1000 samples) at the steps shown; fresh splits from the grammar of the",
        "time with the `--set` overrides; 1 torch thread, load average 1-22 (2 cores, 5 jobs:",
        "~0.3 s per 2-layer step when the box was quiet, 1-2.6 s under load). Grammar tags:",
        "v5a = v4's lists with 25% flips; v5b/c/d = v5a with the knobs shown (list length,",
        "each noun once in presence lists, `initializer_range`); v5 = the grammar in the tree",
        "(`textlogic-v5`). Runs cut short keep their curve (the reason is in the probe cell).",
        "",
        "| # | probe | layers | kinds | lr | init | overrides | top-1 by step (all) "
        "| last per kind | seconds | command |",
        "|---:|---|---:|---|---:|---:|---|---|---|---:|---|",
    ]
    for i, ln in enumerate(PROBES.read_text().splitlines(), 1):
        r = json.loads(ln)
        a, last = r["args"], r["curve"][-1]
        kinds = {k: v for k, v in last.items() if k not in ("step", "loss", "all")}
        cut = f" ({r['stopped']})" if r.get("stopped") else ""
        lines.append(
            f"| {i} | {a['note']}{cut} | "
            f"{a['layers']} | {a['kinds'] or 'all'} | {a['lr']:g} | "
            f"{a.get('init', 0.02):g} | {', '.join(a.get('set', [])) or '-'} | "
            + ", ".join(f"{c['step']}: {c['all']:.1f}" for c in r["curve"])
            + " | "
            + ", ".join(f"{k} {v:.1f}" for k, v in kinds.items())
            + f" | {r['seconds']:.0f} | `nice -n 10 {r['command']}` |"
        )
    return lines


def bag_of_words(task: str) -> dict[str, float]:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = split_samples(task)
    texts = {k: [f"{s.text_a} || {s.text_b}" for s in v] for k, v in splits.items()}
    vec = CountVectorizer(ngram_range=(1, 2), token_pattern=r"[^ ]+")  # noqa: S106
    model = LogisticRegression(solver="liblinear").fit(
        vec.fit_transform(texts["train"][:4000]), [s.label for s in splits["train"][:4000]]
    )
    pred = model.predict(vec.transform(texts["test"]))
    hits = defaultdict(list)
    for p, s in zip(pred, splits["test"], strict=True):
        hits[s.kind].append(p == s.label)
        hits["all"].append(p == s.label)
    return {k: round(sum(v) / len(v), 4) for k, v in hits.items()}


V6_VERDICT = [
    "## v6 (the review grammar): the band is reached",
    "",
    "v1-v5 asked for content-based attention (a noun matched across the sentence) before",
    "any gradient appeared, and every model sat on a plateau longer than this machine's",
    "runs. v6 is a review whose verdict is a sum (`edgeslim.data.textlogic_grammar`):",
    "counting gives the first slope, negation a local correction, `but` an order-dependent",
    "weight and `i doubt that` a flip of the whole verdict from the first words. Each rule",
    "is learnt in turn (see the teacher's validation curve in `textlogic.json`).",
    "",
    "- 6-layer teacher, 10 epochs of the 12,000 train samples (1,880 steps), lr 3e-4,",
    "  bf16: **90.9%** test (tally 100, negation 95.6, contrast 88.8, doubt 79.2): inside",
    "  the issue's 85-93% band.",
    "- 2-layer BERT trained alone: **78.7%** after 1,500 steps on all kinds (probe 24,",
    "  lr 1e-3; tally 98.4, negation 77.6, contrast 70.4, doubt 68.4), and **66.9%** (3",
    "  seeds: 73.1, 64.1, 63.4) with 4 epochs of 6,000 samples, the budget of the",
    "  distillation benchmark (`distillation.textlogic.md`): 12-24 points short.",
    "- Word and bigram counts (logistic regression, below): 70.5% overall (73.3% with all",
    "  12,000 samples), by design mostly solving",
    "  tally and negation and failing doubt (20%: it predicts the verdict before the flip).",
    "- Not run: the 2-layer student for the teacher's full 10 epochs (CPU time went to the",
    "  distillation, FastBERT and INT8 runs).",
]

V5_VERDICT = [
    "## v5 verdict: the difficulty band is still NOT reached; no teacher was trained",
    "",
    "Short probes only (table above; 2-layer BERT, bf16, lr 1e-3 unless said, 1 thread,",
    "load average 9-22 on 2 cores: ~1 s per step of batch 64 for 2 layers, ~2-3 s for 4,",
    "so a 6-layer teacher of 1000 steps was ~50 min and did not fit this session):",
    "",
    "- The set-up learns what a bag of words plus an MLP sees: `lexical` alone reaches",
    "  100% by step 100. Mixed with the other kinds it was not found by step 600 (probe",
    "  `v5 defaults`: 51.3% overall, presence 58, lexical/order/count/agreement ~50).",
    "- Minority flips are not enough. `presence` alone (noun matching: the claimed noun",
    "  against the list) stalls at 55-58% in every variant tried within 300 steps:",
    "  flips 25% or none (`FLIP=0.0`), lists of 2-6 vehicles each noun once or 6-9 not",
    "  (1-3 and 2-5: 50.0% when stopped at step 150), dropout 0, `initializer_range`",
    "  0.05 and 0.1, lr 1e-4 and 3e-4 (both stopped by their `timeout`, 50.0% at step",
    "  300) and 3e-3 (50.0% at 400). 55-58% is below what the list's length and the flip",
    "  word alone give (a longer list holds the claimed noun more often: a lookup table",
    "  on those two scores 60.8% on the probe's test samples), so the matching itself --",
    "  attention from the claimed noun to the equal noun, read out at [CLS]: two",
    "  attention patterns that must form together -- was not found. Longer and deeper",
    "  does not find it either within what ran: presence alone stays at 55.7% from step",
    "  200 to 800 (2 layers), a 4-layer model is at 55.2% by step 400, and the claim put",
    "  first (the claimed noun at a fixed position, one pattern fewer to learn) gives",
    "  57.7% at 300. bf16 autocast is not the cause: fp32 gives 56.0% at step 300.",
    "- So the blocker after v4's parity is not the flips alone: any kind that needs",
    "  content-based attention (presence, order, count, agreement) sits on a plateau",
    "  longer than the ~1000-2000 steps this box gives a run from random init.",
    "",
    "Not measured here: a teacher on v5, a 2-layer student on v5 beyond 600 steps, the",
    "bag-of-bigrams figure above is for v5's splits (the test keeps it under 60%).",
    "",
    "What to try next (v5), in order of expected effect:",
    "",
    "1. A GPU, or far more CPU: a 6-layer teacher for ~10k steps is minutes on a GPU;",
    "   the plateau may simply need more steps than this box can give (first check",
    "   with `text_probe.py --steps 3000 --kinds presence`).",
    "2. MLM pre-training on `unlabeled_corpus()` before the task: masked-noun prediction",
    "   in a list that repeats nouns teaches exactly the matching attention.",
    "3. A model change for the from-scratch arms (all in `bert_config`): pre-LN is not",
    "   in HF BERT, but mean pooling or a larger lr on attention only are cheap to try;",
    "   a claim placed first did not help in 300 steps (probe 11).",
    "4. Then mix: `lexical` + presence as on-ramps, order/count/agreement with depth-scaled",
    "   difficulty (more items, more attractors), and tune the band by the mix.",
]

HISTORY = [
    "How the task got here (same configs, same machine):",
    "",
    "- v1 (order with colour binding, count, quantifier, agreement with attractors mostly",
    "  of the other number): the 6-layer teacher at lr 1e-3 predicted one class after its",
    "  warm-up epoch; the 2-layer student reached 58% by epoch 3 only through template",
    "  words (a bigram logistic regression scored 63%: 'some' claims mostly true, the",
    "  attractor's number against the verb).",
    "- v3 (labels balanced per claim template, attractor number a coin flip, a bigram",
    "  model at 50%): the 2-layer student stayed at exactly 50% on every kind for 2 epochs",
    "  at lr 1e-3 (and at 5e-4): with no kind giving a first gradient the models sat on the",
    "  class prior.",
    "- v4: the `lexical` on-ramp kind (an exclusive-or of three words at the end of",
    "  the sentence, no linear shortcut) added to both mixes.",
    "",
    "- v5 (this): flips in a 25% minority (`FLIP`), presence lists naming each noun once",
    "  (2-6), count lists 4-9, rows 3-6; see the v5 verdict below.",
    "",
    *V5_VERDICT,
    "",
    "## v4 verdict (kept for the record): the difficulty band is NOT reached",
    "",
    "The issue asks for a 6-layer teacher at ~85-93% and a 2-layer student alone several",
    "points below. With the step budget this shared 2-core machine allows (4 epochs x 188",
    "steps of batch 64; a 6-layer epoch takes ~12 min, a 2-layer one ~4 min, under a load",
    "average of ~10), the 2-layer student learns only the `lexical` on-ramp (100%) and",
    "sits at chance on presence, order, count and agreement: 60.0% overall (one kind in",
    "five solved). The 6-layer teacher never leaves the class prior: 50.0% on every kind",
    "after 4 epochs (2014 s), so it is of no use as a teacher yet. The student sits on",
    "the prior for ~1.5 epochs before `lexical` is found; a `lexical`-only run needs",
    "~100-125 steps of `lexical` batches, i.e. ~500-600 mixed steps. No other kind was",
    "found in the steps affordable here; the data is not the limit (the grammar makes any",
    "number of samples, and the rules are checked by an independent oracle).",
    "",
    "More steps of the same recipe do not fix it: a 2-layer student with bf16 autocast",
    "for 10 epochs (1880 steps, `--amp`) also solves `lexical` and nothing else.",
    "",
    "Why (a probe at the end of the session, 2-layer student, bf16, lr 1e-3, batches of one",
    "kind): `presence` samples alone stay at loss 0.693 for 400 steps, while the same",
    'samples without negation ("there is a X" only) start to fall by step 175 (57% at',
    "300). Every kind except `lexical` is the exclusive-or of its base rule and a",
    '"not"/"no" that flips it in exactly half the samples of every template, so no',
    "single feature correlates with the label: a parity, which gradient descent finds",
    "only after a long plateau. `lexical` is a parity too, but of three adjacent words,",
    "which the MLP finds quickly.",
    "",
    "What to try next, in order of expected effect:",
    "",
    "1. Flip a minority of each kind's claims instead of half, keeping labels balanced",
    "   per template, so the base rule correlates with the label. Tried last (not kept):",
    "   25% of claims with not/no, after, fewer gave a 2-layer bf16 student 60.6% after",
    "   4 epochs (lexical 90.5, count 59.0, presence 52.5, agreement 51.0, order 50.0)",
    "   and the bf16 teacher was still on the prior after 2 epochs: a start on count,",
    "   not enough alone.",
    "2. A curriculum inside the data: short lists (1-2 items) mixed into `presence`,",
    "   `order` and `count`.",
    "3. MLM pre-training on `unlabeled_corpus()` (it also serves TinyBERT's general",
    "   stage): token-matching attention is what MLM on this text teaches.",
    "4. More steps: `TrainConfig(amp=True)` (bf16 autocast, ~2x faster per step here:",
    "   0.60 s vs 1.2-1.5 s per batch of 64 for the 2-layer BERT under load), or a GPU.",
    "5. Then tune the band by the mix of easy kinds against `order` / `count`.",
    "",
    "`textpair` (the v5 claims) has not been calibrated: no model this machine trained got",
    "off the class prior on its kinds. The calibrated pair task is `textverdict` (above).",
]


if __name__ == "__main__":
    main()
