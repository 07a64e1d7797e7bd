"""`srblock recipes`: the shipped recipes and sweeps, a line each."""

from __future__ import annotations

import argparse

from ..recipes import list_recipe_files, load_yaml
from ..render import render

EPILOG = """\
examples:
  srblock recipes
  srblock recipes --keys               # every key a recipe or --set may hold: default, range, help
  srblock train fashion_mnist          # a recipe
  srblock sweep cifar100-table1       # a sweep: every row of a paper table x its seeds
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipes",
        help="list the built-in recipes and sweeps",
        epilog=EPILOG,
        description="List the built-in recipes (for `srblock train`) and sweeps (for `srblock sweep`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--keys", action="store_true", help="the keys recipes and --set take, with their facts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.keys:
        from ..keys import key_rows

        print(render(key_rows(), ["key", "runs", "default", "allowed", "notes", "what"]))
        return 0
    names = list_recipe_files()
    width = max(map(len, names))
    for name in names:
        data = load_yaml(name)
        kind = "sweep " if "runs" in data else "recipe"
        print(f"{name:<{width}}  {kind}  {data.get('description', '')}")
    return 0
