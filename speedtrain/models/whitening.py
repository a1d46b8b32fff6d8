"""myrtle.ai's 3x3 input patch whitening for ResNet-9 ("How to train your ResNet 8: Bag of
tricks", section "Input patch whitening (36s)"; davidcpage/cifar10-fast bag_of_tricks.ipynb
cells 70 and 72, and torch_backend.py ``cov``, ``patches``, ``eigens``, ``whitening_filter``).

Why: batch norm standardises each channel but leaves the covariance between channels and
neighbouring pixels; whitening 3x3 input patches gives the first learnt layer 27 decorrelated,
unit-variance inputs, which the notebook found worth 3 epochs (17 epochs 94.4% against 94.1%).

The arithmetic is cifar10-fast's, step for step:

- rows: every 3x3 patch (stride 1, no padding) of the first 10,000 normalised training images
  (``train_set['data'][:10000, :, 4:-4, 4:-4]``: the centre crop undoes the set's 4 px padding);
- ``cov(X) = X^T X / (n - 1)``, *not* centred (the images are normalised, so the mean is small);
- the eigendecomposition, largest eigenvalue first; filter i is ``v_i / sqrt(lambda_i + eps)``
  with ``eps = 1e-2``, each once (airbench adds the negatives; myrtle.ai does not);
- the prep layer becomes: this frozen 3 -> 27 conv (kernel 3, padding 1, no bias), a learnt
  1x1 conv 27 -> 64 (no bias), batch norm, activation. No pool, as the prep layer before it.

The filters are computed before the clock starts, and their seconds are ``RunResult.whiten_s``,
as airbench's are. Eigenvector signs are arbitrary (``torch.linalg.eigh`` may differ from the
old ``torch.symeig``); a filter and its negative whiten alike and the next conv learns either.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor, nn

from speedtrain.hw.timing import Timer

__all__ = ["WHITEN_KERNEL", "WHITEN_EPS", "MYRTLE_WHITEN_IMAGES", "patch_covariance", "myrtle_whitening_filters",
           "whitening_prep", "init_patch_whitening"]

WHITEN_KERNEL = 3  # cifar10-fast's patches(..., patch_size=(3, 3))
WHITEN_EPS = 1e-2  # whitening_filter(Λ, V, eps=1e-2)
MYRTLE_WHITEN_IMAGES = 10_000  # eigens(patches(train_set['data'][:10000, ...]))
_CHUNK = 1000  # images per covariance chunk: 10,000 images' patches at once are ~1 GB of float32


def patch_covariance(images: Tensor, kernel: int = WHITEN_KERNEL) -> Tensor:
    """cifar10-fast's ``cov(patches(images))``: ``X^T X / (n - 1)`` over every ``kernel`` x
    ``kernel`` patch (rows of ``C*k*k``, channel-major as a conv weight), uncentred, float32.
    Summed over chunks of images, which changes only the order of the additions."""
    c = images.shape[1]
    d = c * kernel * kernel
    total = torch.zeros(d, d, dtype=torch.float32, device=images.device)
    n = 0
    for start in range(0, len(images), _CHUNK):
        p = images[start:start + _CHUNK].float().unfold(2, kernel, 1).unfold(3, kernel, 1)  # (N, C, H', W', k, k)
        rows = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, d)
        total += rows.T @ rows
        n += rows.shape[0]
    return total / (n - 1)


def myrtle_whitening_filters(images: Tensor, kernel: int = WHITEN_KERNEL, eps: float = WHITEN_EPS) -> Tensor:
    """``(C*k*k, C, k, k)`` filters ``v_i / sqrt(lambda_i + eps)`` of the patches' uncentred
    covariance, largest eigenvalue first (cifar10-fast's ``eigens`` then ``whitening_filter``)."""
    c = images.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, kernel))  # ascending, as symeig
    eigenvalues, rows = eigenvalues.flip(0), eigenvectors.T.flip(0)
    return (rows / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * kernel * kernel, c, kernel, kernel)


def whitening_prep(c_in: int, c_out: int, bn: nn.Module, act: nn.Module) -> nn.Sequential:
    """ResNet-9's prep layer with patch whitening: frozen 3x3 whitening conv (``.whiten``), learnt
    1x1 conv (``.conv``), batch norm, activation (bag_of_tricks.ipynb ``whitening_block``).
    The whitening conv holds PyTorch's random init until :func:`init_patch_whitening` fills it."""
    width = c_in * WHITEN_KERNEL * WHITEN_KERNEL
    whiten = nn.Conv2d(c_in, width, WHITEN_KERNEL, padding=WHITEN_KERNEL // 2, bias=False)
    whiten.weight.requires_grad_(False)  # filt.weight.requires_grad = False
    return nn.Sequential(OrderedDict(whiten=whiten, conv=nn.Conv2d(width, c_out, 1, bias=False), bn=bn, act=act))


def init_patch_whitening(conv: nn.Conv2d, images: Tensor, eps: float = WHITEN_EPS) -> float:
    """Fill the whitening ``conv`` from normalised training ``images``; return the seconds it took,
    timed on the images' device."""
    c = images.shape[1]
    if conv.out_channels != c * WHITEN_KERNEL**2 or conv.kernel_size != (WHITEN_KERNEL, WHITEN_KERNEL):
        raise ValueError(f"a 3x3 whitening conv for {c}-channel images needs {c * WHITEN_KERNEL**2} filters of 3x3; "
                         f"got {conv.out_channels} of {conv.kernel_size}")
    return fill_timed(conv, images, lambda x: myrtle_whitening_filters(x, WHITEN_KERNEL, eps))


def fill_timed(conv: nn.Conv2d, images: Tensor, make_filters: Callable[[Tensor], Tensor]) -> float:
    """Set ``conv``'s weight to ``make_filters(images)``; the seconds it took, timed on the
    images' device (the whitening's own figure, ``whiten_s``)."""
    timer = Timer(images.device)
    timer.start()
    filters = make_filters(images)
    with torch.no_grad():
        conv.weight.copy_(filters)
    return timer.stop()
