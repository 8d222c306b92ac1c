"""Splits whose metrics would be undefined are refused before any run; allowed on request, metrics go absent."""

from __future__ import annotations

import pytest

from twinids.config import compose
from twinids.data.registry import build_windows
from twinids.errors import TwinIDSError


def fridge(shared_datasets, *overrides: str):
    return compose(
        [
            "data=ton_iot",
            f"data.root={shared_datasets}",
            "data.source.devices=[fridge]",
            "data.split.method=chronological",
            *overrides,
        ]
    ).data


def test_a_val_split_of_attack_windows_only_is_refused_naming_counts_and_a_protocol_that_works(shared_datasets):
    with pytest.raises(TwinIDSError) as refused:
        build_windows(fridge(shared_datasets))
    message = str(refused.value)
    assert "'val' split holds normal 0, attack" in message
    assert "data.split.method=predefined" in message and "data.allow_undefined_metrics=true" in message


def test_the_dataset_protocol_the_refusal_names_is_accepted(shared_datasets):
    data = build_windows(fridge(shared_datasets, "data.split.method=predefined"))
    for split in ("val", "test"):
        counts = data.class_counts(split)
        assert counts[0] > 0 and counts[1:].sum() > 0


def test_when_allowed_the_split_is_kept_as_it_is(shared_datasets):
    data = build_windows(fridge(shared_datasets, "data.allow_undefined_metrics=true"))
    assert data.class_counts("val")[0] == 0


def test_the_train_command_refuses_it_before_any_run(twinids_cli, shared_datasets, tmp_path):
    result = twinids_cli(
        "train",
        "data=ton_iot",
        f"data.root={shared_datasets}",
        "data.source.devices=[fridge]",
        "model=random_forest",
        "data.split.method=chronological",
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "'val' split holds" in lines[0]
    assert not (tmp_path / "mlruns").exists()
