"""Submitting a federation to a running SuperLink (Flower's deployment engine) with `flwr run`, and following it.

The SuperLink runs `server_app.app` and each SuperNode `client_app.app`; both import twinids from their own
environment (the app bundle holds only its pyproject.toml). This process checks the config, submits it, streams
the run's log, and reports the parent run the ServerApp logged. Ctrl-C or a signal stops the Flower run
(`flwr stop`), and runs the ServerApp left open are marked KILLED.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError
from twinids.federation.messages import CONFIG_YAML_KEY, OVERRIDES_KEY, TAGS_KEY

CONNECTION = "twinids"
RUN_LINE = re.compile(r"federation run ([0-9a-f]{32})")
FLOWER_RUN_LINE = re.compile(r"Successfully started run (\d+)")
APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "twinids-federation"
version = "1.0.0"
description = "twinids federate: the ServerApp and ClientApp of the installed twinids package"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "twinids"

[tool.flwr.app.components]
serverapp = "twinids.federation.server_app:app"
clientapp = "twinids.federation.client_app:app"

[tool.flwr.app.config]
{config_key} = ""
{overrides_key} = "[]"
{tags_key} = "{{}}"
"""


def flower_home(folder: Path, superlink: str) -> Path:
    """A Flower configuration folder (FLWR_HOME) whose one SuperLink connection is `superlink`, without TLS."""
    import tomli_w

    home = folder / "flwr_home"
    home.mkdir(parents=True, exist_ok=True)
    config = {"superlink": {"default": CONNECTION, CONNECTION: {"address": superlink, "insecure": True}}}
    (home / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    return home


def write_app(
    folder: Path, cfg: DictConfig, overrides: Sequence[str], tags: Mapping[str, str] | None = None
) -> tuple[Path, Path]:
    """The Flower app folder (its pyproject.toml names twinids's apps) and the run config carrying the job: its
    config, overrides and extra tags (a sweep's)."""
    import tomli_w

    app = folder / "app"
    app.mkdir(parents=True, exist_ok=True)
    text = APP_PYPROJECT.format(config_key=CONFIG_YAML_KEY, overrides_key=OVERRIDES_KEY, tags_key=TAGS_KEY)
    (app / "pyproject.toml").write_text(text, encoding="utf-8")
    run_config = folder / "run_config.toml"
    values = {
        CONFIG_YAML_KEY: OmegaConf.to_yaml(cfg, resolve=True),
        OVERRIDES_KEY: json.dumps(list(overrides)),
        TAGS_KEY: json.dumps(dict(tags or {})),
    }
    run_config.write_text(tomli_w.dumps(values), encoding="utf-8")
    return app, run_config


def submit(
    cfg: DictConfig, overrides: Sequence[str], settings: Any, tags: Mapping[str, str] | None = None
) -> tuple[str, dict[str, float]]:
    """Run the federation on the SuperLink at `federation.superlink`; return the parent run it tracked and that
    run's metrics."""
    from twinids.interrupts import JobInterrupted

    flwr = shutil.which("flwr", path=str(Path(sys.executable).parent)) or shutil.which("flwr")
    if flwr is None:
        raise TwinIDSError("twinids federate federation.engine=deployment needs Flower's `flwr` command on the PATH")
    from twinids.tracking.store import resolve_tracking_uri

    cfg = cfg.copy()
    cfg.tracking.uri = resolve_tracking_uri(cfg.tracking.uri)  # the ServerApp runs in the SuperLink's folder
    with tempfile.TemporaryDirectory(prefix="twinids-flwr-") as scratch:
        folder = Path(scratch)
        env = {**os.environ, "FLWR_HOME": str(flower_home(folder, settings.superlink))}
        app, run_config = write_app(folder, cfg, overrides, tags)
        command = [flwr, "run", str(app), CONNECTION, "--run-config", str(run_config), "--stream"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=app
        )
        ids: dict[str, str] = {}
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip())
                for key, pattern in (("mlflow", RUN_LINE), ("flower", FLOWER_RUN_LINE)):
                    found = pattern.search(line)
                    if found:
                        ids.setdefault(key, found.group(1))
                shown = _shown(line)
                if shown:
                    print(shown, flush=True)
            code = process.wait()
        except (KeyboardInterrupt, JobInterrupted):
            _stop(flwr, env, ids.get("flower"), process)
            _end_open_runs(cfg, ids.get("mlflow"), "KILLED")
            raise
    run_id = ids.get("mlflow")
    if run_id is None:
        reason = next((line for line in reversed(lines) if line.strip()), f"flwr run exited with {code}")
        raise TwinIDSError(f"the SuperLink at {settings.superlink} did not run the federation: {reason.strip()}")
    status, metrics = _run_outcome(cfg, run_id)
    if status != "FINISHED":
        _end_open_runs(cfg, run_id, "FAILED")
        raise TwinIDSError(f"the federation (run {run_id}) ended {status} on the SuperLink: {_reason(lines)}")
    return run_id, metrics


def _reason(lines: list[str]) -> str:
    """The ServerApp's own error from the streamed log: a twinids refusal, else the last exception line."""
    for marker in ("TwinIDSError: ", "Error: ", "Exception: "):
        for line in reversed(lines):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return "see the log above"


def _shown(line: str) -> str | None:
    """The lines of the streamed log worth printing: twinids's own (rounds, the run id) and errors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip()
    if text.startswith(("round ", "federation ")) or "error" in text.lower() or "Traceback" in text:
        return text
    return None


def _stop(flwr: str, env: dict[str, str], flower_run: str | None, process: subprocess.Popen) -> None:
    """Stop the Flower run on the SuperLink and the streaming `flwr run`."""
    if flower_run is not None:
        subprocess.run([flwr, "stop", flower_run, CONNECTION], env=env, capture_output=True, timeout=60, check=False)
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _run_outcome(cfg: DictConfig, run_id: str) -> tuple[str, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    from twinids.tracking.store import resolve_tracking_uri

    run = MlflowClient(resolve_tracking_uri(cfg.tracking.uri)).get_run(run_id)
    return run.info.status, dict(run.data.metrics)


def _end_open_runs(cfg: DictConfig, run_id: str | None, status: str) -> None:
    """Mark the parent run and its client runs `status` where the ServerApp could not (it was stopped or died)."""
    if run_id is None:
        return
    from mlflow.tracking import MlflowClient

    from twinids.federation.tracking import PARENT_TAG
    from twinids.tracking.store import resolve_tracking_uri

    client = MlflowClient(resolve_tracking_uri(cfg.tracking.uri))
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'")
    for run in [parent, *children]:
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status)
