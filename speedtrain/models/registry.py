"""The networks by name: each model module registers its builder (``@register("resnet9")``),
and the trainer, FLOPs and doctor build any of them with :func:`build_model`. A new network is
one module that registers itself, imported in ``speedtrain/models/__init__.py``, plus its name
in ``TrainConfig.model``'s choices.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from speedtrain.common.errors import ConfigError
from speedtrain.config.trainconfig import PRECISIONS, TrainConfig

Builder = Callable[[TrainConfig], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        return builder

    return add


def build_model(cfg: TrainConfig) -> nn.Module:
    """The network ``cfg`` describes, in fp32 on the CPU, in training mode."""
    builder = MODELS.get(cfg.model)
    if builder is None:
        raise ConfigError(f"model must be one of {', '.join(sorted(MODELS))}; got {cfg.model!r}")
    return builder(cfg)


def prepare_for_precision(model: nn.Module, precision: str) -> nn.Module:
    """Convert ``model`` in place for ``precision`` and return it.

    'half' is myrtle.ai's mixed precision (part 1, cifar10-fast): every weight in fp16 except
    the batch norms (ghost ones included), which stay fp32 for stable statistics. Batch norm
    takes an fp16 input with fp32 parameters natively (cuDNN; and the CPU in torch 2.14) and
    returns fp16, so no casts are inserted. The caller feeds fp16 inputs. Every other
    precision (fp32, tf32, and the autocast modes fp16/bf16) keeps the fp32 model unchanged.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "half":
        model.half()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.float()
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements: all of them by default (the network's size, the number the
    reports quote), or only those with ``requires_grad`` (frozen BN scales excluded).

    Buffers (batch-norm running statistics) are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
