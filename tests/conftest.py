"""Shared fixtures: where the real public datasets live, an isolated MLflow store per test, and the shipped
config (composed as a user's run composes it) for tests that build loaders, simulators and nets from it."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Test workers (pytest -n) and the twinids processes they start share the cores: spinning OpenMP waits would
# make every one of them many times slower (README, "Threads"). Set before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def shared_datasets_dir() -> Path:
    """The folder of real datasets: $TWINIDS_SHARED_DATASETS, else ../shared/datasets beside the repo."""
    return Path(os.environ.get("TWINIDS_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Path to the real datasets; tests needing them are skipped (with a reason) where they are absent."""
    path = shared_datasets_dir()
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set TWINIDS_SHARED_DATASETS)")
    return path


@dataclass
class CommandResult:
    """Exit code and output of one `twinids` process."""

    returncode: int
    stdout: str
    stderr: str


def make_cli_runner(workdir: Path):
    """A function running the real `twinids` console script in workdir, with a SQLite MLflow store there."""

    def run(*args: str, timeout: float = 600) -> CommandResult:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"}
        env.pop("TWINIDS_DEBUG", None)
        executable = Path(sys.executable).with_name("twinids")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "twinids.cli.main"]
        done = subprocess.run(
            [*command, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return CommandResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def twinids_cli(tmp_path: Path):
    """Run the real `twinids` command in tmp_path with an isolated MLflow store."""
    return make_cli_runner(tmp_path)


@pytest.fixture(scope="session")
def cli_runner_factory():
    """make_cli_runner, for module-scoped fixtures that share one workdir between tests."""
    return make_cli_runner


def _smoke_config(workdir: Path, *overrides: str):
    """The smoke overlay (on a small simulator unless `data=` is given), tracked in workdir's own SQLite store."""
    from twinids.config import compose

    simulator = [] if any(o.startswith("data=") for o in overrides) else ["data.source.n_steps=900"]
    return compose(
        [
            "experiment=smoke",
            *simulator,
            f"tracking.uri=sqlite:///{workdir / 'mlruns' / 'mlflow.db'}",
            f"paths.output_dir={workdir / 'outputs'}",
            *overrides,
        ]
    )


def _mlflow_client(workdir: Path):
    """A client of workdir's SQLite tracking store."""
    import mlflow

    return mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


@pytest.fixture(scope="session")
def smoke_config():
    """`smoke_config(workdir, *overrides)`: a composed smoke config tracked under workdir."""
    return _smoke_config


@pytest.fixture(scope="session")
def mlflow_client():
    """`mlflow_client(workdir)`: a client of workdir's SQLite tracking store."""
    return _mlflow_client


@functools.cache
def _composed(overrides: tuple[str, ...]) -> Any:
    """The shipped `train` config composed with `overrides` (once per set of overrides: composing takes a while)."""
    from twinids.config import compose

    return compose(list(overrides))


def _shipped_config(*overrides: str) -> Any:
    """A private copy of the shipped config composed with `overrides`, e.g. `shipped_config("data=batadal")`."""
    return copy.deepcopy(_composed(tuple(overrides)))


def _source_settings(data: str, **changes: Any) -> dict[str, Any]:
    """The keyword arguments configs/data/<data>.yaml gives its loader (no `_target_`), with `changes` on top
    (a loader's folder is its `root`): a test changes only what it is about and runs the settings a user runs."""
    from omegaconf import OmegaConf

    source = OmegaConf.to_container(_shipped_config(f"data={data}").data.source)
    source.pop("_target_")
    unknown = sorted(set(changes) - set(source))
    assert not unknown, f"configs/data/{data}.yaml sets no {unknown}"
    return {**source, **changes}


def _shipped_net(model: str, n_features: int, n_classes: int = 2, **changes: Any) -> Any:
    """The net configs/model/<model>.yaml builds (`model.module.net`), sized to the data, with `changes` on top."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(_shipped_config(f"model={model}").model.module.net)
    net_class = get_class(settings.pop("_target_"))
    unknown = sorted(set(changes) - set(settings))
    assert not unknown, f"configs/model/{model}.yaml sets no net setting {unknown}"
    takes_classes = "n_classes" in inspect.signature(net_class).parameters
    sizes = {"n_features": n_features, **({"n_classes": n_classes} if takes_classes else {})}
    return net_class(**sizes, **{**settings, **changes})


@pytest.fixture(scope="session")
def shipped_config():
    """`shipped_config(*overrides)`: the shipped config composed with overrides (a private copy)."""
    return _shipped_config


@pytest.fixture(scope="session")
def source_settings():
    """`source_settings(data, **changes)`: the loader arguments of configs/data/<data>.yaml, changed."""
    return _source_settings


@pytest.fixture(scope="session")
def shipped_net():
    """`shipped_net(model, n_features, n_classes=2, **changes)`: the net configs/model/<model>.yaml builds."""
    return _shipped_net


SERVER_START_TIMEOUT_S = 120.0


def _free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _running_mlflow_server(backend_store_uri: str, folder: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback over `backend_store_uri`, serving artifacts itself from `folder/artifacts`
    (clients upload and fetch over HTTP); yields its URL, and stops it and everything it started afterwards."""
    port, log = _free_port(), folder / "server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):  # the server and its workers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, sig)
            try:
                server.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="session")
def mlflow_server():
    """`with mlflow_server(backend_store_uri, folder) as url`: a real tracking server, stopped when the block ends."""
    return _running_mlflow_server


@pytest.fixture(scope="session")
def free_port():
    """`free_port()`: a TCP port free on loopback right now."""
    return _free_port
