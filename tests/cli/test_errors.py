"""User mistakes get one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_group_option_names_it_and_lists_valid_options(twinids_cli):
    result = twinids_cli("train", "model=transformer")
    assert_one_line_error(result, "'transformer'", "'model'", "lstm")


def test_unknown_config_key_names_it_and_lists_keys_beside_it(twinids_cli):
    result = twinids_cli("train", "data.windw=5")
    assert_one_line_error(result, "data.windw", "window")


def test_override_without_equals_sign_is_refused(twinids_cli):
    assert_one_line_error(twinids_cli("train", "datawindow"), "datawindow")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("data.label_mode=first", "label_mode"),
        ("data.classes=regression", "data.classes"),
        ("data.split.method=random", "split.method"),
    ],
)
def test_bad_data_settings_name_the_config_key(twinids_cli, override, fragment):
    assert_one_line_error(twinids_cli("train", override), fragment)


def test_eval_of_an_unknown_run_says_what_to_pass(twinids_cli):
    assert_one_line_error(twinids_cli("eval", "0123456789abcdef"), "0123456789abcdef", "run id")


def test_eval_of_a_missing_checkpoint_file_names_the_path(twinids_cli):
    assert_one_line_error(twinids_cli("eval", "missing/best.ckpt"), "missing/best.ckpt")


def test_simulate_refuses_an_output_that_is_not_csv(twinids_cli, tmp_path):
    assert_one_line_error(twinids_cli("data", "simulate", "--out", "frame.parquet"), ".csv")
    assert not (tmp_path / "frame.parquet").exists()


def test_cfg_job_prints_the_resolved_config_without_training(twinids_cli, tmp_path):
    result = twinids_cli("train", "--cfg", "job", "data.window=7", "seed=3")
    assert result.returncode == 0, result.stderr
    assert "window: 7" in result.stdout and "seed: 3" in result.stdout
    assert not (tmp_path / "mlruns").exists()


def test_help_lists_the_commands(twinids_cli):
    result = twinids_cli("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "data"):
        assert command in result.stdout


def test_simulate_writes_the_simulator_frame_to_csv(twinids_cli, tmp_path):
    import pandas as pd

    result = twinids_cli("data", "simulate", "--out", "twin.csv", "data.source.n_steps=600")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "twin.csv")
    assert {"device", "time", "label", "attack"} <= set(frame.columns)
    assert frame["label"].isin([0, 1]).all() and frame["device"].nunique() == 6


def test_simulator_settings_too_small_for_the_attacks_are_explained(twinids_cli, tmp_path):
    assert_one_line_error(twinids_cli("data", "simulate", "--out", "twin.csv", "data.source.n_steps=100"), "n_steps")
    assert not (tmp_path / "twin.csv").exists()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (("model.module.net.hidden_size=-3",), "hidden_size"),
        (("model=random_forest", "model.estimator.n_estimators=0"), "n_estimators"),
    ],
)
def test_bad_model_settings_are_refused_before_any_run_is_created(twinids_cli, tmp_path, overrides, fragment):
    assert_one_line_error(twinids_cli("train", "data.source.n_steps=800", *overrides), fragment)
    assert not (tmp_path / "outputs").exists()
    assert not (tmp_path / "mlruns").exists()  # no MLflow store, so no FAILED run either


def test_audit_exits_non_zero_on_the_raw_ton_iot_files_and_zero_on_the_loaded_frame(twinids_cli, shared_datasets):
    raw = twinids_cli(
        "data", "audit", "ton_iot", "--raw", f"data.root={shared_datasets}", "data.source.devices=[fridge,garage_door]"
    )
    assert raw.returncode == 1, raw.stderr
    assert "LEAK: ts" in raw.stdout and "FAILED" in raw.stdout
    loaded = twinids_cli(
        "data", "audit", "ton_iot", f"data.root={shared_datasets}", "data.source.devices=[fridge,garage_door]"
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "PASSED" in loaded.stdout


def test_cfg_all_is_refused_in_one_line_since_only_the_job_config_exists(twinids_cli):
    assert_one_line_error(twinids_cli("train", "--cfg", "all"), "--cfg takes 'job'")


def test_an_empty_device_selection_is_refused_not_replaced_by_the_defaults(twinids_cli, shared_datasets):
    result = twinids_cli("data", "inspect", "ton_iot", f"data.root={shared_datasets}", "data.source.devices={}")
    assert_one_line_error(result, "data.source.devices")
    result = twinids_cli("data", "inspect", "ton_iot", f"data.root={shared_datasets}", "data.source.devices=[]")
    assert_one_line_error(result, "data.source.devices is empty")


def test_a_csv_whose_header_repeats_a_column_name_is_refused(twinids_cli, tmp_path):
    (tmp_path / "plant.csv").write_text("x,x,label\n1,2,0\n3,4,1\n")
    result = twinids_cli("data", "inspect", "csv", f"data.root={tmp_path}", "data.source.path=plant.csv")
    assert_one_line_error(result, "repeats column name", "'x'")


@pytest.mark.parametrize(
    ("command", "spec_file", "fragment"),
    [
        (["tune", "broken"], "configs/search/broken.yaml", "not valid YAML at line 2"),
        (["tune", "broken"], "configs/search/broken.yaml", "an interpolation does not resolve"),
        (["reproduce", "broken"], "experiments/broken.yaml", "not valid YAML at line 2"),
    ],
)
def test_a_user_spec_file_that_is_not_yaml_or_does_not_resolve_is_one_line(
    twinids_cli, tmp_path, command, spec_file, fragment
):
    path = tmp_path / spec_file
    path.parent.mkdir(parents=True)
    path.write_text("metric: ${missing}\n" if "interpolation" in fragment else "metric: [a\n")
    result = twinids_cli(*command)
    assert_one_line_error(result, "broken.yaml", fragment)
    assert "internal error" not in result.stderr and not (tmp_path / "mlruns").exists()


def test_zero_epochs_is_refused_before_any_run_is_created(twinids_cli, tmp_path):
    # It once trained nothing and ended FAILED: "training saved no checkpoint".
    result = twinids_cli("train", "data.source.n_steps=800", "trainer.max_epochs=0")
    assert_one_line_error(result, "trainer.max_epochs must be at least 1", "got 0")
    assert not (tmp_path / "mlruns").exists()
