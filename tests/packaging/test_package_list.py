"""pyproject.toml lists every package (it must, to install configs/ as `twinids.configs`) and ships the configs."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SETUPTOOLS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def source_packages() -> set[str]:
    """Every folder of Python modules under twinids/, as a dotted package name."""
    folders = {path.parent for path in (REPO_ROOT / "twinids").rglob("*.py") if "__pycache__" not in path.parts}
    return {".".join(folder.relative_to(REPO_ROOT).parts) for folder in folders}


def test_every_package_folder_is_listed_for_the_wheel():
    missing = source_packages() - set(SETUPTOOLS["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_exists():
    listed = set(SETUPTOOLS["packages"]) - {"twinids.configs"}
    assert listed <= source_packages(), sorted(listed - source_packages())


def test_the_top_level_configs_folder_is_installed_as_twinids_configs_with_its_yaml():
    assert SETUPTOOLS["package-dir"]["twinids.configs"] == "configs"
    assert (REPO_ROOT / "configs" / "train.yaml").is_file()
    assert SETUPTOOLS["package-data"]["twinids.configs"] == ["**/*.yaml"]
