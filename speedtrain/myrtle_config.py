"""Validation of the fields of myrtle.ai's last bag-of-tricks steps (issue 21).

The weight EMA (``ema_every``, ``ema_momentum``), the floored piecewise schedule
(``lr_floor``, ``lr_floor_epochs``) and cifar10-fast's SGD form (``sgd_form``) are checked
here so that ``config.py`` stays readable; ``config._validate`` calls :func:`validate_myrtle`
after its own checks, with the same one-line :class:`ConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speedtrain.errors import ConfigError
from speedtrain.studyconfig import fail

if TYPE_CHECKING:
    from speedtrain.config import TrainConfig


def validate_myrtle(cfg: "TrainConfig") -> None:
    if cfg.ema_every < 0:
        fail("ema_every", cfg.ema_every, "a whole number of steps of at least 0 (0 = off)")
    if not 0 < cfg.ema_momentum < 1:
        fail("ema_momentum", cfg.ema_momentum, "a number in (0, 1)")
    if cfg.ema_every and cfg.lookahead_every:
        # Two averages of the weights: which one is evaluated, and which one training continues
        # from, would be a third recipe that neither peer ran.
        raise ConfigError(f"ema_every and lookahead_every are two weight averages; use one "
                          f"(got ema_every={cfg.ema_every}, lookahead_every={cfg.lookahead_every})")
    if not 0 <= cfg.lr_floor < 1:
        fail("lr_floor", cfg.lr_floor, "a fraction of the peak LR in [0, 1)")
    if cfg.lr_floor_epochs < 0:
        fail("lr_floor_epochs", cfg.lr_floor_epochs, "a number of epochs of at least 0")
    if (cfg.lr_floor or cfg.lr_floor_epochs) and cfg.schedule != "piecewise":
        raise ConfigError(f"lr_floor and lr_floor_epochs apply to schedule 'piecewise' only; got schedule {cfg.schedule!r}")
    # lr_floor_epochs reaching back past the peak is allowed (a profile shortens a recipe's epochs
    # and keeps its fields): the decay is then empty and the LR drops to the floor at the peak.
    if cfg.sgd_form != "torch" and cfg.optimizer != "sgd":
        raise ConfigError(f"sgd_form applies to optimizer sgd only; got optimizer {cfg.optimizer!r}")
