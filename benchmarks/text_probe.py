"""Short probes of the ``textlogic`` grammar: train a small BERT for a few hundred steps
on freshly generated samples and print test top-1 per kind every ``--every`` steps.

Cheaper than ``text_calibrate.py`` (no dataset cache, no saved model), so a grammar
change can be judged in minutes before the teacher is trained on it::

    PYTHONPATH=. nice -n 10 python benchmarks/text_probe.py --layers 2 --steps 400 --amp
    PYTHONPATH=. nice -n 10 python benchmarks/text_probe.py --kinds count --steps 300

Each probe appends one record to ``benchmarks/results/textlogic.probes.jsonl``.
"""

from __future__ import annotations

import argparse
import ast
import json
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.text_models import bert_config  # noqa: E402
from edgeslim.data import textlogic_grammar as grammar  # noqa: E402
from edgeslim.data.wordpiece import encode, train_wordpiece  # noqa: E402
from edgeslim.models.hf import build_hf  # noqa: E402
from edgeslim.train.schedule import lr_at  # noqa: E402

PROBES = Path(__file__).parent / "results" / "textlogic.probes.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--train", type=int, default=12000)
    p.add_argument("--kinds", default="", help="comma-separated subset of the task's kinds")
    p.add_argument("--pair", action="store_true")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--init", type=float, default=0.02, help="BERT initializer_range")
    p.add_argument("--set", action="append", default=[], help="grammar NAME=python-literal")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    for item in args.set:  # e.g. FLIP=0.1 or NOUNS={"car":"cars","bus":"buses"}
        name, value = item.split("=", 1)
        setattr(grammar, name, ast.literal_eval(value))
    kinds = (
        tuple(args.kinds.split(","))
        if args.kinds
        else (grammar.PAIR_KINDS if args.pair else grammar.SINGLE_KINDS)
    )
    samples = grammar.generate_samples(
        args.train + 1000, 77 + args.seed, pair=args.pair, kinds=kinds
    )
    test, train = samples[:1000], samples[1000:]
    tok = train_wordpiece([t for s in samples for t in (s.text_a, s.text_b) if t], 1000)

    def tensors(ss):
        b = [s.text_b or "" for s in ss] if args.pair else None
        ids, cut = encode(tok, [s.text_a for s in ss], b, args.length)
        assert not cut, f"{cut} samples longer than {args.length}"
        return torch.as_tensor(ids), torch.tensor([s.label for s in ss])

    xtr, ytr = tensors(train)
    xte, _ = tensors(test)
    longest = int((xtr != 0).sum(1).max())
    drop = {
        "hidden_dropout_prob": args.dropout,
        "attention_probs_dropout_prob": args.dropout,
        "initializer_range": args.init,
    }
    model = build_hf({**bert_config(tok.get_vocab_size(), 2, args.layers), **drop})
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(args.seed)
    curve, t0 = [], time.time()
    signal.signal(signal.SIGTERM, _stop)  # `timeout` ends a slow probe: keep its curve
    try:
        fit_probe(args, model, opt, g, xtr, ytr, xte, test, curve, t0)
        stopped = None
    except KeyboardInterrupt:
        stopped = f"stopped by a signal after {time.time() - t0:.0f} s"
    rec = {
        "args": vars(args),
        "longest_tokens": longest,
        "seconds": round(time.time() - t0, 1),
        "curve": curve,
        "stopped": stopped,
        "command": "python benchmarks/text_probe.py " + " ".join(sys.argv[1:]),
    }
    if curve:
        with PROBES.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def fit_probe(args, model, opt, g, xtr, ytr, xte, test, curve: list, t0: float) -> None:
    perm, pos = torch.randperm(len(xtr), generator=g), 0
    for step in range(1, args.steps + 1):
        if pos + args.batch > len(perm):
            perm, pos = torch.randperm(len(xtr), generator=g), 0
        idx = perm[pos : pos + args.batch]
        pos += args.batch
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args.steps, args.lr, "cosine", args.warmup)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp):
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            acc = evaluate(model, xte, test)
            curve.append({"step": step, "loss": round(loss.item(), 3), **acc})
            print(f"step {step} {time.time() - t0:.0f}s loss {loss.item():.3f} {acc}", flush=True)


@torch.no_grad()
def evaluate(model, x, samples) -> dict[str, float]:
    model.eval()
    pred = torch.cat([model(x[i : i + 500]).argmax(-1) for i in range(0, len(x), 500)])
    hits = defaultdict(list)
    for s, q in zip(samples, pred.tolist(), strict=True):
        hits[s.kind].append(q == s.label)
        hits["all"].append(q == s.label)
    return {k: round(100 * sum(v) / len(v), 1) for k, v in hits.items()}


if __name__ == "__main__":
    main()
