"""Compose the Hydra config tree from command-line overrides, with one-line errors.

The tree ships inside the package (`configs/` of a clone is installed as `twinids/configs/`); users add
their own folders on top of it with $TWINIDS_CONFIG_PATH and a `configs/` folder in the working directory.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError, first_line

CONFIG_DIR_ENV = "TWINIDS_CONFIG_DIR"  # replaces the packaged tree (a full tree with train.yaml)
CONFIG_PATH_ENV = "TWINIDS_CONFIG_PATH"  # the user's folders searched before it, separated by os.pathsep
LOCAL_CONFIG_DIR = "configs"  # a folder of that name in the working directory is the user's too


def packaged_config_dir() -> Path:
    """The config tree installed with twinids: `twinids/configs/` of a wheel, or `configs/` of a clone."""
    spec = importlib.util.find_spec("twinids.configs")  # wheels and editable installs map it to a folder
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "train.yaml").is_file():
            return Path(location)
    return Path(__file__).resolve().parents[1] / "configs"  # a clone used without installing


def config_dir() -> Path:
    """The base config tree: $TWINIDS_CONFIG_DIR, else the packaged tree; it must hold `train.yaml`."""
    path = Path(os.environ[CONFIG_DIR_ENV]) if os.environ.get(CONFIG_DIR_ENV) else packaged_config_dir()
    if not (path / "train.yaml").is_file():
        raise TwinIDSError(f"config tree not found at {path} (set {CONFIG_DIR_ENV} to a folder holding train.yaml)")
    return path.resolve()


def user_config_dirs() -> list[Path]:
    """The user's config folders, first wins: each folder of $TWINIDS_CONFIG_PATH, then `./configs` if present.

    Raises:
        TwinIDSError: if $TWINIDS_CONFIG_PATH names something that is not a folder.
    """
    folders = []
    for entry in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep):
        if entry.strip():
            folder = Path(entry.strip()).expanduser()
            if not folder.is_dir():
                raise TwinIDSError(f"{CONFIG_PATH_ENV} names '{entry}', which is not a folder")
            folders.append(folder.resolve())
    local = Path(LOCAL_CONFIG_DIR)
    if local.is_dir():
        folders.append(local.resolve())
    return folders


def search_path() -> list[Path]:
    """Every folder a config is looked up in, first wins: the user's folders, then the base tree."""
    folders: list[Path] = []
    for folder in [*user_config_dirs(), config_dir()]:
        if folder not in folders:  # `./configs` of a clone is the base tree itself
            folders.append(folder)
    return folders


def config_file(group: str, option: str) -> Path | None:
    """The YAML file that `group=option` selects (the first on the search path), or None if there is none."""
    for folder in search_path():
        path = folder / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def group_options(group: str) -> list[str]:
    """The option names of a config group: the YAML files in `<group>/` of every folder on the search path."""
    return sorted({p.stem for folder in search_path() for p in (folder / group).glob("*.yaml")})


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """Compose `<config_name>.yaml` from the search path with Hydra overrides (`key=value`, `group=option`)."""
    from hydra import compose as hydra_compose
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    folders = search_path()
    GlobalHydra.instance().clear()
    try:
        _initialize_hydra(folders)
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra raises several types; all are user mistakes in the overrides
        raise TwinIDSError(explain_compose_error(error, overrides)) from error
    finally:
        GlobalHydra.instance().clear()
    try:
        OmegaConf.resolve(cfg)
    except Exception as error:
        raise TwinIDSError(f"config interpolation failed: {first_line(error)}") from error
    return cfg


def _initialize_hydra(folders: list[Path]) -> None:
    """Start Hydra as `initialize_config_dir` does, with every folder on its search path in our order.

    Hydra's public `hydra.searchpath` only appends after the primary folder (the packaged tree would win
    over the user's files), so the search path is built here; hydra-core is pinned below 1.4 for this.
    """
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    version.setbase("1.3")
    *users, base = folders
    search = create_config_search_path(search_path_dir=f"file://{base}")
    for folder in users:
        search.prepend("twinids-user", f"file://{folder}", anchor=SearchPathQuery(provider="main"))
    Hydra.create_main_hydra2(task_name="twinids", config_search_path=search)


def explain_compose_error(error: Exception, overrides: list[str]) -> str:
    """Turn a Hydra composition error into one line naming the bad key or option and the valid ones."""
    text = str(error)
    missing_option = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing_option:
        group, option = missing_option.groups()
        return (
            f"unknown option '{option}' for config group '{group}'; "
            f"valid options: {', '.join(group_options(group)) or '(none)'}"
        )
    bad_key = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if bad_key:
        key = bad_key.group(1)
        valid = _valid_keys(key, [o for o in overrides if not o.lstrip("+~").startswith(key)])
        return f"unknown config key '{key}'; valid keys at '{_parent(key) or '<root>'}': {valid}"
    parse = re.search(r"Error (?:parsing|when parsing) override '([^']+)'", text)
    if parse:
        return f"cannot parse override '{parse.group(1)}': use key=value, group=option or +new_key=value"
    for override in overrides:
        if "=" not in override:
            return f"cannot parse override '{override}': use key=value, group=option or +new_key=value"
    return f"bad override: {first_line(error)}"


def _parent(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def _valid_keys(key: str, other_overrides: list[str]) -> str:
    """List the keys that exist next to `key` in the config the other overrides compose, for the message."""
    try:
        cfg = compose(other_overrides)
    except TwinIDSError:
        return "(could not compose the default config)"
    node = OmegaConf.select(cfg, _parent(key)) if _parent(key) else cfg
    if isinstance(node, DictConfig):
        return ", ".join(str(k) for k in node)
    if node is None and _parent(key) and OmegaConf.select(cfg, _parent(key), default="absent") is None:
        return f"(none: '{_parent(key)}' is null in this config)"
    return "(none)"


def load_spec(path: Path, description: str, known_keys: set[str]) -> dict:
    """A YAML file of named settings (a reproduce table, a search space) as a dict; anything other than a
    mapping of `known_keys` is one error line naming the file.

    Raises:
        TwinIDSError: for a file that is not YAML (naming the line), a `${...}` that does not resolve, a value
            that is not a mapping, or an unknown key.
    """
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or first_line(error)
        raise TwinIDSError(f"{path}: not valid YAML{where} ({problem}); fix the file's syntax") from error
    except OmegaConfBaseException as error:
        message = f"{path}: an interpolation does not resolve ({first_line(error)}); fix the ${{...}}"
        raise TwinIDSError(message) from error
    if not isinstance(raw, dict):
        raise TwinIDSError(f"{path}: {description}")
    unknown = sorted(set(raw) - known_keys)
    if unknown:
        raise TwinIDSError(f"{path}: unknown key '{unknown[0]}'; known keys: {', '.join(sorted(known_keys))}")
    return raw


def to_yaml(cfg: DictConfig) -> str:
    """The config as YAML text, as it is printed by `--cfg job` and logged with each run."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def require_complete(cfg: DictConfig) -> None:
    """Refuse a config with mandatory values (`???`) left unset, naming each key."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        example = f"{missing[0]}=..."
        raise TwinIDSError(f"missing required setting(s) {', '.join(missing)}; set them as overrides, e.g. {example}")


def build(node: DictConfig, what: str, **kwargs: object) -> object:
    """`hydra.utils.instantiate` whose failures (bad arguments in a config node) become one-line user errors."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause: BaseException = error
        while cause.__cause__ is not None and not isinstance(cause, TwinIDSError):
            cause = cause.__cause__
        if isinstance(cause, TwinIDSError):
            raise cause from None
        raise TwinIDSError(f"cannot build {what}: {first_line(cause)}") from error
