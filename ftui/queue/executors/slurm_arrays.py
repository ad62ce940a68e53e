"""Job arrays: many alike jobs submitted with one `sbatch` call (see docs/slurm.md, "Job arrays").

An array lives in `RUNS/.slurm/<token>/`: its `job.sbatch` (sbatch.render_array), `tasks.json` (which queue
job and attempt each task index runs) and one link per task, `<index>` -> the task's run folder, whose own
`job.sbatch` the task runs. Slurm names a task `ARRAYID_INDEX`; that is the id the queue records, so
`scancel`, `squeue` and `scontrol` address one run. This module writes that folder and reads it back: to
tell which run folder an array task works in (squeue's working folder of a task is the array's folder), and
to find a task submitted just before a worker crash.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ftui.atomic import atomic_write_bytes
from ftui.queue.executors import sbatch
from ftui.queue.executors.slurm_states import FolderJob
from ftui.queue.model import Job

# Slurm's MaxArraySize defaults to 1001 (indices 0..1000): a larger batch is split into arrays of this size.
MAX_TASKS = 1000


@dataclass(frozen=True)
class ArrayTask:
    """What one array task runs: the queue job (id and attempt) and its run folder (relative to the runs
    folder)."""

    job_id: int
    attempt: int
    run_key: str
    action: str
    rel_dir: str


def new_array_dir(runs_dir: Path) -> Path:
    """A fresh, not yet created folder for one array: `RUNS/.slurm/<date-time>-<random>`."""
    token = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    return runs_dir / sbatch.ARRAYS_DIR / token


def array_comment(db_path: Path, array_dir: Path) -> str:
    """The array's `--comment`: names the queue database and the array folder (its tasks.json)."""
    return f"{db_path}#array#{array_dir.name}"


def write_array(array_dir: Path, jobs: Sequence[Job], run_dirs: Sequence[Path]) -> list[ArrayTask]:
    """Create the array folder: tasks.json and a link per task index to its run folder (the script is
    written by the caller). Task i is jobs[i]. Raises OSError."""
    array_dir.mkdir(parents=True)
    tasks = [ArrayTask(j.id, j.attempts, j.run_key, j.action, j.rel_dir) for j in jobs]
    for index, run_dir in enumerate(run_dirs):
        os.symlink(run_dir.resolve(), array_dir / str(index), target_is_directory=True)
    text = json.dumps({"tasks": [asdict(t) for t in tasks]}, indent=1)
    atomic_write_bytes(array_dir / sbatch.TASKS_NAME, text.encode())
    return tasks


class ArrayIndex:
    """Reads arrays' tasks.json, each at most once (an array's tasks never change after submission)."""

    def __init__(self, runs_dir: Path) -> None:
        self.root = (runs_dir / sbatch.ARRAYS_DIR).resolve()
        self._tasks: dict[Path, list[ArrayTask]] = {}

    def tasks(self, array_dir: Path) -> list[ArrayTask]:
        """The tasks of the array in `array_dir` ([] when it is not one of ours or cannot be read)."""
        if array_dir in self._tasks:
            return self._tasks[array_dir]
        try:
            data = json.loads((array_dir / sbatch.TASKS_NAME).read_text())
            tasks = [ArrayTask(**t) for t in data["tasks"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []  # not cached: a folder being written now is read again next time
        self._tasks[array_dir] = tasks
        return tasks

    def task(self, array_dir: Path, slurm_id: str) -> ArrayTask | None:
        """The task `ARRAYID_INDEX` of the array in `array_dir`, or None."""
        _, _, index = slurm_id.partition("_")
        if not index.isdigit():
            return None
        tasks = self.tasks(array_dir)
        return tasks[int(index)] if int(index) < len(tasks) else None

    def as_run_job(self, found: FolderJob, runs_dir: Path) -> FolderJob:
        """An array task of ours as the job it runs: its run folder and job name (so a check for a job
        still alive in a run folder sees it); any other job unchanged."""
        if "_" not in found.slurm_id or not found.workdir:
            return found
        workdir = Path(found.workdir)
        if workdir.parent != self.root and workdir.resolve().parent != self.root:
            return found
        task = self.task(workdir, found.slurm_id)
        if task is None:
            return found
        return FolderJob(
            found.slurm_id,
            found.state,
            sbatch.job_name(task.run_key, task.action),
            str(runs_dir / task.rel_dir),
        )

    def find(self, comment: str, db_path: Path, slurm_id: str, job: Job) -> bool:
        """Whether squeue's `slurm_id` with `comment` is the array task that runs this attempt of `job`."""
        prefix = f"{db_path}#array#"
        if not comment.startswith(prefix):
            return False
        task = self.task(self.root / comment[len(prefix) :], slurm_id)
        return task is not None and task.job_id == job.id and task.attempt == job.attempts
