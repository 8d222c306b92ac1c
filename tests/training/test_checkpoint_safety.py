"""Checkpoints are data, not code: a crafted file never runs its payload; it is refused in one line."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from twinids.errors import TwinIDSError
from twinids.training.checkpoint_io import check_tree_bounds, load_sklearn_checkpoint, read_card


class _Payload:
    """Unpickling this writes a marker file: what a hostile checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_ckpt_whose_unpickling_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "best.ckpt"
    torch.save({"twinids": {"config": {}}, "state_dict": {}, "evil": _Payload(marker)}, path)
    with pytest.raises(TwinIDSError, match=r"refused to load .*could run code"):
        read_card(path)
    assert not marker.exists()


def test_a_joblib_file_is_refused_without_being_opened(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "best.joblib"
    path.write_bytes(pickle.dumps({"estimator": _Payload(marker)}))
    with pytest.raises(TwinIDSError, match="joblib files are pickles"):
        read_card(path)
    assert not marker.exists()


def test_a_skops_file_with_types_outside_the_audited_set_is_refused(tmp_path):
    import skops.io

    path = tmp_path / "best.skops"
    skops.io.dump({"estimator": _Audited(), "twinids": {}}, path)
    with pytest.raises(TwinIDSError, match="outside the audited set"):
        load_sklearn_checkpoint(path)


class _Audited:
    """A class skops does not trust by default."""


def test_a_decision_tree_with_links_out_of_bounds_is_refused(tmp_path):
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=2).fit(np.arange(20).reshape(10, 2), np.arange(10) % 2)
    check_tree_bounds(tree, tmp_path / "ok.skops")  # an ordinary tree passes
    tree.tree_.children_left[0] = 10_000  # what a crafted file could hold: a link past the node array
    with pytest.raises(TwinIDSError, match="out of bounds"):
        check_tree_bounds(tree, tmp_path / "crafted.skops")


def test_eval_of_a_crafted_checkpoint_prints_one_line_and_runs_nothing(twinids_cli, tmp_path):
    marker = tmp_path / "owned"
    torch.save({"twinids": {}, "evil": _Payload(marker)}, tmp_path / "best.ckpt")
    result = twinids_cli("eval", str(tmp_path / "best.ckpt"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "refused to load" in result.stderr
    assert not marker.exists()
