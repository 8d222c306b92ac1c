"""Where a run's result came from, as flat MLflow tags: code version, library versions, machine, data fingerprint.

Pure functions: the training layer calls `provenance_tags(...)` once per run and logs the dict as tags;
`twinids compare` reads `twinids.code_version` and `twinids.data_fingerprint` back to flag mixed cells.
Generated data is fingerprinted by its settings with its seed kept apart (`twinids.data_seed`), so the seeds of
one simulator setting, which `compare` averages over, share one fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError

TAG_PREFIX = "twinids."
CODE_VERSION_TAG = "twinids.code_version"
DATA_FINGERPRINT_TAG = "twinids.data_fingerprint"
DATA_SEED_TAG = "twinids.data_seed"
SOURCE_SEED_KEY = "seed"  # the key of a data source's config that seeds the data it generates
# Distributions whose versions change results; tag names keep the distribution's own spelling.
TRACKED_DISTRIBUTIONS = ("torch", "opacus", "pytorch-lightning", "mlflow", "scikit-learn", "numpy", "pandas")
GIT_TIMEOUT_S = 5.0
HASH_CHUNK_BYTES = 1 << 20

_file_digests: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256 of the content


def provenance_tags(
    device: str = "cpu",
    data_files: Sequence[Path] | None = None,
    source_config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Every provenance tag of a run: code, library versions, machine and (with data) the data fingerprint.

    Args:
        device: the accelerator the run trains on (`cpu`, `cuda`, ...).
        data_files: the files the data loader read; None or empty when the data is generated.
        source_config: what generated the data (e.g. the simulator's settings and seed), hashed without its
            seed when no files are read; the seed goes to its own tag, `twinids.data_seed`. The fingerprint tag
            is left out when both are missing.
    """
    tags = {**code_tags(), **version_tags(), **machine_tags(device)}
    if data_files or source_config is not None:
        tags[DATA_FINGERPRINT_TAG] = data_fingerprint(data_files, source_config or {})
    if not data_files and source_config is not None:
        seed = _plain(source_config).get(SOURCE_SEED_KEY)
        if seed is not None:
            tags[DATA_SEED_TAG] = str(seed)
    return tags


def code_tags(package_dir: Path | None = None) -> dict[str, str]:
    """The twinids version and, when running from a git clone, its commit and whether the tree is dirty.

    `twinids.code_version` is one comparable string: `<version>`, or `<version>+g<commit12>[.dirty]` in a clone.
    Outside a clone (an installed wheel) or without git, only the version is given; this never fails.
    """
    version = _distribution_version("twinids")
    commit, dirty = git_state(package_dir or Path(__file__).resolve().parents[1])
    tags = {"twinids.version": version}
    if commit is None:
        tags[CODE_VERSION_TAG] = version
        return tags
    tags["twinids.git_commit"] = commit
    tags["twinids.git_dirty"] = str(dirty).lower()
    tags[CODE_VERSION_TAG] = f"{version}+g{commit[:12]}{'.dirty' if dirty else ''}"
    return tags


def git_state(package_dir: Path) -> tuple[str | None, bool]:
    """(commit, dirty) of the git clone holding `package_dir`, or (None, False) outside a clone or without git.

    Only a clone whose top folder holds this package counts: a wheel installed inside some other repository's
    virtual environment must not report that repository's commit.
    """
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    if top is None or (Path(top) / package_dir.name).resolve() != package_dir.resolve():
        return None, False
    commit = _git(package_dir, "rev-parse", "HEAD")
    if commit is None:
        return None, False
    status = _git(package_dir, "status", "--porcelain")
    return commit, bool(status)


def _git(folder: Path, *args: str) -> str | None:
    """Output of one git command in `folder`, or None if git is missing, times out or fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def version_tags() -> dict[str, str]:
    """`twinids.versions.<distribution>` for Python and each library that changes results ("absent" if missing)."""
    tags = {"twinids.versions.python": platform.python_version()}
    for name in TRACKED_DISTRIBUTIONS:
        tags[f"twinids.versions.{name}"] = _distribution_version(name, missing="absent")
    return tags


def _distribution_version(name: str, missing: str = "unknown") -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return missing


def machine_tags(device: str = "cpu") -> dict[str, str]:
    """`twinids.machine.*`: CPU model, CPU counts, torch threads, the training device and the OS."""
    import torch

    from twinids.cpu_policy import applied_policy

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tags = {
        "twinids.machine.cpu": cpu_model(),
        "twinids.machine.cpu_count": str(os.cpu_count() or 0),
        "twinids.machine.cpus_usable": str(usable or 0),
        "twinids.machine.torch_threads": str(torch.get_num_threads()),
        **{f"twinids.machine.openmp.{key}": value for key, value in applied_policy().items()},
        "twinids.machine.device": device,
        "twinids.machine.platform": platform.platform(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        tags["twinids.machine.gpu"] = torch.cuda.get_device_name(torch.device(device))
    return tags


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` knows, else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def data_fingerprint(files: Sequence[Path] | None, source_config: Mapping[str, Any]) -> str:
    """A short stable hash of the data a run read: `files-<hex>` over the files' contents, else `config-<hex>`.

    Files are identified by their path relative to their common folder and their content (streamed
    SHA-256, cached per process by path, size and modification time), so the same data copied elsewhere
    has the same fingerprint while a renamed or changed file does not. Without files, the source config
    (e.g. the simulator's settings) is hashed as canonical JSON without its `seed`: the fingerprint names the
    settings, and runs that differ only in the seed (repeats, averaged by `compare`) share it.

    Raises:
        TwinIDSError: if a listed file cannot be read.
    """
    if files:
        paths = [Path(f).resolve() for f in files]
        common = Path(os.path.commonpath([str(p.parent) for p in paths]))
        lines = sorted(f"{p.relative_to(common).as_posix()}\t{file_digest(p)}" for p in paths)
        return "files-" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    settings = {key: value for key, value in _plain(source_config).items() if key != SOURCE_SEED_KEY}
    return "config-" + hashlib.sha256(canonical_json(settings).encode()).hexdigest()[:16]


def _plain(source_config: Mapping[str, Any]) -> dict[str, Any]:
    """The source config as a plain dict, OmegaConf nodes resolved."""
    return json.loads(canonical_json(source_config))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks; cached while its size and mtime stay the same.

    Raises:
        TwinIDSError: if the file cannot be read.
    """
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _file_digests:
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                while chunk := stream.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
            _file_digests[key] = digest.hexdigest()
    except OSError as error:
        raise TwinIDSError(f"cannot read data file {path} to fingerprint it ({error.strerror})") from error
    return _file_digests[key]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spacing; OmegaConf nodes are resolved to plain containers first."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
