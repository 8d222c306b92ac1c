"""Sweep expansion with Hydra's override parser: lists, range() and glob() become the jobs of a sweep."""

from __future__ import annotations

import pytest

from twinids.config import group_options
from twinids.errors import TwinIDSError
from twinids.launch.sweep_plan import expand_sweep

OPTIONS = {"model": ["lstm", "lstm_sae_mha", "random_forest"], "data": ["nsl_kdd", "unsw_nb15", "synthetic_twin"]}


def expand(*overrides: str) -> list[list[str]]:
    return expand_sweep(overrides, group_options=lambda group: OPTIONS.get(group, []))


def test_lists_and_range_expand_to_their_cartesian_product_in_the_order_given():
    jobs = expand("model=lstm,random_forest", "data=nsl_kdd,unsw_nb15", "seed=range(3)")
    assert len(jobs) == 12
    assert jobs[:4] == [
        ["model=lstm", "data=nsl_kdd", "seed=0"],
        ["model=lstm", "data=nsl_kdd", "seed=1"],
        ["model=lstm", "data=nsl_kdd", "seed=2"],
        ["model=lstm", "data=unsw_nb15", "seed=0"],
    ]
    assert jobs[-1] == ["model=random_forest", "data=unsw_nb15", "seed=2"]


def test_glob_selects_a_groups_options_by_pattern():
    assert expand("model=glob(lstm*)") == [["model=lstm"], ["model=lstm_sae_mha"]]
    assert expand("model=glob(*,exclude=lstm*)") == [["model=random_forest"]]


def test_plain_overrides_pass_through_unchanged_into_every_job():
    jobs = expand("+extra=1", "~callbacks", "data.window=10", "run_name='a,b'", "privacy.target_epsilon=1,8")
    assert jobs == [
        ["+extra=1", "~callbacks", "data.window=10", "run_name='a,b'", "privacy.target_epsilon=1"],
        ["+extra=1", "~callbacks", "data.window=10", "run_name='a,b'", "privacy.target_epsilon=8"],
    ]


def test_no_overrides_is_one_job_of_defaults():
    assert expand() == [[]]


@pytest.mark.parametrize("override", ["model=lstmx", "model=lstm,lstmx"])
def test_an_option_a_group_does_not_have_is_named_with_the_options(override):
    with pytest.raises(TwinIDSError) as refused:
        expand(override)
    assert str(refused.value) == (
        f"'{override}': unknown option 'lstmx' for config group 'model'; options: lstm, lstm_sae_mha, random_forest"
    )


def test_a_glob_matching_no_option_is_refused():
    with pytest.raises(TwinIDSError, match=r"'model=glob\(zz\*\)' matches no option of config group 'model'; options"):
        expand("model=glob(zz*)")


def test_glob_on_a_key_that_is_not_a_group_is_refused():
    with pytest.raises(TwinIDSError, match="glob\\(\\) selects options of a config group; 'seed' is not one"):
        expand("seed=glob(1*)")


def test_interval_is_a_search_space_not_a_sweep():
    with pytest.raises(TwinIDSError, match="interval\\(\\) is a search space for tuning"):
        expand("model.optimizer.lr=interval(0.001,0.1)")


def test_an_unparseable_override_is_named():
    with pytest.raises(TwinIDSError, match="cannot parse override 'seed'"):
        expand("seed")


def test_group_options_come_from_the_config_tree_by_default():
    assert expand_sweep(["model=glob(*)"]) == [[f"model={option}"] for option in group_options("model")]
    assert len(group_options("model")) >= 2
