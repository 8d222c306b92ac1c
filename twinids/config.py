"""Compose the Hydra config tree under `configs/` from command-line overrides, with one-line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError

CONFIG_DIR_ENV = "TWINIDS_CONFIG_DIR"


def config_dir() -> Path:
    """The Hydra config tree: $TWINIDS_CONFIG_DIR, else `configs/` at the top of the repository."""
    path = Path(os.environ.get(CONFIG_DIR_ENV, Path(__file__).resolve().parents[1] / "configs"))
    if not (path / "train.yaml").is_file():
        raise TwinIDSError(f"config tree not found at {path} (set {CONFIG_DIR_ENV} to the configs/ folder)")
    return path


def group_options(group: str) -> list[str]:
    """The option names of a config group (the YAML files in configs/<group>/)."""
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """Compose `configs/<config_name>.yaml` with Hydra overrides (`key=value`, `group=option`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra raises several types; all are user mistakes in the overrides
        raise TwinIDSError(explain_compose_error(error, overrides)) from error
    finally:
        GlobalHydra.instance().clear()
    try:
        OmegaConf.resolve(cfg)
    except Exception as error:
        raise TwinIDSError(f"config interpolation failed: {_first_line(error)}") from error
    return cfg


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
    return f"bad override: {_first_line(error)}"


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
    return "(none)"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


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
        raise TwinIDSError(f"cannot build {what}: {_first_line(cause)}") from error
