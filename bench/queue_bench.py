"""Queue overhead, printed as figures and ratios in one run (CPU only; `python bench/queue_bench.py`).

1. Dependency finished -> dependant's engine started (target < 1 s), through the real detached worker:
   a. queue overhead alone: a chain of jobs run by a minimal stand-in engine (a package named `engine` put
      first on PYTHONPATH) that records the instant it exits; latency = the next job's process start time
      (from /proc, 10 ms resolution) minus that instant;
   b. with the real engine (smoke pretraining -> fine-tune): the fine-tune's process start minus the parent's
      `end` event (this also counts the engine's own interpreter shutdown), and minus the moment the worker
      recorded the parent as done.
Both commands of 2 run with bytecode caching on (in a temporary PYTHONPYCACHEPREFIX), as installed code does.
2. `ftui list --json` and `ftui list PATTERN` (one run) on runs folders of about 500 and 5,000 runs (`--runs`;
   queue rows, events.jsonl and eval.json files), against `python -c pass` started the same way, side by side
   in one run (issue 18 targets at 5,000 runs: `list --json` <= 250 ms, `list PATTERN` <= 100 ms). The first
   listing after the run folders changed reads them all (printed as "uncached"); later ones read only the
   files whose stat changed (runs/.ftui-cache.json, ftui/run_cache.py). `--clock cpu` measures the commands'
   CPU time instead of their wall time (a machine shared with other work); `--keep DIR` reuses the folders.
3. The worker at `--runs` queued jobs (500 and 5,000 by default): one scheduling pass (target <= 20 ms at
   5,000) and the CPU of an idle worker (target < 2% of one core); see bench/worker_bench.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftui.queue import procs  # noqa: E402
from ftui.queue.store import JobSpec, Store  # noqa: E402
from ftui.queue.worker import ensure_worker, worker_pid  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import worker_bench  # noqa: E402

MINI = REPO / "tests" / "data" / "mini_study.toml"

STAND_IN = '''
"""Stand-in engine for the queue benchmark: writes the files a finished job leaves, records its exit time."""
import os, sys, time
from pathlib import Path
action, run_dir = sys.argv[1], Path(sys.argv[2])
if action == "train":
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints" / "final.pt").write_bytes(b"")
else:
    (run_dir / "eval.json").write_text("{}")
(run_dir / f"exit-{action}.txt").write_text(repr(time.time()))
sys.stdout.flush()
os._exit(0)
'''


def wait(check, what: str, timeout: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_unix(pid_start: int | None) -> float:
    value = procs.ticks_to_unix(pid_start)
    assert value is not None
    return value


def chain_latency(n: int) -> list[float]:
    """Run n jobs, each depending on the previous one, with the stand-in engine; latencies in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "fake" / "engine").mkdir(parents=True)
        (root / "fake" / "engine" / "__init__.py").write_text("")
        (root / "fake" / "engine" / "__main__.py").write_text(STAND_IN)
        runs = root / "runs"
        specs = []
        for i in range(n):
            key = f"job-{i:03d}"
            (runs / key).mkdir(parents=True)
            (runs / key / "config.toml").write_text("# stand-in\n")
            needs = ((f"job-{i - 1:03d}", "train"),) if i else ()
            specs.append(JobSpec(key, key, key, "train", needs))
        store = Store(runs)
        store.set_setting("runner", {"gpus": [], "cpu_jobs": 1})
        store.enqueue(specs)
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(root / "fake") + (os.pathsep + old if old else "")
        try:
            ensure_worker(runs, idle_exit_s=0.5)
        finally:
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old
        wait(lambda: all(j.state == "done" for j in store.jobs()), "the chain")
        jobs = {j.run_key: j for j in store.jobs()}
        latencies = []
        for i in range(1, n):
            exited = float((runs / f"job-{i - 1:03d}" / "exit-train.txt").read_text())
            latencies.append(start_unix(jobs[f"job-{i:03d}"].pid_start) - exited)
        wait(lambda: worker_pid(runs) is None, "the worker to exit")
        return latencies


def real_engine_latency() -> tuple[float, float]:
    """Smoke pretraining -> fine-tune with the real engine: fine-tune process start - parent's end event."""
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "experiments.toml"
        registry.write_text(MINI.read_text())
        cmd = [
            sys.executable,
            "-m",
            "ftui",
            "--registry",
            str(registry),
            "launch",
            "single-1",
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
        store = Store(Path(tmp) / "runs")
        wait(
            lambda: any(
                j.run_key == "single-1" and j.action == "train" and j.pid_start for j in store.jobs()
            ),
            "the fine-tune to start",
        )
        ends = [
            json.loads(x) for x in (Path(tmp) / "runs" / "base" / "events.jsonl").read_text().splitlines()
        ]
        end_t = next(e["t"] for e in ends if e["event"] == "end")
        ft = next(j for j in store.jobs() if j.run_key == "single-1" and j.action == "train")
        base = next(j for j in store.jobs() if j.run_key == "base")
        wait(lambda: all(j.state == "done" for j in store.jobs()), "the sweep")
        wait(lambda: worker_pid(store.runs_dir) is None, "the worker to exit", timeout=60)
        assert base.finished is not None
        return start_unix(ft.pid_start) - end_t, start_unix(ft.pid_start) - base.finished


def big_study(root: Path, seeds: int) -> Path:
    """The mini study with `seeds` seeds (7 experiments x seeds runs) and a populated runs folder."""
    text = re.sub(
        r"^seeds = .*$", f"seeds = {list(range(1, seeds + 1))}", MINI.read_text(), count=1, flags=re.M
    )
    registry = root / "experiments.toml"
    registry.write_text(text)
    sys_path_run = [
        sys.executable,
        "-c",
        textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from ftui.registry import load_registry
        print(json.dumps([[r.key, r.experiment.name, r.rel_dir, r.parent_key] for r in
                          load_registry(Path({str(registry)!r})).all_runs()]))
    """),
    ]
    runs = json.loads(subprocess.run(sys_path_run, check=True, capture_output=True, text=True).stdout)
    store = Store(root / "runs")
    specs = []
    for i, (key, name, rel_dir, parent) in enumerate(runs):
        folder = root / "runs" / rel_dir
        folder.mkdir(parents=True)
        lines = [{"t": 1.0, "event": "start", "action": "train"}]
        lines += [
            {
                "t": 1.0 + s,
                "event": "step",
                "step": s,
                "total_steps": 100,
                "loss": 3.0 - s / 100,
                "eta_s": 100 - s,
                "tokens_per_s": 1e4,
            }
            for s in range(0, 100, 5)
        ]
        (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        if i % 2:
            sets = {
                f"{s}/{t}": {"task": t, "set": s, "metric": "abs_error", "mean": 100.0 + i, "n": 16}
                for s in ("standard", "atlantis")
                for t in ("distance", "angle", "compass")
            }
            (folder / "eval.json").write_text(json.dumps({"format": 1, "name": name, "sets": sets}))
        needs = ((parent, "train"),) if parent else ()
        specs += [
            JobSpec(key, name, rel_dir, "train", needs),
            JobSpec(key, name, rel_dir, "eval", ((key, "train"),)),
        ]
    store.enqueue(specs)
    return registry


# `--clock cpu`, for a machine shared with other work: the command's CPU time (user + system, from the
# kernel's accounting of the finished child) instead of the wall time, which there mostly measures waiting.
CLOCK = "wall"


def median_wall(cmd: list[str], repeat: int, cwd: Path) -> float:
    """Median time of `cmd` (wall, or CPU with `--clock cpu`), in seconds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")  # cached bytecode, as for installed code
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=cwd, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, cmd)
        times.append(usage.ru_utime + usage.ru_stime if CLOCK == "cpu" else wall)
    return statistics.median(times)


def list_command() -> list[str]:
    return [sys.executable, "-m", "ftui"]


def list_times(registry: Path, repeat: int) -> dict[str, float]:
    """Median wall times (s) of `ftui list --json` (uncached: its first run after the cache is removed) and
    of `ftui list PATTERN` matching one run, in the study's folder."""
    folder = registry.parent
    cmd = list_command() + ["--registry", str(registry), "list"]
    (folder / "runs" / ".ftui-cache.json").unlink(missing_ok=True)
    median_wall(cmd + ["--json"], 1, folder)  # write the bytecode cache
    (folder / "runs" / ".ftui-cache.json").unlink(missing_ok=True)
    uncached = median_wall(cmd + ["--json"], 1, folder)
    median_wall(cmd + ["--json"], 1, folder)  # warm the page cache
    return {
        "json": median_wall(cmd + ["--json"], repeat, folder),
        "uncached": uncached,
        "one": median_wall(cmd + ["pair-2/seed-3"], repeat, folder),
    }


def list_bench(sizes: list[int], repeat: int, keep: Path | None) -> None:
    """Section 2: `ftui list` at each size, side by side, as ratios to `python -c pass`."""
    with tempfile.TemporaryDirectory() as tmp:
        studies = {}
        for size in sizes:
            seeds = max(3, math.ceil(size / 7))
            root = (keep or Path(tmp)) / f"study-{seeds}-seeds"
            if not (root / "experiments.toml").is_file():
                root.mkdir(parents=True, exist_ok=True)
                big_study(root, seeds)
            studies[size] = root / "experiments.toml"
        base = median_wall([sys.executable, "-c", "pass"], repeat, Path(tmp))
        print(f"`python -c pass`: {base * 1000:.0f} ms")
        for registry in studies.values():
            out = subprocess.run(
                list_command() + ["--registry", str(registry), "list", "--json"],
                check=True, capture_output=True, text=True, cwd=registry.parent,
            ).stdout  # fmt: skip
            n = len(json.loads(out)["runs"])
            t = list_times(registry, repeat)
            print(
                f"{n} runs: `ftui list --json` {t['json'] * 1000:.0f} ms ({t['json'] / base:.1f}x"
                f" python -c pass; uncached {t['uncached'] * 1000:.0f} ms); `ftui list PATTERN` (one run)"
                f" {t['one'] * 1000:.0f} ms ({t['one'] / base:.1f}x)"
                + (
                    f" (targets: <= 250 ms: {t['json'] <= 0.25}; <= 100 ms: {t['one'] <= 0.1})"
                    if n >= 5000
                    else ""
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chain", type=int, default=12, help="jobs in the stand-in chain")
    parser.add_argument(
        "--runs",
        type=int,
        nargs="+",
        default=[500, 5000],
        help="sizes measured: runs of the list studies (7 per seed) and queued jobs of the worker section",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="make (or reuse) the list studies in this folder"
    )
    parser.add_argument("--skip-chain", action="store_true", help="only the list and worker sections")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-real", action="store_true", help="skip the real-engine latency")
    parser.add_argument("--idle-s", type=float, default=10.0, help="seconds of idle worker CPU measured")
    parser.add_argument("--skip-worker", action="store_true", help="no worker section (3.)")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="the list section's clock (see CLOCK)"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = args.clock
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f},"
        f" {args.clock} clock"
    )

    if not args.skip_chain:
        chain_and_real_engine(args.chain, args.skip_real)
    list_bench(args.runs, args.repeat, args.keep)
    if not args.skip_worker:  # ---- the worker at thousands of queued jobs (issue 18) ----
        worker_bench.report(args.runs, args.idle_s)


def chain_and_real_engine(chain: int, skip_real: bool) -> None:
    lat = chain_latency(chain)
    print(
        f"dependency exit -> next engine process start, queue only ({len(lat)} hand-offs): "
        f"median {statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
        f"(target < 1000 ms: {max(lat) < 1.0})"
    )
    if not skip_real:
        from_end, from_done = real_engine_latency()
        print(
            f"real engine: parent's end event -> fine-tune process start {from_end * 1000:.0f} ms (includes "
            f"the engine's interpreter shutdown); parent marked done -> start {from_done * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
