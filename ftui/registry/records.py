"""The frozen records a registry is made of (see `ftui.registry` for the Registry itself)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of `data`, so a frozen dataclass stays frozen all the way down."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class TaskInfo:
    name: str  # the engine's task name, e.g. "distance"
    short: str  # the study's short code, e.g. "D"


@dataclass(frozen=True)
class Study:
    tasks: tuple[TaskInfo, ...]  # index order: heatmap columns, eval order
    default_profile: str
    seeds: tuple[int, ...]
    runs: str  # runs folder, relative to the registry file unless absolute
    normalisation: str  # "perfect" | "improvement"
    data_seed: int  # sampling seed of training rows, shared by every run (so data caches are shared)
    eval_seed: int  # sampling seed of test queries, shared by every run

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def short(self, task: str) -> str:
        for info in self.tasks:
            if info.name == task:
                return info.short
        return task


@dataclass(frozen=True)
class RunnerSettings:
    gpus: str | tuple[int, ...] = "auto"  # "auto" (detect) or the GPU indices to use
    jobs_per_gpu: int = 1
    cpu_jobs: int = 1  # jobs at once when no GPU is used
    on_worker_crash: str = "resume"  # "resume" re-queues jobs of a dead worker, "fail" marks them failed
    grace_s: float = 30.0  # SIGTERM -> SIGKILL delay when cancelling
    executor: str = "local"  # "local" (engine processes on this machine) or "slurm" (sbatch jobs)
    slurm: SlurmSettings = field(default_factory=lambda: SlurmSettings())


@dataclass(frozen=True)
class AppSettings:
    """[app]: how the Textual app behaves."""

    bell: bool = True  # ring the terminal bell when a job fails or the queue empties (FTUI_BELL overrides)


@dataclass(frozen=True)
class SlurmSettings:
    """[runner.slurm]: what each job's `job.sbatch` asks Slurm for. None: the option is left out (the
    cluster's default applies)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None  # --time, e.g. "2:00:00" or "1-00:00:00"
    gres: str | None = None  # --gres, e.g. "gpu:1" or "gpu:a100:1"
    cpus: int | None = None  # --cpus-per-task
    mem: str | None = None  # --mem, e.g. "16G"
    sbatch: tuple[str, ...] = ()  # extra #SBATCH options, one per line, e.g. "--qos=high"
    setup: tuple[str, ...] = ()  # raw shell lines run before the engine, e.g. "module load cuda/12.4"
    poll_s: float = 10.0  # seconds between squeue polls


@dataclass(frozen=True)
class Profile:
    """A size profile after inheritance: every section fully merged.

    `pretrain` and `finetune` hold the train keys (the profile's `train` section overlaid with the kind's own
    section) plus the recipe keys (standard_rows, atlantis_rows, warmup_rows, epochs_by_set_size).
    """

    name: str
    inherit: str | None
    model: Mapping[str, Any]
    pretrain: Mapping[str, Any]
    finetune: Mapping[str, Any]
    eval: Mapping[str, Any]
    world: Mapping[str, Any] = field(default_factory=lambda: frozen_map({}))

    def kind(self, kind: str) -> Mapping[str, Any]:
        return self.pretrain if kind == "pretrain" else self.finetune


@dataclass(frozen=True)
class Experiment:
    name: str
    family: str | None
    kind: str  # "pretrain" | "finetune"
    tasks: tuple[str, ...]  # engine task names, in the declared order
    parent: str | None  # experiment name (fine-tunes start from its final checkpoint, same seed)
    warmup: bool  # add the profile's warmup_rows atlantis rows of every study task
    seeds: tuple[int, ...]
    overrides: Mapping[str, Any] = field(default_factory=frozen_map)  # keys of a profile's kind section


@dataclass(frozen=True)
class Run:
    """One experiment at one seed: one run folder."""

    experiment: Experiment
    seed: int
    key: str  # "ft2-3" when the experiment has one seed, "ft2-3/seed-42" when several
    rel_dir: str  # folder under the runs folder (== key)
    parent_key: str | None  # the parent run's key (same seed)

    @property
    def name(self) -> str:
        return self.experiment.name


@dataclass(frozen=True)
class HeatmapDef:
    name: str
    family: str  # rows
    predict_from: str | None  # family whose single-task rows predict these rows
    baseline: str  # experiment (normally the pretraining run) that normalisation compares against


def run_key(name: str, seed: int, seeds: tuple[int, ...]) -> str:
    return name if len(seeds) == 1 else f"{name}/seed-{seed}"
