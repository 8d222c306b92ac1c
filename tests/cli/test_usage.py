"""Command-line usage mistakes (wrong command, missing argument, unknown option) print click's usage and exit 2."""

from __future__ import annotations

import pytest


def assert_usage_error(result, command: str, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Usage: twinids {command}".rstrip() in result.stderr, result.stderr
    assert "Try 'twinids" in result.stderr and "--help' for help." in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for fragment in fragments:  # click words these with or without quotes, capitals, a colon
        assert fragment.lower() in result.stderr.lower().replace("'", "").replace(":", ""), result.stderr


def test_a_misspelt_command_suggests_the_right_one(twinids_cli):
    assert_usage_error(twinids_cli("trian"), "", "No such command trian", "Did you mean train?")


def test_eval_without_a_run_names_the_missing_argument(twinids_cli):
    assert_usage_error(twinids_cli("eval"), "eval", "Missing argument source")


@pytest.mark.parametrize(
    ("args", "command"),
    [(("--bogus",), ""), (("bench", "--bogus"), "bench"), (("data", "list", "--bogus"), "data list")],
)
def test_an_unknown_option_is_named(twinids_cli, args, command):
    assert_usage_error(twinids_cli(*args), command, "No such option --bogus")


def test_a_misspelt_data_subcommand_suggests_the_right_one(twinids_cli):
    assert_usage_error(twinids_cli("data", "lsit"), "data", "No such command lsit", "Did you mean list?")
