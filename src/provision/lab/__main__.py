"""``python -m provision.lab up NAME... | down | status``."""

from __future__ import annotations

import argparse
import logging
import sys

from provision.lab import lifecycle, state
from provision.lab.errors import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provision.lab", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start test hosts (root)")
    start.add_argument("names", nargs="+", metavar="NAME")
    sub.add_parser("down", help="remove every lab container")
    sub.add_parser("status", help="show engine, allowlist and hosts")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="lab: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "up":
            for name, address in lifecycle.up(args.names).items():
                print(f"{name} {address}")
            print(f"inventory: {state.inventory_path()}")
        elif args.command == "down":
            lifecycle.down()
        else:
            print(lifecycle.status().as_text())
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
