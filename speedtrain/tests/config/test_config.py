import pytest

import dataclasses
import math

from speedtrain.config.trainconfig import DEFAULT_TARGETS, TrainConfig, choices, field_names, field_specs
from speedtrain.hw.device import check_device, resolve_device
from speedtrain.common.errors import ConfigError


def test_defaults_are_the_myrtle_recipe():
    cfg = TrainConfig()
    assert (cfg.model, cfg.batch_size, cfg.epochs, cfg.lr, cfg.cutout) == ("resnet9", 512, 24, 0.4, 8)
    assert cfg.target == 0.94 and cfg.input_shape == (3, 32, 32)
    assert cfg.pool == "max" and cfg.logit_scale == 0.125


def test_model_dependent_defaults():
    cfg = TrainConfig(model="resnet18")
    assert cfg.pool == "avg" and cfg.logit_scale == 1.0
    assert TrainConfig(model="resnet18", global_pool="max", output_scale=0.5).pool == "max"


def test_dataset_shapes_and_targets():
    cfg = TrainConfig(dataset="fashion-mnist", image_size=96)
    assert cfg.input_shape == (1, 96, 96)
    assert cfg.target == DEFAULT_TARGETS["fashion-mnist"]
    assert TrainConfig(target_acc=0.5).target == 0.5


@pytest.mark.parametrize("changes, words", [
    (dict(dataset="mnist"), ["dataset", "cifar10, fashion-mnist", "'mnist'"]),
    (dict(precision="fp8"), ["precision", "fp32, tf32, fp16, bf16, half"]),
    (dict(width=0), ["width", "(0, 4]"]),
    (dict(width=5.0), ["width"]),
    (dict(batch_size=0), ["batch_size"]),
    (dict(batch_size=True), ["batch_size", "whole number"]),
    (dict(epochs=-2.5), ["epochs", "above 0"]),  # 9.9 is fine: fractional epochs (issue 12)
    (dict(lr="fast"), ["lr", "a finite number"]),
    (dict(global_pool=3), ["global_pool", "max, avg, or none"]),
    (dict(workers=10_000, loader="torch"), ["workers", "0 to 256"]),
    (dict(epochs=None), ["epochs", "not none"]),
    (dict(channels_last="yes"), ["channels_last", "true or false"]),
    (dict(image_size=4), ["image_size", "8 to 512"]),
    (dict(label_smoothing=1.0), ["label_smoothing"]),
    (dict(residual=(1, 4)), ["residual"]),
    (dict(residual=(2, 2)), ["residual"]),
    (dict(layer_convs=3), ["layer_convs", "1 or 2"]),
    (dict(global_pool="min"), ["global_pool", "max, avg"]),
    (dict(target_acc=1.5), ["target_acc"]),
    (dict(stem="imagenet"), ["stem", "resnet18"]),
    (dict(workers=4), ["workers", "loader 'torch'"]),
    (dict(ghost_bn_splits=3), ["ghost_bn_splits", "divide", "512"]),
    (dict(model="resnet18", residual=()), ["residual", "resnet9 only"]),
    (dict(pool_before_bn=True, downsample="strided"), ["pool_before_bn", "maxpool"]),
    (dict(model="resnet18", downsample="strided1x1"), ["strided1x1", "resnet9 only"]),
    (dict(cutout=40), ["cutout", "32"]),
    (dict(crop_padding=32), ["crop_padding", "32"]),
    (dict(train_subset=100), ["batch_size 512", "100 training images"]),
    (dict(momentum=0.0), ["nesterov", "momentum"]),
    (dict(device="tpu"), ["device", "auto, cpu, cuda"]),
    (dict(seed=-1), ["seed", "2**63-1"]),
    (dict(data_dir=""), ["data_dir"]),
    (dict(train_subset=60_000), ["train_subset", "1 to 50000", "cifar10"]),
    (dict(dataset="fashion-mnist", test_subset=0), ["test_subset", "1 to 10000"]),
])
def test_invalid_values_are_refused_in_one_clear_line(changes, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_replace_validates_and_rejects_unknown_fields():
    cfg = TrainConfig().replace(batch_size=256)
    assert cfg.batch_size == 256
    with pytest.raises(ConfigError, match="unknown config field 'batchsize'"):
        TrainConfig().replace(batchsize=1)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig().replace(batch_size=-1)


def test_dict_round_trip():
    cfg = TrainConfig(residual=(1,), precision="bf16", image_size=48, dataset="fashion-mnist")
    data = cfg.to_dict()
    assert data["residual"] == [1]
    assert TrainConfig.from_dict(data) == cfg
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({**data, "nonsense": 1})
    assert set(data) == set(field_names())


@pytest.mark.parametrize("capability, allowed", [((8, 0), True), ((9, 0), True), ((7, 5), False), ((7, 0), False)])
def test_tf32_needs_an_ampere_or_later_gpu(monkeypatch, capability, allowed):
    import torch

    # A faked GPU of the given compute capability: tf32 exists from 8.0 (Ampere) on.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    if allowed:
        check_device(TrainConfig(precision="tf32"), "cuda")
    else:
        with pytest.raises(ConfigError, match="tf32.*8.0"):
            check_device(TrainConfig(precision="tf32"), "cuda")
    with pytest.raises(ConfigError, match="tf32.*CUDA"):
        check_device(TrainConfig(precision="tf32"), "cpu")


def test_resolve_device_on_a_machine_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the test checks the refusal without one")
    assert resolve_device(TrainConfig(device="auto")).type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device(TrainConfig(device="cuda"))


FLOAT_FIELDS = [s.name for s in field_specs().values() if s.kind is float]


def test_every_float_field_is_found():
    assert {"width", "lr", "momentum", "weight_decay", "warmup_frac", "output_scale", "bn_scale_init",
            "target_acc", "celu_alpha", "label_smoothing"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_every_float_field_refuses_nan_and_inf(name, bad):
    # On the start commit NaN passed every range check (``x <= 0`` is false for NaN) and inf
    # passed the checks without an upper bound (weight_decay, celu_alpha, output_scale...).
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: bad})
    message = str(info.value)
    assert message.startswith(f"{name} must be a finite number") and "\n" not in message


def test_choices_come_from_the_field_annotations():
    assert choices("dataset") == ("cifar10", "fashion-mnist")
    assert choices("device") == ("auto", "cpu", "cuda")
    assert choices("global_pool") == ("max", "avg") and field_specs()["global_pool"].optional
    with pytest.raises(ValueError):
        choices("lr")


def test_annotations_are_read_with_typing_not_parsed_as_text():
    """``X | None`` and ``Optional[X]`` mean the same to the validator."""
    from typing import Optional

    from speedtrain.config import fields as config

    meta = {"help": "", "group": "run"}
    spec = config._spec(dataclasses.field(default=None, metadata=meta), Optional[int], "T")
    assert (spec.kind, spec.optional) == (int, True)
    spec = config._spec(dataclasses.field(default=None, metadata=meta), int | None, "T")
    assert (spec.kind, spec.optional) == (int, True)
    assert field_specs()["image_size"].kind is int and field_specs()["image_size"].optional
    assert field_specs()["residual"].kind is tuple
    with pytest.raises(TypeError):
        config._spec(dataclasses.field(default=None, metadata=meta), list[str], "T")


def test_every_field_has_a_role_group_and_help_groups_follow_it(capsys):
    """The --help groups come from the fields' own group: none can be missed by a separate list."""
    from speedtrain.cli.main import main
    from speedtrain.config.fields import GROUPS, config_field

    specs = field_specs()
    assert {s.group for s in specs.values()} <= set(GROUPS)
    groups = [s.group for s in specs.values()]
    assert groups == sorted(groups, key=list(GROUPS).index), "fields are declared group by group"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name, group in (("whiten", "model"), ("alt_flip", "augmentation"), ("lookahead_every", "optimisation"),
                        ("tta_translate", "augmentation"), ("tta_flip", "augmentation"), ("nproc", "parallel")):
        section = text[text.index(f"{GROUPS[group]} options:"):]
        section = section.split("\n\n")[0]
        assert f"--{name.replace('_', '-')}" in section, (name, group)
    with pytest.raises(ValueError, match="unknown field group"):
        config_field(0, "x", "schedule")
