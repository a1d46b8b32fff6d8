"""Options two front ends share refuse the same values; seed counts are capped and print
compactly; --help and the README give --st-seeds auto one range (issue 22)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

from speedtrain.suite import plugin as pytest_plugin
from speedtrain.common.errors import ConfigError
from speedtrain.stats.option_rules import AUTO_RANGE, compact_seeds, seed_count, threshold_fraction
from speedtrain.recipes.profiles import PROFILES
from speedtrain.stats.seeding import MAX_SEEDS, MIN_SEEDS
from speedtrain.suite.session import SuiteSession, parse_seeds

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("value", [0, 1, -0.1, 5, "0", "1.0", "nan", "x", None])
def test_threshold_is_strictly_between_0_and_1(value) -> None:
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        threshold_fraction(value, "--st-threshold")


@pytest.mark.parametrize("value, expected", [("0.05", 0.05), (0.5, 0.5), ("1e-3", 0.001)])
def test_a_threshold_in_range_is_its_number(value, expected) -> None:
    assert threshold_fraction(value, "--threshold") == expected


@pytest.mark.parametrize("text", ["0", "-1", str(MAX_SEEDS + 1), "1000", "many", "2.5"])
def test_seed_counts_outside_1_to_the_cap_are_refused(text) -> None:
    with pytest.raises(ConfigError, match=f"from 1 to {MAX_SEEDS}"):
        seed_count(text)
    with pytest.raises(pytest.UsageError, match="--st-seeds"):
        parse_seeds(text)


def test_seed_counts_up_to_the_cap_and_auto_are_accepted() -> None:
    assert seed_count("1") == 1 and seed_count(str(MAX_SEEDS)) == MAX_SEEDS and seed_count("auto") == "auto"
    assert parse_seeds(None) is None


def test_seed_lists_print_as_ranges() -> None:
    assert compact_seeds(range(1000)) == "0-999"
    assert compact_seeds([0, 1, 2, 3, 7, 9, 10]) == "0-3, 7, 9-10"
    assert compact_seeds([5]) == "5" and compact_seeds([]) == "none"
    session = SuiteSession(PROFILES["quick"], list(range(MAX_SEEDS)), "b.json")
    assert session.seeds_label() == f"0-{MAX_SEEDS - 1}"


def test_help_and_readme_give_auto_one_range() -> None:
    assert AUTO_RANGE == f"{MIN_SEEDS}-{MAX_SEEDS}"
    parser = Parser(_ispytest=True)
    pytest_plugin.pytest_addoption(parser)
    (option,) = [o for o in parser.getgroup("speedtrain").options if "--st-seeds" in o.names()]
    help_text = option.attrs()["help"]
    readme = (ROOT / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `--st-seeds")]
    ranges = {"help": re.findall(r"\((\d+-\d+)\)", help_text), "README": re.findall(r"\((\d+-\d+)\)", row)}
    assert ranges == {"help": [AUTO_RANGE], "README": [AUTO_RANGE]}
    assert f"1 to {MAX_SEEDS}" in help_text and f"1 to {MAX_SEEDS}" in row
