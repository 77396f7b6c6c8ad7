"""The ``l2o`` command line: ``l2o <command> --help`` describes every option.

One module per command; their flags come from the typed configs (``l2o.cli.options``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from l2o.cli import distill, eval as eval_cmd, meta_train, meta_tune, pipeline, train_large

COMMANDS = (eval_cmd, meta_train, distill, meta_tune, train_large, pipeline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2o", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[l2o] %(message)s", stream=sys.stderr)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # user-facing errors: one clear line
        if args.verbose:
            raise
        print(f"l2o {args.command}: error: {err}", file=sys.stderr)
        return 2
