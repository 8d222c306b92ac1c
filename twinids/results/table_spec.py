"""One paper table, declared in `experiments/<table>.yaml`: the sweeps that feed it and how it is laid out.

```yaml
caption: Detection on every dataset ...
sweeps:                       # each a list of overrides with sweep syntax, as `twinids sweep` takes them
  - ["data=synthetic_twin,nsl_kdd", "model=lstm,random_forest", "seed=0,1,2"]
rows: [data.name, model.name] # config keys: one row per combination (seeds are averaged, mean ± std)
metrics: [test/accuracy, test/f1_macro]   # one column each
figure: {metric: test/f1_macro, x: privacy.target_epsilon}   # optional: compare's plot of one metric
mix_data: true                # average runs made from different data (the simulator draws new data per seed)
audits: [[attack=lira]]       # optional: `twinids audit` run on every run (figures added to those runs)
attacks: [["method=replay,iterative", "sensors=2,all"]]  # optional: `twinids attack` on every run; the table
                              # is made of the attack runs (attack seed: the detector's, unless given)
responses: [["attack=replay,none"]]  # optional, instead of attacks: `twinids respond` on every run; the table is
                              # made of the response runs
quick:                        # a variant that runs in minutes: replaces sweeps (and caption, if given)
  sweeps: [["experiment=smoke", "data=synthetic_twin", "model=lstm,random_forest", "seed=0"]]
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError

TABLES_DIR = "experiments"
KNOWN_KEYS = {
    "caption",
    "sweeps",
    "rows",
    "metrics",
    "figure",
    "mix_data",
    "quick",
    "audits",
    "attacks",
    "responses",
    "command",
}
COMMANDS = ("train", "federate")  # what the jobs of a table's sweeps run


@dataclass(frozen=True)
class TableSpec:
    """A table (its full or its quick variant): sweeps to run, row keys, metric columns, caption and figure."""

    name: str
    path: Path
    caption: str
    sweeps: list[list[str]]
    rows: list[str]
    metrics: list[str]
    figure: dict[str, str] | None
    quick: bool
    mix_data: bool = False
    audits: list[list[str]] = field(default_factory=list)  # `twinids audit` overrides run on every run of the table
    # `twinids attack` overrides (sweep syntax) run on every run of the sweeps; the table is made of the attack runs
    attacks: list[list[str]] = field(default_factory=list)
    # or `twinids respond` overrides, likewise: the table is made of the response runs
    responses: list[list[str]] = field(default_factory=list)
    command: str = "train"  # what each job of the sweeps runs: train, or federate

    @property
    def follow_ups(self) -> tuple[str, list[list[str]]] | None:
        """The command run on every run of the sweeps, whose runs make the table (`attack`, `respond`), and its
        override lists; None when the sweeps' own runs make it."""
        if self.attacks:
            return "attack", self.attacks
        if self.responses:
            return "respond", self.responses
        return None

    @property
    def stem(self) -> str:
        """File name of its results: `<table>` or `<table>_quick`."""
        return f"{self.name}_quick" if self.quick else self.name

    def sweep_commands(self, overrides: Sequence[str]) -> list[str]:
        """The `twinids sweep` commands equivalent to reproducing the table (shell-quoted)."""
        import shlex

        command = [] if self.command == "train" else ["--command", self.command]
        return ["twinids sweep " + shlex.join([*command, *sweep, *overrides]) for sweep in self.sweeps]


def tables_dir() -> Path:
    """Where tables are declared: `./experiments` if there is one, else the `experiments/` of this clone."""
    local = Path(TABLES_DIR)
    if local.is_dir():
        return local.resolve()
    return Path(__file__).resolve().parents[2] / TABLES_DIR


def table_names(folder: Path) -> list[str]:
    """The tables declared in a folder (one YAML file each)."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def load_table(name: str, quick: bool = False, folder: Path | None = None) -> TableSpec:
    """Read and check `<folder>/<name>.yaml`, its quick variant if `quick`.

    Raises:
        TwinIDSError: for a table that does not exist (listing those that do) or a file that is not a valid
            table, naming the file and the key.
    """
    from twinids.config import load_spec

    folder = folder or tables_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(table_names(folder)) or "(none)"
        raise TwinIDSError(f"no table '{name}' in {folder}; tables: {known} (see `twinids reproduce --list`)")
    raw = load_spec(path, "a table is a mapping with sweeps, rows and metrics", KNOWN_KEYS)
    variant = dict(raw)
    if quick:
        if not isinstance(raw.get("quick"), dict):
            raise TwinIDSError(f"{path}: this table has no quick variant (a `quick:` mapping with its sweeps)")
        variant.update(raw["quick"])
    if variant.get("attacks") and variant.get("responses"):
        raise TwinIDSError(f"{path}: a table is made of attack runs or of response runs; set attacks or responses")
    command = variant.get("command", "train")
    if command not in COMMANDS:
        raise TwinIDSError(f"{path}: command must be one of {list(COMMANDS)}; got {command!r}")
    figure = variant.get("figure")
    if figure is not None and (not isinstance(figure, dict) or "metric" not in figure):
        raise TwinIDSError(f"{path}: figure must be a mapping with metric (and x, default privacy.target_epsilon)")
    return TableSpec(
        name=name,
        path=path,
        caption=str(variant.get("caption", name)),
        sweeps=_sweeps(path, variant.get("sweeps")),
        rows=_strings(path, "rows", variant.get("rows")),
        metrics=_strings(path, "metrics", variant.get("metrics")),
        figure=None if figure is None else {"metric": str(figure["metric"]), "x": str(figure.get("x", _X))},
        quick=quick,
        mix_data=bool(variant.get("mix_data", False)),
        audits=_override_lists(path, "audits", "twinids audit", variant.get("audits", [])),
        attacks=_override_lists(path, "attacks", "twinids attack", variant.get("attacks", [])),
        responses=_override_lists(path, "responses", "twinids respond", variant.get("responses", [])),
        command=str(command),
    )


_X = "privacy.target_epsilon"


def _sweeps(path: Path, value: Any) -> list[list[str]]:
    if not isinstance(value, list) or not value or not all(isinstance(sweep, list) and sweep for sweep in value):
        raise TwinIDSError(f"{path}: sweeps must be a list of override lists, e.g. [[model=lstm,random_forest]]")
    return [[str(item) for item in sweep] for sweep in value]


def _override_lists(path: Path, key: str, command: str, value: Any) -> list[list[str]]:
    if not isinstance(value, list) or not all(isinstance(overrides, list) for overrides in value):
        raise TwinIDSError(f"{path}: {key} must be a list of `{command}` override lists, e.g. [[seed=1]]")
    return [[str(item) for item in overrides] for overrides in value]


def _strings(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise TwinIDSError(f"{path}: {key} must be a non-empty list")
    return [str(item) for item in value]
