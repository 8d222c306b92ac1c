"""Provenance tags: code version and git state, library versions, machine, and the data fingerprint."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from twinids.errors import TwinIDSError
from twinids.tracking import provenance
from twinids.tracking.provenance import code_tags, data_fingerprint, file_digest, git_state, provenance_tags

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def test_the_data_fingerprint_follows_content_and_names_not_location(tmp_path):
    files = {"train.csv": "a,b\n1,2\n", "test/test.csv": "a,b\n3,4\n"}
    here, elsewhere = write(tmp_path / "here", files), write(tmp_path / "copy", files)

    assert data_fingerprint(here, {}) == data_fingerprint(elsewhere, {})
    assert data_fingerprint(here, {}) == data_fingerprint(list(reversed(here)), {})
    assert data_fingerprint(here, {}).startswith("files-") and len(data_fingerprint(here, {})) == 6 + 16


def test_a_changed_or_renamed_file_changes_the_fingerprint(tmp_path):
    (train,) = write(tmp_path, {"train.csv": "a\n1\n"})
    before = data_fingerprint([train], {})

    train.write_text("a\n2\n")
    os.utime(train, ns=(train.stat().st_atime_ns, train.stat().st_mtime_ns + 1_000_000_000))
    changed = data_fingerprint([train], {})
    renamed = data_fingerprint(write(tmp_path / "other", {"valid.csv": "a\n2\n"}), {})

    assert len({before, changed, renamed}) == 3


def test_file_digests_are_cached_by_path_size_and_mtime(tmp_path):
    (path,) = write(tmp_path, {"data.csv": "abc"})
    first = file_digest(path)
    stat = path.stat()
    path.write_text("xyz")  # same size; restoring the mtime makes the cache answer without reading
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digest(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_digest(path) != first


def test_without_files_the_source_config_is_fingerprinted_regardless_of_key_order(tmp_path):
    settings = {"n_steps": 4000, "devices": {"heated_room": 2, "conveyor": 2}, "seed": 1}
    reordered = {"seed": 1, "devices": {"conveyor": 2, "heated_room": 2}, "n_steps": 4000}

    assert data_fingerprint(None, settings) == data_fingerprint([], reordered)
    assert data_fingerprint(None, settings).startswith("config-")
    assert data_fingerprint(None, {**settings, "n_steps": 2000}) != data_fingerprint(None, settings)


def test_seeds_of_one_generator_setting_share_a_fingerprint_and_the_seed_has_its_own_tag():
    settings = {"n_steps": 4000, "devices": {"heated_room": 2}}
    first, second = (provenance_tags(source_config={**settings, "seed": seed}) for seed in (1, 2))

    assert first["twinids.data_fingerprint"] == second["twinids.data_fingerprint"]
    assert first["twinids.data_fingerprint"] == data_fingerprint(None, settings)
    assert (first["twinids.data_seed"], second["twinids.data_seed"]) == ("1", "2")


def test_the_simulators_seeds_share_a_fingerprint_as_composed():
    from twinids.config import compose

    fingerprints = {data_fingerprint(None, compose([f"seed={seed}"]).data.source) for seed in (0, 1, 2)}
    assert len(fingerprints) == 1
    assert data_fingerprint(None, compose(["data.source.n_steps=100"]).data.source) not in fingerprints


def test_a_source_config_from_omegaconf_is_resolved_first():
    from omegaconf import OmegaConf

    node = OmegaConf.create({"steps": 7, "source": {"n_steps": "${steps}"}}).source
    assert data_fingerprint(None, node) == data_fingerprint(None, {"n_steps": 7})
    assert (
        provenance_tags(source_config=OmegaConf.create({"seed": 7, "s": {"seed": "${seed}"}}).s)["twinids.data_seed"]
        == "7"
    )


def test_an_unreadable_data_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(TwinIDSError, match=r"cannot read data file .*missing\.csv to fingerprint it"):
        data_fingerprint([tmp_path / "missing.csv"], {})


@needs_git
def test_in_a_clone_the_commit_and_dirty_flag_are_reported(tmp_path):
    package = tmp_path / "repo" / "twinids"
    write(package, {"__init__.py": ""})
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", ".")
    git(tmp_path / "repo", "commit", "-q", "-m", "first")
    commit = git(tmp_path / "repo", "rev-parse", "HEAD")

    assert git_state(package) == (commit, False)
    tags = code_tags(package)
    assert tags["twinids.git_commit"] == commit and tags["twinids.git_dirty"] == "false"
    assert tags["twinids.code_version"] == f"{tags['twinids.version']}+g{commit[:12]}"

    (package / "__init__.py").write_text("changed = True\n")
    assert code_tags(package)["twinids.code_version"].endswith(".dirty")


@needs_git
def test_a_package_inside_some_other_repository_reports_only_its_version(tmp_path):
    package = tmp_path / "project" / ".venv" / "lib" / "twinids"
    write(package, {"__init__.py": ""})
    git(tmp_path / "project", "init", "-q")

    assert git_state(package) == (None, False)
    assert code_tags(package) == {
        "twinids.version": metadata.version("twinids"),
        "twinids.code_version": metadata.version("twinids"),
    }


def test_outside_any_clone_only_the_version_is_given(tmp_path):
    package = tmp_path / "site-packages" / "twinids"
    package.mkdir(parents=True)
    tags = code_tags(package)
    assert set(tags) == {"twinids.version", "twinids.code_version"}


def test_git_missing_is_no_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert git_state(Path(provenance.__file__).parents[1]) == (None, False)


def test_all_provenance_is_one_flat_dict_of_string_tags(tmp_path):
    import torch

    (data,) = write(tmp_path, {"d.csv": "x"})
    tags = provenance_tags(device="cpu", data_files=[data])

    assert all(key.startswith("twinids.") and isinstance(value, str) for key, value in tags.items())
    assert tags["twinids.versions.torch"] == torch.__version__
    for name in ("opacus", "pytorch-lightning", "mlflow", "scikit-learn"):
        assert tags[f"twinids.versions.{name}"] == metadata.version(name)
    assert tags["twinids.machine.cpu_count"] == str(os.cpu_count())
    assert tags["twinids.machine.torch_threads"] == str(torch.get_num_threads())
    assert tags["twinids.machine.device"] == "cpu" and tags["twinids.machine.cpu"]
    assert tags["twinids.data_fingerprint"] == data_fingerprint([data], {})


def test_without_data_there_is_no_fingerprint_tag():
    assert "twinids.data_fingerprint" not in provenance_tags()


def test_data_read_from_files_has_no_seed_tag(tmp_path):
    (data,) = write(tmp_path, {"d.csv": "x"})
    assert "twinids.data_seed" not in provenance_tags(data_files=[data], source_config={"seed": 0})
