"""Where the worker runs jobs: `local` (engine processes on this machine) or `slurm` (sbatch jobs).

The worker keeps the queue (dependencies, states, retries) and asks an executor to start, watch and stop a
job; see `base.Executor`.
"""

from ftui.queue.executors.base import Ended, Executor
from ftui.queue.executors.local import LocalExecutor, Tracked
from ftui.queue.executors.slurm import SlurmExecutor

__all__ = ["Ended", "Executor", "LocalExecutor", "SlurmExecutor", "Tracked"]
