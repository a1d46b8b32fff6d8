"""The accuracy studies' subsets of a dataset: a class subset with at most N training images per
class (the 100-image regime). Applied once when a dataset is read (:mod:`speedtrain.data.datasets`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from speedtrain.common.errors import DataError


def select_classes(images: Tensor, labels: Tensor, classes: tuple[int, ...],
                   per_class: Optional[int]) -> tuple[Tensor, Tensor]:
    """The images of ``classes`` (all classes when empty), at most the first ``per_class`` of
    each in dataset order, labels renumbered ``0..K-1`` in the order ``classes`` names them.

    The dataset order is kept (classes stay interleaved), so a later "first N images" subset
    still mixes classes."""
    wanted = classes or tuple(range(int(labels.max()) + 1))
    lookup = torch.full((max(wanted) + 1,), -1, dtype=torch.long)
    lookup[list(wanted)] = torch.arange(len(wanted))
    new = torch.where(labels <= max(wanted), lookup[labels.clamp(max=max(wanted))], -1)
    keep = new >= 0
    if per_class is not None:
        # rank of each image within its class, in dataset order: kept while below per_class
        onehot = F.one_hot(new.clamp(min=0), len(wanted)) * keep[:, None]
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep &= rank < per_class
    index = keep.nonzero().squeeze(1)
    missing = [c for i, c in enumerate(wanted) if not bool((new[index] == i).any())]
    if missing:
        raise DataError(f"no images of class {missing[0]} in the data (classes {list(wanted)})")
    return images[index], new[index]
