"""Writing `job.sbatch`: a readable batch script a user can also submit by hand (`sbatch job.sbatch`), and the
job-array script that runs many of them as one Slurm job (`render_array`).

Safety: every value that goes into the script is shell-quoted (sbatch reads `#SBATCH` lines with shell-like
quoting, and the body is bash), and no value may contain a line break, so an option can never smuggle a
second command into the script. The `setup` lines are the one place where raw shell goes, on purpose (e.g.
`module load cuda`). The run folder must lie inside the runs folder.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ftui.rundir import LOG

SCRIPT_NAME = "job.sbatch"
LOG_NAME = LOG
ARRAYS_DIR = ".slurm"  # in the runs folder: one sub-folder per job array (script, tasks.json, task links)
TASKS_NAME = "tasks.json"  # in an array's folder: which job each array task runs

# [runner.slurm] key -> sbatch option
OPTIONS: tuple[tuple[str, str], ...] = (
    ("partition", "--partition"),
    ("account", "--account"),
    ("time", "--time"),
    ("gres", "--gres"),
    ("cpus", "--cpus-per-task"),
    ("mem", "--mem"),
)


class SbatchError(ValueError):
    """A value that cannot be written safely into job.sbatch (names the setting and the value)."""


def _one_line(what: str, value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise SbatchError(f"{what}: a line break or NUL is not allowed in {value!r}")
    return value


def job_name(run_key: str, action: str) -> str:
    """The --job-name of a job: how a later submission recognises an earlier attempt of the same job."""
    return f"ftui:{run_key}:{action}"


def option(name: str, value: Any) -> str:
    """`#SBATCH --name=value` with the value quoted."""
    text = _one_line(name, str(value))
    return f"#SBATCH {name}={shlex.quote(text)}"


def extra_option(line: str) -> str:
    """An extra `#SBATCH` line from [runner.slurm] sbatch: split like a shell would, each word quoted."""
    _one_line("[runner.slurm] sbatch", line)
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise SbatchError(f"[runner.slurm] sbatch: {e} in {line!r}") from e
    if not words or not words[0].startswith("-"):
        raise SbatchError(f'[runner.slurm] sbatch: an option starting with "-" is needed, got {line!r}')
    return "#SBATCH " + " ".join(shlex.quote(w) for w in words)


def slurm_path(path: Path) -> str:
    """A path for --output: Slurm expands `%j` and friends in it, `%%` is a literal `%`."""
    return str(path).replace("%", "%%")


def inside(run_dir: Path, runs_dir: Path) -> Path:
    """The resolved run folder; an error when it is not inside the runs folder (e.g. `..` or a symlink)."""
    resolved, root = run_dir.resolve(), runs_dir.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise SbatchError(f"run folder {run_dir} is not inside the runs folder {runs_dir}")
    return resolved


def render(
    *,
    run_key: str,
    action: str,
    attempt: int,
    run_dir: Path,
    runs_dir: Path,
    python: str,
    slurm: Mapping[str, Any],
    restart: bool = False,
    comment: str = "",
) -> str:
    """The text of job.sbatch for one attempt of one job."""
    run_dir = inside(run_dir, runs_dir)
    lines = [
        "#!/bin/bash",
        f"# Written by ftui for {_one_line('run key', run_key)} {action}, attempt {attempt}, at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "# ftui submits it with `sbatch --parsable` (or runs it as a task of a job array in "
        f"{ARRAYS_DIR}/); it can also be submitted by hand.",
        option("--job-name", job_name(run_key, action)),
        option("--output", slurm_path(run_dir / LOG_NAME)),  # stdout and stderr, appended: the same log
        "#SBATCH --open-mode=append",
        option("--chdir", str(run_dir)),
    ]
    if comment:
        lines.append(option("--comment", comment))
    lines += shared_options(slurm)
    header = (
        f"==== ftui: {action} attempt {attempt} on slurm job ${{slurm_job:-$SLURM_JOB_ID}} "
        "(${SLURMD_NODENAME}) at $(date '+%Y-%m-%d %H:%M:%S') ===="
    )
    lines += [
        "",
        "set -e",
        "export PYTHONUNBUFFERED=1",
        "# a task of a job array shows the id ftui knows it by: ARRAYID_TASK",
        "slurm_job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}",
        f'echo ""; echo "{header}"',
    ]
    setup = _lines(slurm.get("setup"))
    if setup:
        lines.append("# setup lines from [runner.slurm] setup (raw shell, on purpose)")
        lines += [_one_line("[runner.slurm] setup", line) for line in setup]
    cmd = [python, "-m", "engine", action, str(run_dir)]
    if restart and action == "train":
        cmd.append("--restart")
    # exec: the engine IS the batch step, so Slurm's SIGTERM (scancel, time limit) reaches it directly and it
    # saves a checkpoint before exiting.
    lines.append("exec " + " ".join(shlex.quote(c) for c in cmd))
    return "\n".join(lines) + "\n"


def shared_options(slurm: Mapping[str, Any]) -> list[str]:
    """The `#SBATCH` lines from [runner.slurm] (resources, account, extra options): the same for every job
    submitted with these settings, so jobs with equal lines can share one job array."""
    lines = []
    for key, name in OPTIONS:
        value = slurm.get(key)
        if value is not None and value != "":
            lines.append(option(name, value))
    return lines + [extra_option(line) for line in _lines(slurm.get("sbatch"))]


def render_array(
    *, name: str, tasks: int, array_dir: Path, runs_dir: Path, slurm: Mapping[str, Any], comment: str = ""
) -> str:
    """The text of an array's job.sbatch: `tasks` tasks (0 .. tasks-1) that share the [runner.slurm] options.

    Task i runs `ARRAY_DIR/i/job.sbatch`, where `ARRAY_DIR/i` is a link to its run folder (written by the
    caller before submitting), so Slurm's own messages (a time limit, a cancel) land in that run's log as
    for a plain job. Raises SbatchError for an unsafe value or an array folder outside the runs folder."""
    array_dir = inside(array_dir, runs_dir)
    if tasks < 1:
        raise SbatchError(f"a job array needs at least one task, got {tasks}")
    lines = [
        "#!/bin/bash",
        f"# Written by ftui at {time.strftime('%Y-%m-%d %H:%M:%S')}: {tasks} jobs as one Slurm job array.",
        f"# Task i runs the job.sbatch of the run folder linked as {array_dir}/i ({TASKS_NAME} lists them).",
        option("--job-name", _one_line("array name", name)),
        f"#SBATCH --array=0-{tasks - 1}",
        # through the task's link: the run's own log, appended (the script appends the engine's output too)
        option("--output", f"{slurm_path(array_dir)}/%a/{slurm_path(Path(LOG_NAME))}"),
        "#SBATCH --open-mode=append",
        option("--chdir", str(array_dir)),
    ]
    if comment:
        lines.append(option("--comment", comment))
    lines += shared_options(slurm)
    lines += [
        "",
        "set -e",
        f'cd -P -- {shlex.quote(str(array_dir))}/"$SLURM_ARRAY_TASK_ID"',
        f"exec bash ./{SCRIPT_NAME}",
    ]
    return "\n".join(lines) + "\n"


def _lines(value: Any) -> Sequence[str]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(x, str) for x in value):
        raise SbatchError(f"expected a list of lines, got {value!r}")
    return list(value)
