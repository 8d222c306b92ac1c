"""Stand-in SLURM commands that run jobs on this machine: `python slurm_standin.py STATE_DIR sbatch|srun|sacct|...`.

`sbatch` spools the batch script (as SLURM does, so the submitter may move its file at once), prints
`Submitted batch job N` and runs the copy with bash in the background, in its own session, with the SLURM_*
variables a one-node, one-task job has; `srun` runs its command with the `--output`/`--error` file patterns
(`%j`, `%t`) expanded. `sacct -j N --parsable2` reports states as submitit parses them; `squeue` lists the jobs not
ended; `scancel N` ends a job CANCELLED (`--signal SIG` only signals it). Job arrays are refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

FIRST_JOB_ID = 4100
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


def main(state: Path, command: str, args: list[str]) -> int:
    """Run one stand-in command; its exit code."""
    commands = {"sbatch": sbatch, "srun": srun, "sacct": sacct, "squeue": squeue, "scancel": scancel, "_run": run}
    return commands[command](state, args)


def sbatch(state: Path, args: list[str]) -> int:
    """Queue the script (last argument) and start it in the background; print its job id as sbatch does."""
    script = Path(args[-1])
    text = script.read_text()
    options = directives(text)
    if "array" in options:
        print("sbatch (stand-in): job arrays are not supported", file=sys.stderr)
        return 1
    job_id = next_job_id(state)
    spooled = state / f"{job_id}.sh"
    spooled.write_text(text)
    set_state(state, job_id, "PENDING")
    with (state / "submitted").open("a") as log:
        log.write(f"{job_id} {script.resolve()}\n")
    output = expand(options.get("output", "slurm-%j.out"), job_id)
    with open(output, "a") as job_output:
        runner = subprocess.Popen(
            [sys.executable, __file__, str(state), "_run", str(job_id), *cpus(options)],
            stdin=subprocess.DEVNULL,
            stdout=job_output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (state / f"{job_id}.pid").write_text(str(runner.pid))
    print(f"Submitted batch job {job_id}")
    return 0


def run(state: Path, args: list[str]) -> int:
    """The job itself: run the spooled script with SLURM's variables and record how it ended."""
    job_id = args[0]
    env = {
        **os.environ,
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_SUBMIT_DIR": os.getcwd(),
    }
    if len(args) > 1:
        env["SLURM_CPUS_PER_TASK"] = args[1]
    set_state(state, int(job_id), "RUNNING")
    code = subprocess.call(["bash", str(state / f"{job_id}.sh")], env=env)
    with (state / "executed").open("a") as log:
        log.write(f"{job_id} {code}\n")
    if read_state(state, job_id) != "CANCELLED":
        set_state(state, int(job_id), "COMPLETED" if code == 0 else "FAILED")
    return code


def srun(state: Path, args: list[str]) -> int:
    """Run the command after srun's options, its output and error appended to the expanded file patterns."""
    files = {"--output": None, "--error": None}
    while args and args[0].startswith("--"):
        option = args.pop(0)
        if option in files:
            files[option] = expand(args.pop(0), int(os.environ["SLURM_JOB_ID"]))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(files["--output"], "a")) if files["--output"] else None
        err = stack.enter_context(open(files["--error"], "a")) if files["--error"] else subprocess.STDOUT
        return subprocess.call(args, stdout=out, stderr=err)


def sacct(state: Path, args: list[str]) -> int:
    """`JobID|State|NodeList` rows (`--parsable2`) for the jobs asked with -j."""
    asked = [args[i + 1] for i, arg in enumerate(args) if arg == "-j"]
    print("JobID|State|NodeList")
    for job_id in asked:
        found = read_state(state, job_id)
        if found:
            print(f"{job_id}|{found}|localhost")
    return 0


def squeue(state: Path, args: list[str]) -> int:
    """The jobs not ended yet, `JOBID STATE` (submitit itself asks sacct)."""
    print("JOBID STATE")
    for path in sorted(state.glob("*.state")):
        found = path.read_text().strip()
        if found not in ENDED:
            print(f"{path.stem} {found}")
    return 0


def scancel(state: Path, args: list[str]) -> int:
    """End jobs CANCELLED with SIGTERM to their session, or only send `--signal SIG`."""
    sig, only_signal = signal.SIGTERM, "--signal" in args
    if only_signal:
        at = args.index("--signal")
        sig = signal.Signals[f"SIG{args[at + 1].removeprefix('SIG')}"]
        args = args[:at] + args[at + 2 :]
    for job_id in (arg.split("_")[0] for arg in args if not arg.startswith("-")):
        if not only_signal:
            set_state(state, int(job_id), "CANCELLED")
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.killpg(int((state / f"{job_id}.pid").read_text()), sig)
    return 0


def directives(script: str) -> dict[str, str]:
    """`#SBATCH --key=value` lines as {key: value}."""
    options = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line.removeprefix("#SBATCH --").partition("=")
            options[key.strip()] = value.strip()
    return options


def cpus(options: dict[str, str]) -> list[str]:
    """The cpus-per-task the job asked for, if any."""
    return [options["cpus-per-task"]] if "cpus-per-task" in options else []


def expand(pattern: str, job_id: int) -> str:
    """A SLURM file-name pattern with the job id (%j) and task id (%t, always 0 here) filled in."""
    return pattern.replace("%j", str(job_id)).replace("%t", "0")


def next_job_id(state: Path) -> int:
    """The next job id, taken under a lock (several sbatch may run at once)."""
    with (state / "next_id.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = state / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else FIRST_JOB_ID
        counter.write_text(str(job_id + 1))
    return job_id


def set_state(state: Path, job_id: int, value: str) -> None:
    """Record a job's state atomically (sacct may read it at any moment)."""
    temporary = state / f".{job_id}.state.{os.getpid()}"
    temporary.write_text(value)
    temporary.replace(state / f"{job_id}.state")


def read_state(state: Path, job_id: str) -> str | None:
    """A job's state, None for a job never submitted."""
    path = state / f"{job_id}.state"
    return path.read_text().strip() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))
