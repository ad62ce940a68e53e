"""Slurm submission and polling at scale, with fake Slurm commands that count their calls (no cluster needed):
`python bench/slurm_bench.py [--runs 500 1000 5000] [--baseline-max 1000]`.

For each size N: a runs folder with N run folders and N queued training jobs (executor slurm, the same
[runner.slurm] options), driven by the real worker (`Worker.step`, one pass at a time):
1. submit: one pass claims the N jobs and submits them (job arrays: one sbatch per 1,000 alike jobs);
2. poll: one pass while all are PENDING: one squeue for every job and task;
3. end: all COMPLETED (each run has its final.pt): one pass settles them (squeue, then the exit codes:
   scontrol per array, one sacct for what scontrol did not know).
Each is shown side by side with the same steps submitting one plain job per run (what ftui did before job
arrays; `slurm_arrays.MAX_TASKS = 1`), for N up to --baseline-max (one fake sbatch process per run).
The fakes are /bin/sh scripts on PATH over one job table: sbatch appends one row per job or array task,
squeue prints the table, scontrol prints the records of one job or array, sacct knows nothing (no
accounting). Call counts are exact; the times are this machine's, under whatever else it runs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftui.queue.executors import slurm_arrays  # noqa: E402
from ftui.queue.store import JobSpec, Store  # noqa: E402
from ftui.queue.worker import Worker  # noqa: E402

# Job table rows: id|state|reason|partition|node|raw id (id is JOBID or JOBID_TASK)
FAKES = {
    "sbatch": r"""#!/bin/sh
S=$FAKE_SLURM; echo sbatch >> "$S/calls"
for script; do :; done
n=$(cat "$S/next_id" 2>/dev/null || echo 1001); echo $((n + 1)) > "$S/next_id"
last=$(sed -n 's/^#SBATCH --array=0-\([0-9]*\)$/\1/p' "$script")
if [ -n "$last" ]; then
  awk -v n="$n" -v last="$last" \
    'BEGIN { for (i = 0; i <= last; i++) printf "%s_%d|PENDING|Priority|debug||%d\n", n, i, n * 10000 + i }' \
    >> "$S/jobs"
else
  echo "$n|PENDING|Priority|debug||$n" >> "$S/jobs"
fi
echo "$n"
""",
    "squeue": r"""#!/bin/sh
S=$FAKE_SLURM; echo squeue >> "$S/calls"
case "$*" in *'%i|%T|%r|%P|%N|%A'*) cat "$S/jobs" ;; esac
""",
    "scontrol": r"""#!/bin/sh
S=$FAKE_SLURM; echo scontrol >> "$S/calls"
for id; do :; done
awk -F'|' -v want="$id" '{
  split($1, a, "_")
  if (a[1] != want && $1 != want) next
  if (2 in a) printf "JobId=%s ArrayJobId=%s ArrayTaskId=%s", $6, a[1], a[2]; else printf "JobId=%s", $1
  printf " JobState=%s Reason=None ExitCode=0:0 Partition=%s NodeList=n1\n", $2, $4
}' "$S/jobs"
""",
    "sacct": r"""#!/bin/sh
echo sacct >> "$FAKE_SLURM/calls"
""",
    "scancel": r"""#!/bin/sh
echo scancel >> "$FAKE_SLURM/calls"
""",
}


@dataclass
class Pass:
    seconds: float
    calls: dict[str, int]

    def show(self, *names: str) -> str:
        counts = ", ".join(f"{self.calls.get(n, 0)} {n}" for n in names)
        return f"{counts} ({self.seconds * 1000:.0f} ms)"


class FakeSlurm:
    def __init__(self, folder: Path) -> None:
        self.state = folder / "slurm-state"
        self.bin = folder / "slurm-bin"
        self.state.mkdir()
        self.bin.mkdir()
        (self.state / "jobs").write_text("")
        for name, body in FAKES.items():
            (self.bin / name).write_text(body)
            (self.bin / name).chmod(0o755)

    def calls(self) -> dict[str, int]:
        path = self.state / "calls"
        counts: dict[str, int] = {}
        for line in path.read_text().split() if path.exists() else []:
            counts[line] = counts.get(line, 0) + 1
        path.unlink(missing_ok=True)
        return counts

    def complete_all(self) -> None:
        jobs = self.state / "jobs"
        jobs.write_text(jobs.read_text().replace("|PENDING|Priority|", "|COMPLETED|None|"))


def timed_pass(worker: Worker, slurm: FakeSlurm) -> Pass:
    slurm.calls()
    t0 = time.perf_counter()
    worker.step()
    return Pass(time.perf_counter() - t0, slurm.calls())


def scenario(folder: Path, n: int, max_tasks: int) -> tuple[Pass, Pass, Pass]:
    """Submit, poll and settle N training jobs; arrays of at most `max_tasks` tasks (1: plain jobs)."""
    slurm = FakeSlurm(folder)
    os.environ["PATH"] = f"{slurm.bin}:{os.environ['PATH']}"
    os.environ["FAKE_SLURM"] = str(slurm.state)
    runs = folder / "runs"
    for i in range(n):
        (runs / f"f-{i}").mkdir(parents=True)
        (runs / f"f-{i}" / "config.toml").write_text("")
    store = Store(runs)
    store.set_setting("runner", {"executor": "slurm", "slurm": {"partition": "debug", "time": "60"}})
    store.enqueue([JobSpec(f"f-{i}", "f", f"f-{i}", "train", executor="slurm") for i in range(n)])
    worker = Worker(runs, log=io.StringIO(), gpus=[])
    slurm_arrays.MAX_TASKS = max_tasks
    try:
        submit = timed_pass(worker, slurm)
        poll = timed_pass(worker, slurm)
        for i in range(n):
            (runs / f"f-{i}" / "checkpoints").mkdir()
            (runs / f"f-{i}" / "checkpoints" / "final.pt").write_bytes(b"")
        slurm.complete_all()
        end = timed_pass(worker, slurm)
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(":", 1)[1]
    states = [j.state for j in store.jobs()]
    assert states == ["done"] * n, f"not all settled: {sorted(set(states))}"
    return submit, poll, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[500, 1000, 5000])
    parser.add_argument("--baseline-max", type=int, default=1000, help="largest N for the per-job baseline")
    args = parser.parse_args()
    os.environ["FTUI_SLURM_POLL"] = "0"  # poll on every pass
    default_max = slurm_arrays.MAX_TASKS
    print(f"Slurm bench (fake sbatch/squeue/scontrol/sacct counting their calls), {os.cpu_count()} CPUs")
    for n in args.runs:
        with tempfile.TemporaryDirectory(prefix="ftui-slurm-bench-") as tmp:
            arrays = scenario(Path(tmp), n, default_max)
        base = None
        if n <= args.baseline_max:
            with tempfile.TemporaryDirectory(prefix="ftui-slurm-bench-") as tmp:
                base = scenario(Path(tmp), n, 1)
        print(f"\n{n} runs, one family, the same [runner.slurm] options")
        for label, i, names in (
            ("submit", 0, ("sbatch",)),
            ("poll", 1, ("squeue",)),
            ("end", 2, ("squeue", "scontrol", "sacct")),
        ):
            line = f"  {label:<7} arrays: {arrays[i].show(*names)}"
            if base is not None:
                line += f" | one job per run: {base[i].show(*names)}"
                calls = sum(base[i].calls.get(x, 0) for x in names)
                mine = sum(arrays[i].calls.get(x, 0) for x in names)
                line += f" | {calls / max(mine, 1):.0f}x fewer calls"
            print(line)


if __name__ == "__main__":
    main()
