"""``edgeslim compress``: run a recipe (or the built-in default) end to end, with reports."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "prune, distill, quantize and export per a recipe; report what each stage bought"
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "recipe" / "default.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", default=None, help="YAML recipe (default: built-in)")
    p.add_argument("-o", "--output", default="edgeslim-out", help="output directory (resumable)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from edgeslim.recipe import compress, load_recipe

    loaded = load_recipe(args.recipe or DEFAULT_RECIPE)
    if args.recipe is None:
        print(f"no recipe given: running the built-in default ({DEFAULT_RECIPE.name})")
    compress(loaded, args.output, progress=not args.no_progress)
    print(f"wrote {args.output}/report.html, report.md, report.json, model.onnx")
    return 0
