"""cifar10-fast's SGD: the learning rate inside the momentum buffer (its ``nesterov_update``).

davidcpage/cifar10-fast torch_backend.py (and bag_of_tricks.ipynb)::

    def nesterov_update(w, dw, v, lr, weight_decay, momentum):
        dw.add_(weight_decay, w).mul_(-lr)
        v.mul_(momentum).add_(dw)
        w.add_(dw.add_(momentum, v))

so ``v <- m v - lr (g + wd w)`` and ``w <- w - lr (g + wd w) + m v``. torch's SGD keeps
``b <- m b + (g + wd w)`` and steps ``w <- w - lr (g + wd w + m b)``: with a constant rate the
two are the same (``v = -lr b``), but while the rate changes torch applies the *current* rate
to the whole buffer, cifar10-fast each gradient's own rate. For a constant gradient over the
final recipe's 970 steps a step differs by up to 31%, the total displacement by 0.1%
(``tests/test_sgd_forms.py`` computes both). The myrtle.ai
recipes use this form (``sgd_form="cifar10-fast"``) so that they run the arithmetic their
published accuracies came from.

Without ``nesterov`` the update is the heavy-ball one with the rate inside the buffer
(``v <- m v - lr (g + wd w)``, ``w <- w + v``), which cifar10-fast does not have; it is here so
that the option means one thing with either momentum.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import torch

__all__ = ["LrInBufferSGD"]


class LrInBufferSGD(torch.optim.Optimizer):
    """SGD with momentum whose buffer holds ``-lr * gradient`` sums (cifar10-fast's form).

    Groups read ``lr``, ``momentum``, ``weight_decay`` and ``nesterov`` as ``torch.optim.SGD``'s
    do, so :func:`speedtrain.train.optimizers.set_lr` and the batch-norm shift groups work unchanged.
    Multi-tensor (``torch._foreach_*``) ops per group, as SGD's foreach path.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = True) -> None:
        if lr < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"LrInBufferSGD needs lr >= 0, momentum in [0, 1), weight_decay >= 0; "
                             f"got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                                      foreach=True))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, m, wd = group["lr"], group["momentum"], group["weight_decay"]
            bufs = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["velocity"])
            grads = [p.grad for p in params]
            dw = torch._foreach_add(grads, params, alpha=wd) if wd else [g.clone() for g in grads]
            torch._foreach_mul_(dw, -lr)  # dw = -lr (g + wd w)
            torch._foreach_mul_(bufs, m)
            torch._foreach_add_(bufs, dw)  # v = m v + dw
            if group["nesterov"]:
                torch._foreach_add_(dw, bufs, alpha=m)  # dw + m v
                torch._foreach_add_(params, dw)
            else:
                torch._foreach_add_(params, bufs)
        return loss
