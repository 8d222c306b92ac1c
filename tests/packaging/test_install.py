"""twinids works installed, not only from the clone: from a wheel and from an editable install, in a fresh venv.

The fresh venv gets the already-installed dependencies through a `.pth` file naming this interpreter's
site-packages (no network, no multi-GB torch download); twinids itself comes only from what was installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "twinids", "configs")


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command with no trace of the clone in its environment; fail the test with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINIDS_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def copy_sources(destination: Path) -> Path:
    """The files a build reads, copied so that building writes nothing (build/, egg-info) into the clone."""
    destination.mkdir()
    for name in BUILD_INPUTS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def fresh_venv(folder: Path) -> Path:
    """A new venv without twinids whose dependencies resolve to this interpreter's site-packages."""
    run([sys.executable, "-m", "venv", "--without-pip", str(folder)], cwd=folder.parent)
    python = folder / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder)
    (Path(purelib.stdout.strip()) / "twinids_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip_install(python: Path, *args: str) -> None:
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index"]
    run([*pip, "--no-build-isolation", *args], cwd=python.parent)


def where_twinids_is(python: Path, cwd: Path) -> tuple[Path, Path]:
    """The imported package's folder and its config tree, as that interpreter sees them."""
    script = "import twinids, twinids.config as c; print(twinids.__file__); print(c.config_dir())"
    package, configs = run([str(python), "-c", script], cwd=cwd).stdout.split()
    return Path(package).parent, Path(configs)


def test_a_wheel_installed_in_a_fresh_venv_trains_from_an_empty_folder(tmp_path):
    sources = copy_sources(tmp_path / "src")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(sources)], cwd=tmp_path)  # fmt: skip
    shutil.rmtree(sources)  # the installed copy must not lean on the sources it was built from
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, str(next((tmp_path / "dist").glob("twinids-*.whl"))))
    empty = tmp_path / "empty"
    empty.mkdir()

    package, configs = where_twinids_is(python, empty)
    assert package.is_relative_to(tmp_path / "venv") and configs == package / "configs"
    assert not package.is_relative_to(REPO_ROOT)
    listed = run([str(python.parent / "twinids"), "data", "list"], cwd=empty)
    assert "synthetic_twin" in listed.stdout
    trained = run([str(python.parent / "twinids"), "train", "experiment=smoke", "data.source.n_steps=900"], cwd=empty)
    assert "run id:" in trained.stdout
    assert (empty / "mlruns" / "mlflow.db").is_file()


def test_an_editable_install_reads_the_configs_folder_at_the_top_of_the_sources(tmp_path):
    sources = copy_sources(tmp_path / "src")
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, "-e", str(sources))
    empty = tmp_path / "empty"
    empty.mkdir()

    package, configs = where_twinids_is(python, empty)
    assert package == sources / "twinids" and configs == sources / "configs"
    (sources / "configs" / "data" / "edited_in_place.yaml").write_text("# Added after installing.\nname: x\n")
    listed = run([str(python.parent / "twinids"), "data", "list"], cwd=empty)
    assert "edited_in_place" in listed.stdout and "synthetic_twin" in listed.stdout
