"""``speedtrain train --recipe NAME`` and ``--list-recipes`` (issue 21; the recipes are
:mod:`speedtrain.recipes`).

A recipe supplies config values; an option given on the command line overrides the recipe's
value (the config options default to "not given", so only the user's own options are seen
as explicit). An unknown name is refused by argparse: one ``error:`` line naming the known
recipes, exit 2, before anything loads.
"""

from __future__ import annotations

import argparse
from typing import Any

from speedtrain.recipes import RECIPES, describe, recipe_values

__all__ = ["add_recipe_options", "apply_recipe", "list_recipes"]


def _recipe_name(text: str) -> str:
    if text not in RECIPES:
        raise argparse.ArgumentTypeError(f"unknown recipe {text!r}; known recipes: {', '.join(RECIPES)}")
    return text


def add_recipe_options(group: "argparse._ArgumentGroup") -> None:
    """``--recipe`` (its help lists each recipe with source and published figure) and ``--list-recipes``."""
    listing = "; ".join(r.line() for r in RECIPES.values())
    group.add_argument("--recipe", metavar="NAME", type=_recipe_name, default=None,
                       help=("start from a named recipe's config values; options given explicitly override "
                             f"them. Recipes: {listing}").replace("%", "%%"))  # argparse formats %
    group.add_argument("--list-recipes", action="store_true",
                       help="print every recipe (source, published figure, the options it sets) and exit")


def list_recipes() -> str:
    return describe()


def apply_recipe(args: argparse.Namespace, explicit: dict[str, Any]) -> dict[str, Any]:
    """The config values to train with: the recipe's (if one was named), then ``explicit`` on top."""
    return recipe_values(args.recipe, **explicit) if getattr(args, "recipe", None) else dict(explicit)
