"""The ``edgeslim`` command: it only dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from edgeslim.core.errors import EdgeslimError

# subcommand name -> module under edgeslim.cli (each has HELP, add_arguments, run)
SUBCOMMANDS = (
    "compress",
    "demo",
    "analyze",
    "bench",
    "evaluate",
    "predict",
    "export",
    "train",
    "prune",
    "distill",
    "earlyexit",
    "quantize",
    "qat",
    "decompose",
    "sensitivity",
    "sparsify",
)


# the machine, not edgeslim: a full disk, a read-only or forbidden output folder
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def build_parser() -> argparse.ArgumentParser:
    from edgeslim import __version__

    parser = argparse.ArgumentParser(
        prog="edgeslim", description="Make PyTorch models smaller and faster, and prove it."
    )
    parser.add_argument("--version", action="version", version=f"edgeslim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"edgeslim.cli.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args._run(args) or 0)
        from edgeslim.train.distributed import shutdown

        shutdown()  # under torchrun: all ranks leave the process group together
        return code
    except EdgeslimError as e:
        print(f"edgeslim: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise  # anything else is a bug: keep its traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"edgeslim: error: {e.strerror}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeslim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
