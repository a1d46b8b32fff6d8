"""Recipes by name (issue 21): a named set of ``TrainConfig`` values, defined once, with the
source it reproduces and the figure that source published.

``speedtrain train --recipe NAME`` starts from a recipe's values and lets explicit options
override them (``--list-recipes`` prints them); the benchmark files take their end-to-end
cases from the same entries (``benchmarks/test_dawnbench.py``), so the CLI run and the
benchmark case cannot drift apart. A recipe's ``values`` hold only what differs from the
``TrainConfig`` defaults, in the trainer's units.

Adding a recipe is one :class:`Recipe` in :data:`RECIPES`; the CLI's help, ``--list-recipes``
and the tests read the list. The README lists them too (a test holds it to this list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from speedtrain.recipes.airbench import AIRBENCH94
from speedtrain.recipes.myrtle import MYRTLE_FINAL, PUBLISHED
from speedtrain.common.errors import ConfigError

__all__ = ["Recipe", "RECIPES", "MYRTLE_24EP", "get_recipe", "recipe_values", "describe"]


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str  # one line: what it trains
    values: Mapping[str, Any]  # TrainConfig field -> value (the defaults are not repeated)
    source: str  # URL of the code or post it reproduces
    published: str  # the figure that source published, with its hardware
    notes: tuple[str, ...] = field(default=())  # where speedtrain's run knowingly differs

    def line(self) -> str:
        """``name: summary; published figure (source)``, for help and listings."""
        return f"{self.name}: {self.summary}; published: {self.published} ({self.source})"


# myrtle.ai's ResNet-9 at the end of "How to train your ResNet" part 4 (architecture): 24 epochs
# of batch 512, LR 0.4 peaking at epoch 5, crop 4 + flip + 8x8 cutout, fp16 (cifar10-fast).
MYRTLE_24EP: dict[str, Any] = dict(model="resnet9", batch_size=512, epochs=24, lr=0.4, crop_padding=4, flip=True,
                                   cutout=8, precision="half", channels_last=True, loader="gpu")

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="myrtle-24ep",
        summary="myrtle.ai's ResNet-9, 24 epochs (batch 512, LR 0.4 at epoch 5, crop + flip + cutout, fp16)",
        values=MYRTLE_24EP,
        source="https://myrtle.ai/learn/how-to-train-your-resnet/",
        published="94% in 79 s on one V100 (myrtle.ai, part 4 of the series, 2018)",
    ),
    Recipe(
        name="airbench94",
        summary="Keller Jordan's airbench94, 9.9 epochs (whitening, lookahead, alternating flip, multi-crop TTA)",
        values=AIRBENCH94,
        source="https://github.com/KellerJordan/cifar10-airbench/blob/master/legacy/airbench94.py",
        published="94% in 3.29 s on one A100 (arXiv 2404.00498; the uncompiled airbench94.py: 3.83 s, "
                  "94.01% mean of 1000 runs), timed with whitening and the final TTA (airbench_time_s)",
    ),
    Recipe(
        name="myrtle-final",
        summary="myrtle.ai's bag of tricks to its end: ResNet-9, 10 epochs, 3x3 whitening, EMA, flip TTA, no cutout",
        values=MYRTLE_FINAL,
        source="https://github.com/davidcpage/cifar10-fast/blob/master/bag_of_tricks.ipynb",
        published=f"{PUBLISHED['final-10ep-no-cutout'].accuracy:.1%} in {PUBLISHED['final-10ep-no-cutout'].seconds:g} s "
                  "on one V100 with flip TTA (bag_of_tricks.ipynb, cell 84)",
    ),
)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ConfigError (one line naming the known ones) otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)} "
                          "(see 'speedtrain train --list-recipes')") from None


def recipe_values(name: str, **overrides: Any) -> dict[str, Any]:
    """The recipe's config values with ``overrides`` (explicit options) on top."""
    return {**get_recipe(name).values, **overrides}


def describe() -> str:
    """Every recipe with its source, published figure and values (``--list-recipes``)."""
    blocks = []
    for r in RECIPES.values():
        values = " ".join(_option(k, v) for k, v in r.values.items())
        blocks.append(f"{r.name}\n  {r.summary}\n  published: {r.published}\n  source: {r.source}\n  values: {values}")
    return "\n\n".join(blocks)


def _option(name: str, value: Any) -> str:
    """A value as the ``speedtrain train`` option that sets it."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    if isinstance(value, tuple):
        return f"--{flag} {','.join(map(str, value))}"
    return f"--{flag} {value}"
