"""Reading and writing checkpoint files as data: nothing a checkpoint holds may run code when it is loaded.

Checkpoints may come from a shared tracking server that anyone with write access can fill. Neural
checkpoints are read with `torch.load(weights_only=True)`; scikit-learn models are stored with skops,
whose loader builds only audited types, and decision trees are bounds-checked before they are used.
Pickle-based files (`.joblib`, a `.ckpt` holding objects) are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError
from twinids.training.model_card import CARD_KEY, ModelCard

TORCH_SUFFIX = ".ckpt"
SKLEARN_SUFFIX = ".skops"
TRUSTED_SKLEARN_TYPES = ("sklearn.tree._tree.Tree",)  # safe once `check_tree_bounds` has passed


def load_torch_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint as plain data (tensors, dicts, lists, numbers, strings)."""
    import pickle

    import torch

    _require_file(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else "not plain data"
        raise TwinIDSError(
            f"refused to load {path}: it is not a plain-data checkpoint and loading it could run code ({reason})"
        ) from None
    except Exception as error:  # truncated files, other formats
        raise TwinIDSError(f"cannot read checkpoint {path}: {_first_line(error)}") from None
    if not isinstance(checkpoint, dict) or CARD_KEY not in checkpoint:
        raise TwinIDSError(f"{path} is not a twinids checkpoint (no model card inside)")
    return checkpoint


def save_torch_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Write a checkpoint dict atomically (a partial file never replaces a good one)."""
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def save_sklearn_checkpoint(estimator: Any, card: ModelCard, path: Path) -> None:
    """Write a fitted estimator and its card with skops (no pickle)."""
    import skops.io

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    skops.io.dump({"estimator": estimator, CARD_KEY: card.to_dict()}, partial)
    partial.replace(path)


def load_sklearn_checkpoint(path: Path) -> dict[str, Any]:
    """A skops checkpoint's estimator and card; refuses types outside skops's trusted set and decision trees."""
    import skops.io

    _require_file(path)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as error:
        raise TwinIDSError(f"cannot read checkpoint {path}: {_first_line(error)}") from None
    unknown = sorted(set(untrusted) - set(TRUSTED_SKLEARN_TYPES))
    if unknown:
        raise TwinIDSError(f"refused to load {path}: it holds types outside the audited set: {', '.join(unknown)}")
    try:
        content = skops.io.load(path, trusted=list(untrusted))
    except Exception as error:
        raise TwinIDSError(f"cannot read checkpoint {path}: {_first_line(error)}") from None
    if not isinstance(content, dict) or CARD_KEY not in content or "estimator" not in content:
        raise TwinIDSError(f"{path} is not a twinids checkpoint (no model card inside)")
    check_tree_bounds(content["estimator"], path)
    return content


def check_tree_bounds(estimator: Any, path: Path) -> None:
    """Refuse decision trees whose node links or features point outside their arrays.

    scikit-learn indexes tree arrays without bounds checks, so a crafted file could make `predict` read
    out of bounds; a tree that passes this check is an ordinary tree.
    """
    import numpy as np

    trees = [e.tree_ for e in getattr(estimator, "estimators_", []) if hasattr(e, "tree_")]
    if hasattr(estimator, "tree_"):
        trees.append(estimator.tree_)
    n_features = getattr(estimator, "n_features_in_", None)
    for tree in trees:
        nodes = tree.node_count
        left, right, feature = tree.children_left, tree.children_right, tree.feature
        leaf = left == -1
        parent = np.arange(len(left))[~leaf]
        sound = (
            len(left) == len(right) == len(feature) == nodes
            and np.array_equal(leaf, right == -1)
            # scikit-learn numbers children after their parent: links forward only, so no cycles either
            and (
                (left[~leaf] > parent) & (left[~leaf] < nodes) & (right[~leaf] > parent) & (right[~leaf] < nodes)
            ).all()
            and ((feature[~leaf] >= 0) & (feature[~leaf] < (n_features or tree.n_features))).all()
            and tree.value.shape[0] == nodes
        )
        if not sound:
            raise TwinIDSError(f"refused to load {path}: a decision tree inside has node links out of bounds")


def read_card(path: Path) -> ModelCard:
    """The model card stored in a twinids checkpoint of either kind."""
    if path.suffix == ".joblib":
        raise TwinIDSError(
            f"refused to load {path}: joblib files are pickles and can run code when loaded; retrain the model "
            f"(twinids now stores scikit-learn models as {SKLEARN_SUFFIX})"
        )
    if path.suffix == SKLEARN_SUFFIX:
        return ModelCard.from_dict(load_sklearn_checkpoint(path)[CARD_KEY], path)
    return ModelCard.from_dict(load_torch_checkpoint(path)[CARD_KEY], path)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise TwinIDSError(f"checkpoint not found: {path}")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
