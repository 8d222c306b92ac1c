"""From a tidy frame to encoded rows and per-split windows: sort, split, encode on train, window, label."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twinids.data.encoding import FeatureEncoder
from twinids.data.frame import (
    ATTACK,
    DEVICE,
    LABEL,
    NORMAL,
    SEGMENT,
    SPLIT,
    SPLITS,
    TIME,
    UNORDERED_ROWS,
    feature_columns,
)
from twinids.data.splits import assign_splits, check_splits_present
from twinids.data.views import View, resolve_view
from twinids.data.windows import LABEL_MODES, run_boundaries, window_label_rows, window_starts
from twinids.errors import TwinIDSError, require_integer, require_number

CLASS_SETS = ("binary", "multiclass")
TRAIN_ON = ("all", "normal")


@dataclass(frozen=True)
class WindowSettings:
    """How rows become windows and targets: the `data` config group (defaults: configs/data/common/windows.yaml)."""

    window: int
    stride: int
    label_mode: str
    classes: str
    split_method: str
    val_fraction: float
    test_fraction: float
    val_devices: tuple[str, ...]
    test_devices: tuple[str, ...]
    scaler: str
    train_on: str
    drop_features: tuple[str, ...]
    view: View  # the features a detector reads (`data.view` among `data.views`); the rows and splits stay as they are
    holdout_attacks: tuple[str, ...]  # attack types kept out of training and validation windows (test keeps them)

    def __post_init__(self) -> None:
        require_integer(self.window, "data.window", 1)
        require_integer(self.stride, "data.stride", 1)
        if self.label_mode not in LABEL_MODES:
            raise TwinIDSError(f"unknown data.label_mode '{self.label_mode}'; valid: {', '.join(LABEL_MODES)}")
        if self.classes not in CLASS_SETS:
            raise TwinIDSError(f"unknown data.classes '{self.classes}'; valid: {', '.join(CLASS_SETS)}")
        if self.train_on not in TRAIN_ON:
            raise TwinIDSError(
                f"unknown data.train_on '{self.train_on}'; valid: all (every training window, for supervised "
                "detectors) | normal (only windows without an attacked row, for one-class detectors)"
            )

    @classmethod
    def from_config(cls, data_cfg: object) -> WindowSettings:
        """The settings of a `data` config node (every key is required: its defaults live in the YAML)."""
        split = data_cfg.split  # type: ignore[attr-defined]
        return cls(
            window=require_integer(data_cfg.window, "data.window", 1),  # type: ignore[attr-defined,arg-type]
            stride=require_integer(data_cfg.stride, "data.stride", 1),  # type: ignore[attr-defined,arg-type]
            label_mode=str(data_cfg.label_mode),  # type: ignore[attr-defined]
            classes=str(data_cfg.classes),  # type: ignore[attr-defined]
            split_method=str(split.method),
            val_fraction=require_number(split.val_fraction, "data.split.val_fraction"),
            test_fraction=require_number(split.test_fraction, "data.split.test_fraction"),
            val_devices=tuple(str(d) for d in split.val_devices or ()),
            test_devices=tuple(str(d) for d in split.test_devices or ()),
            scaler=str(data_cfg.scaler),  # type: ignore[attr-defined]
            train_on=str(data_cfg.train_on),  # type: ignore[attr-defined]
            drop_features=tuple(str(c) for c in data_cfg.drop_features or ()),  # type: ignore[attr-defined]
            view=resolve_view(data_cfg),
            holdout_attacks=_names(data_cfg.holdout_attacks, "data.holdout_attacks"),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class WindowedData:
    """Encoded rows of all splits in one array, and for each split the window starts, targets and attack types.

    `attacks[split]` holds, per window, an index into `attack_names` (0 = normal): the attack type of the
    row that gave the window its label, so that recall can be reported per attack type. `groups[split]` holds,
    per window, the index of its run (a stretch of one device's readings in one segment and split): windows of
    one group are consecutive in time, so episodes and smoothing never cross devices. `source_files`
    names the files the data came from (empty for generated data), for the run's data fingerprint.
    `row_attacks`, `row_times` and `row_devices` say, per row, its attack type, time and device, and `encoder`
    (fitted on the training rows) encodes new readings and turns encoded values back into the frame's units: what
    an attacker who rewrites readings (`twinids attack`) and a stream detector (`twinids detect`) need.
    """

    rows: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    window: int
    starts: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    attacks: dict[str, np.ndarray]
    attack_names: list[str]
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    devices: dict[str, list[str]] = field(default_factory=dict)
    source_files: tuple[str, ...] = ()
    row_attacks: np.ndarray | None = None  # per row: index into `attack_names` (0 = normal), for attacks on rows
    row_times: np.ndarray | None = None  # per row: the frame's time value, for attacks that replay by phase
    row_devices: np.ndarray | None = None  # per row: the frame's device, for limits and twins per device
    encoder: FeatureEncoder | None = None  # fitted on the training rows: encodes new readings as `rows` were

    @property
    def decoding(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per feature (offset, scale) with raw = offset + scale * row (None without the encoder)."""
        return None if self.encoder is None else self.encoder.decoding()

    @property
    def n_features(self) -> int:
        """Width of one encoded row."""
        return self.rows.shape[1]

    def windows(self, split: str) -> np.ndarray:
        """All windows of a split as one (windows, time, features) array (a copy: for classical models)."""
        starts = self.starts[split]
        return self.rows[starts[:, None] + np.arange(self.window)]

    def class_counts(self, split: str) -> np.ndarray:
        """Number of windows of each class in a split."""
        return np.bincount(self.targets[split], minlength=len(self.class_names))


def prepare_windows(
    frame: pd.DataFrame, settings: WindowSettings, encoder: FeatureEncoder | None = None
) -> WindowedData:
    """Build leakage-free windows: splits assigned on time-ordered rows, encoder fitted on train rows only.

    With `encoder` (a trained run's, when the run is tested on other data) the rows are encoded as the run's
    training rows were, and nothing is fitted here: a detector reads its inputs only through its own encoder.

    With `train_on="normal"` (the one-class protocol) the training split keeps only windows none of whose rows
    is attacked, and the encoder is fitted on normal training rows: a detector of normal behaviour never sees
    an attack while it learns. Validation and test windows are kept whatever their rows. With `holdout_attacks`,
    training and validation keep no window holding a row of those attack types and the encoder never sees one;
    the test split keeps them, as attacks the detector never saw.
    """
    if frame.attrs.get(UNORDERED_ROWS) and settings.window > 1:
        raise TwinIDSError(
            f"this dataset's rows are independent records with no time order, so a window of {settings.window} "
            "rows would group unrelated records; use data.window=1"
        )
    order = np.lexsort((frame[TIME].to_numpy(), pd.factorize(frame[DEVICE], sort=True)[0]))
    if not np.array_equal(order, np.arange(len(frame))):  # sources usually deliver sorted rows: skip the copy
        frame = frame.iloc[order]
    frame = frame.reset_index(drop=True)
    split = assign_splits(
        frame,
        settings.split_method,
        settings.val_fraction,
        settings.test_fraction,
        settings.val_devices,
        settings.test_devices,
    )
    check_splits_present(split)
    attack_names, row_attacks = _attack_codes(frame)
    held_out = _held_out_rows(row_attacks, attack_names, settings.holdout_attacks)
    train_mask = (split == "train") & ~held_out
    attacked = frame[LABEL].to_numpy() != 0
    encoder_rows = train_mask & ~attacked if settings.train_on == "normal" else train_mask
    if not encoder_rows.any():
        raise TwinIDSError(_no_normal_training(settings.window))

    features = _kept_features(feature_columns(frame), settings.drop_features, settings.view)
    if encoder is None:
        encoder = FeatureEncoder(settings.scaler).fit(frame.loc[encoder_rows, features])
    elif set(encoder.columns) != set(features):
        missing, added = sorted(set(encoder.columns) - set(features)), sorted(set(features) - set(encoder.columns))
        raise TwinIDSError(f"the data's features are not the run's: it lacks {missing} and adds {added}")
    rows = encoder.transform(frame[features])

    class_names, row_codes = _class_codes(frame, train_mask, settings.classes)
    segment = frame[SEGMENT].to_numpy() if SEGMENT in frame.columns else np.zeros(len(frame), dtype=np.int64)
    boundaries = run_boundaries(frame[DEVICE].to_numpy(dtype=object), segment, split)
    starts = window_starts(boundaries, settings.window, settings.stride)
    if settings.train_on == "normal":
        starts = starts[(split[starts] != "train") | _none_flagged(attacked, starts, settings.window)]
    if held_out.any():
        starts = starts[(split[starts] == "test") | _none_flagged(held_out, starts, settings.window)]
    split_of_window = split[starts]
    run_of_window = np.searchsorted(boundaries, starts, side="right") - 1
    by_split = {name: starts[split_of_window == name] for name in SPLITS}
    groups = {name: run_of_window[split_of_window == name].astype(np.int64) for name in SPLITS}
    label_rows = {
        name: window_label_rows(row_codes, s, settings.window, settings.label_mode) for name, s in by_split.items()
    }
    targets = {name: row_codes[rows_].astype(np.int64) for name, rows_ in label_rows.items()}
    attacks = {name: row_attacks[rows_].astype(np.int64) for name, rows_ in label_rows.items()}
    if settings.train_on == "normal" and len(by_split["train"]) == 0:
        raise TwinIDSError(_no_normal_training(settings.window))
    for name in SPLITS:
        if len(by_split[name]) == 0:
            raise TwinIDSError(
                f"the '{name}' split has no window of {settings.window} rows; lower data.window or "
                "give that split more rows (data.split)"
            )
    if settings.train_on == "all" and len(np.unique(targets["train"])) < 2:
        raise TwinIDSError(
            "the training windows hold only one class; a supervised detector needs normal and attack examples "
            "(check the dataset's labels or data.split; one-class detectors train with data.train_on=normal)"
        )
    devices = {name: sorted(frame.loc[split == name, DEVICE].unique().tolist()) for name in SPLITS}
    return WindowedData(
        rows,
        encoder.feature_names,
        class_names,
        settings.window,
        by_split,
        targets,
        attacks,
        attack_names,
        groups,
        devices,
        row_attacks=row_attacks,
        row_times=frame[TIME].to_numpy(),
        row_devices=frame[DEVICE].to_numpy(dtype=object),
        encoder=encoder,
    )


def _kept_features(features: list[str], dropped: tuple[str, ...], view: View) -> list[str]:
    """The frame's feature columns in `view` less `data.drop_features`, refusing names the frame lacks.

    The one place a run's columns are chosen: the encoder, `feature_names` and a net's input size all follow it.
    """
    unknown = sorted(set(dropped) - set(features))
    if unknown:
        raise TwinIDSError(f"data.drop_features names {unknown}, which are not features here; features: {features}")
    kept = [column for column in view.select(features) if column not in dropped]
    if not kept:
        raise TwinIDSError(f"data.drop_features leaves no feature of view {view.name}; keep at least one")
    return kept


def _none_flagged(flagged: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Whether each window starting at `starts` holds no flagged row (e.g. no attacked row)."""
    flagged_before = np.concatenate(([0], np.cumsum(flagged)))
    return flagged_before[starts + window] == flagged_before[starts]


def _names(value: object, key: str) -> tuple[str, ...]:
    """A config list of names (null: none), refusing a bare string, which would be read letter by letter."""
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(item, str) for item in value):  # type: ignore[attr-defined]
        raise TwinIDSError(f"{key} must be a list of names, e.g. {key}=[replay]; got {value!r}")
    return tuple(value)  # type: ignore[arg-type]


def _held_out_rows(row_attacks: np.ndarray, attack_names: list[str], held: tuple[str, ...]) -> np.ndarray:
    """Which rows are of a held-out attack type; names the data lacks are refused, listing those it has."""
    unknown = sorted(set(held) - set(attack_names[1:]))
    if unknown:
        raise TwinIDSError(
            f"data.holdout_attacks names {unknown}, which are not attack types of this data; its attack types: "
            f"{attack_names[1:]}"
        )
    codes = [attack_names.index(name) for name in held]
    return np.isin(row_attacks, codes)


def _no_normal_training(window: int) -> str:
    """The refusal of data.train_on=normal when the training split has no all-normal window."""
    return (
        f"data.train_on=normal, but the training split holds no window of {window} rows without an attacked row; "
        "a one-class detector learns from normal windows only: lower data.window, change data.split, or choose "
        "a protocol with normal training data (BATADAL: data.source.protocol=standard)"
    )


def check_evaluable(data: WindowedData, split_method: str, has_predefined_split: bool, splits: tuple[str, ...]) -> None:
    """Refuse splits whose metrics would be undefined: macro-F1, AUROC and FPR need normal and attack windows.

    Raises:
        TwinIDSError: naming the split, its class counts, and a protocol that may work.
    """
    for split in splits:
        counts = data.class_counts(split)
        normal, attack = int(counts[0]), int(counts[1:].sum())
        if normal and attack:
            continue
        shown = ", ".join(f"{name} {int(c)}" for name, c in zip(data.class_names, counts, strict=True))
        if split_method != "predefined" and has_predefined_split:
            remedy = "use the dataset's own protocol (data.split.method=predefined)"
        else:
            remedy = "change data.split (another method, fractions or devices)"
        raise TwinIDSError(
            f"the '{split}' split holds {shown} windows: macro-F1, AUROC and FPR need both normal and attack "
            f"windows there; {remedy}, or set data.allow_undefined_metrics=true to log them as absent"
        )


def has_split_column(frame: pd.DataFrame) -> bool:
    """Whether a frame carries the dataset's own train/val/test assignment."""
    return SPLIT in frame.columns


def _class_codes(frame: pd.DataFrame, train_mask: np.ndarray, classes: str) -> tuple[list[str], np.ndarray]:
    """Class names (normal first) and each row's class code; multiclass classes are those seen in training."""
    labels = frame[LABEL].to_numpy().astype(np.int64)
    if classes == "binary":
        return [NORMAL, "attack"], labels
    names = _attack_name_per_row(frame)
    attack_names = sorted(set(names[train_mask]) - {NORMAL})
    class_names = [NORMAL, *attack_names]
    unseen = sorted(set(names[~train_mask]) - set(class_names))
    if unseen:
        raise TwinIDSError(
            f"attack types {unseen} appear in val/test but never in training, so multiclass targets are "
            "undefined; use data.classes=binary or a coarser attack grouping for this dataset"
        )
    return class_names, _codes(names, class_names)


def _attack_codes(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Attack type names over all splits (normal first) and each row's index into them.

    Factorises the column rather than building one Python string per row (those held about 0.8x the encoded
    array at once): a normal-labelled row is normal whatever its `attack` cell says.
    """
    attacked = frame[LABEL].to_numpy() != 0
    codes, uniques = pd.factorize(frame[ATTACK], use_na_sentinel=False)
    names = pd.Index(uniques).astype(str)
    attack_names = [NORMAL, *sorted(set(names[np.unique(codes[attacked])]) - {NORMAL})]
    position = {name: index for index, name in enumerate(attack_names)}
    lookup = np.array([position.get(name, 0) for name in names], dtype=np.int64)
    return attack_names, np.where(attacked, lookup[codes], 0)


def _codes(names: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """Each name's index in `vocabulary` (every name must be in it), vectorised through pandas."""
    codes = pd.Categorical(names, categories=vocabulary).codes.astype(np.int64)
    if (codes < 0).any():  # pandas codes a name outside the categories as -1
        raise ValueError(f"names outside {vocabulary}: {sorted(set(names[codes < 0]))[:5]}")
    return codes


def _attack_name_per_row(frame: pd.DataFrame) -> np.ndarray:
    """The `attack` column, with every normal-labelled row called normal."""
    labels = frame[LABEL].to_numpy()
    return np.where(labels == 0, NORMAL, frame[ATTACK].astype(str).to_numpy()).astype(object)
