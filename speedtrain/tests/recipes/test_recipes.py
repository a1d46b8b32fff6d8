"""Recipes by name (issue 21): defined once, valid configs, explicit options win, the CLI's
--recipe / --list-recipes / --help, the README and the benchmark file read the same list."""

import importlib.util
from pathlib import Path

import pytest

from speedtrain.cli import main as cli
from speedtrain.recipes.airbench import AIRBENCH94, LADDER
from speedtrain.recipes.ladder import cumulative
from speedtrain.cli.recipes import apply_recipe
from speedtrain.config.trainconfig import TrainConfig, field_specs
from speedtrain.common.errors import ConfigError
from speedtrain.recipes import RECIPES, get_recipe, recipe_values

ROOT = Path(__file__).resolve().parents[3]


def test_the_required_recipes_exist_with_a_source_and_a_published_figure():
    assert {"myrtle-24ep", "airbench94"} <= set(RECIPES)
    for name, r in RECIPES.items():
        assert r.name == name and r.source.startswith("https://") and any(ch.isdigit() for ch in r.published)
        assert set(r.values) <= set(field_specs())  # config fields only
        TrainConfig(**r.values)  # valid as they stand


def test_recipe_values_are_the_published_recipes():
    myrtle = TrainConfig(**recipe_values("myrtle-24ep"))
    assert (myrtle.model, myrtle.batch_size, myrtle.epochs, myrtle.lr, myrtle.cutout) == ("resnet9", 512, 24, 0.4, 8)
    assert myrtle.warmup_frac == 5 / 24 and myrtle.precision == "half"  # peak at epoch 5 (the default)
    assert RECIPES["airbench94"].values == AIRBENCH94
    hardware = {"precision", "channels_last", "loader"}
    assert {k: v for k, v in AIRBENCH94.items() if k not in hardware} == cumulative(LADDER, len(LADDER) - 1)


def test_explicit_options_override_the_recipe():
    args = cli.build_parser().parse_args(["train", "--recipe", "airbench94", "--precision", "fp32", "--no-whiten"])
    values = apply_recipe(args, {k: v for k, v in vars(args).items() if k in field_specs()})
    assert values["precision"] == "fp32" and values["whiten"] is False  # the user's
    assert values["lookahead_every"] == 5 and values["epochs"] == 9.9  # the recipe's
    plain = cli.build_parser().parse_args(["train", "--epochs", "3"])
    assert apply_recipe(plain, {"epochs": 3}) == {"epochs": 3}  # no recipe: only what was given


def test_unknown_recipe_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--recipe", "airbench95"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown recipe 'airbench95'" in err and "myrtle-24ep" in err
    with pytest.raises(ConfigError, match="unknown recipe 'x'; known recipes: myrtle-24ep"):
        get_recipe("x")


def test_list_recipes_and_help_name_each_recipe_with_source_and_figure(capsys):
    assert cli.main(["train", "--list-recipes"]) == 0
    listing = capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for r in RECIPES.values():
        assert r.name in listing and r.source in listing and r.published in listing
        assert f"{r.name}:" in help_text and r.published in help_text
    assert "--model airbench --whiten" in listing  # the options a recipe sets


def test_readme_lists_every_recipe_with_its_source_and_figure():
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    for r in RECIPES.values():
        assert r.name in rows, f"README has no row for recipe {r.name}"
        assert r.source in rows[r.name] and r.published.split(" (")[0] in rows[r.name]


def test_the_dawnbench_file_takes_its_recipe_cases_from_the_recipes():
    spec = importlib.util.spec_from_file_location("bench_dawnbench", ROOT / "benchmarks" / "test_dawnbench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = {p.id: p.values[0] for p in module.test_dawnbench.pytestmark[0].args[1]}
    assert cases["resnet9-24ep-half"] == RECIPES["myrtle-24ep"].values
    assert cases["airbench94-9.9ep-half"] == RECIPES["airbench94"].values


def test_a_recipe_trains_from_the_cli_with_overrides(tmp_path):
    out = tmp_path / "r.json"
    code = cli.main(["train", "--recipe", "airbench94", "--synthetic", "--device", "cpu", "--precision", "fp32",
                     "--no-channels-last", "--width", "0.125", "--batch-size", "32", "--train-subset", "64",
                     "--test-subset", "32", "--epochs", "1", "--warmup-steps", "0", "--quiet", "--no-monitor",
                     "--json", str(out)])
    assert code == 0
    import json

    config = json.loads(out.read_text())["config"]
    assert config["model"] == "airbench" and config["lookahead_every"] == 5 and config["batch_size"] == 32
