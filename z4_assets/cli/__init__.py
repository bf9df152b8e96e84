"""The `z4` command: register snapshots, run the factory on one, verify what it produced."""

from __future__ import annotations

import argparse
import sys

from z4_assets.core.errors import Z4Error


def build_parser() -> argparse.ArgumentParser:
    from z4_assets.cli import audit, consume, image, release, runs, snapshots

    parser = argparse.ArgumentParser(prog="z4", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    snapshots.add_parsers(sub)
    runs.add_parsers(sub)
    release.add_parsers(sub)
    consume.add_parsers(sub)
    image.add_parsers(sub)
    audit.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Z4Error as e:
        print(f"z4: error: {e}", file=sys.stderr)
        return 2
