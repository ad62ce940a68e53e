"""The worker at thousands of queued jobs, printed as figures and ratios measured in one run (CPU only).

For each size N (jobs in the queue: N/2 runs with a train and an eval each, in families of 50 runs, a
pretraining parent and 49 fine-tunes of it), on a real runs folder and the real LocalExecutor:

1. Scheduling pass (target <= 20 ms at 5,000 jobs), in this process, with one CPU slot:
   a. hand-off: a stand-in engine (a package named `engine` first on PYTHONPATH) exits, and one
      `Worker.step()` records it done, queues what waited on it and starts the next engine; median and max
      over the hand-offs, with the time spent inside `subprocess.Popen` (the fork and exec of the engine,
      which a loaded machine makes slow whatever the queue) printed apart;
   b. a pass with the slot busy after another process changed the queue (a `ftui pause` then `resume`
      from a second connection): everything the pass reads, nothing to start;
   c. a pass with the slot busy and nothing changed (what an idle worker does five times a second).
   Ratios: to a bare `SELECT 1` round trip on the worker's own connection, and N jobs to N/10 jobs.
2. Idle CPU (target < 2% of one core): the real detached worker (`python -m ftui.queue.worker`) serving the
   N jobs while the first engine runs (every other job waits for it or for the slot), then with the queue
   paused; utime + stime of the worker from /proc/<pid>/stat over `idle_s` seconds, as % of one core.

    .venv/bin/python bench/worker_bench.py [--runs 500 5000] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftui.queue import procs  # noqa: E402
from ftui.queue.store import DONE, RUNNING, JobSpec, Store  # noqa: E402
from ftui.queue.worker import Worker, ensure_worker, stop_worker, worker_pid  # noqa: E402

FAMILY = 50  # runs per family: one pretraining parent and its fine-tunes

# The stand-in engine: leaves the product of a finished job at once, unless the run folder holds a `hold`
# file, in which case it waits (sleeping) until that file goes away.
STAND_IN = """
import os, sys, time
from pathlib import Path
action, run_dir = sys.argv[1], Path(sys.argv[2])
while (run_dir / "hold").exists():
    time.sleep(0.5)
if action == "train":
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints" / "final.pt").write_bytes(b"")
else:
    (run_dir / "eval.json").write_text("{}")
os._exit(0)
"""


def queue_of(runs: Path, jobs: int) -> Store:
    """A runs folder whose queue holds `jobs` open jobs (train + eval per run; fine-tunes wait for their
    family's pretraining), one CPU slot, each run folder with a config.toml."""
    specs = []
    for i in range(jobs // 2):
        family, member = divmod(i, FAMILY)
        key = f"pt-{family}" if member == 0 else f"ft-{family}-{member}"
        (runs / key).mkdir(parents=True)
        (runs / key / "config.toml").write_text("# stand-in\n")
        needs = ((f"pt-{family}", "train"),) if member else ()
        specs += [JobSpec(key, key, key, "train", needs), JobSpec(key, key, key, "eval", ((key, "train"),))]
    store = Store(runs)
    store.set_setting("runner", {"gpus": [], "cpu_jobs": 1})
    store.enqueue(specs)
    return store


@contextmanager
def stand_in_engine(root: Path) -> Iterator[None]:
    """Put the stand-in `engine` package first on PYTHONPATH (the worker's engines inherit it)."""
    (root / "fake" / "engine").mkdir(parents=True)
    (root / "fake" / "engine" / "__init__.py").write_text("")
    (root / "fake" / "engine" / "__main__.py").write_text(STAND_IN)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(root / "fake") + (os.pathsep + old if old else "")
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def select_1(store: Store, repeat: int = 2000) -> float:
    """Median seconds of a bare `SELECT 1` round trip through the Store's connection."""
    return statistics.median(timed(lambda: store._read("SELECT 1"), repeat))


def pass_times(jobs: int, hand_offs: int = 8, repeat: int = 30) -> dict[str, float]:
    """Seconds per `Worker.step()` (1a-1c above) on a queue of `jobs` jobs."""
    with tempfile.TemporaryDirectory() as tmp, stand_in_engine(Path(tmp)):
        runs = Path(tmp) / "runs"
        store = queue_of(runs, jobs)
        worker = Worker(runs, gpus=[], log=open(os.devnull, "w"))  # noqa: SIM115
        other = Store(runs)  # another process's connection: `ftui pause` / `resume`
        try:
            worker.reconcile()
            hand, spawns = [], []
            with timed_spawns() as spawn:
                for _ in range(hand_offs + 1):
                    for t in worker.tracked.values():
                        assert t.popen is not None
                        t.popen.wait()
                    spawn.clear()
                    t0 = time.perf_counter()
                    worker.step()
                    hand.append(time.perf_counter() - t0)
                    spawns.append(sum(spawn))
            hand, spawns = hand[1:], spawns[1:]  # the first pass only starts the first engine
            # keep the slot busy: the running engine holds until its `hold` file goes
            running = [j for j in store.jobs(states=[RUNNING])]
            assert len(running) == 1, running
            held = runs / running[0].rel_dir / "hold"
            held.touch()
            worker.step()  # settle whatever the last hand-off left

            def changed() -> None:
                other.set_paused(True)
                other.set_paused(False)
                t0 = time.perf_counter()
                worker.step()
                changed_times.append(time.perf_counter() - t0)

            changed_times: list[float] = []
            for _ in range(repeat):
                changed()
            idle = timed(worker.step, repeat)
            base = select_1(worker.store)
            held.unlink()
            done = sum(1 for j in store.jobs() if j.state == DONE)
            assert done >= hand_offs, done
        finally:
            for t in worker.tracked.values():
                procs.signal_group(t.pgid, signal.SIGKILL)
            worker.store.close()
            other.close()
            store.close()
    return {
        "hand_off": statistics.median(hand),
        "hand_off_max": max(hand),
        "scheduling": statistics.median(h - s for h, s in zip(hand, spawns, strict=True)),
        "scheduling_max": max(h - s for h, s in zip(hand, spawns, strict=True)),
        "spawn": statistics.median(spawns),
        "changed": statistics.median(changed_times),
        "idle": statistics.median(idle),
        "select_1": base,
    }


@contextmanager
def timed_spawns() -> Iterator[list[float]]:
    """Seconds spent in each `subprocess.Popen(...)` call (the real one) while inside: the engine's spawn,
    which a loaded machine makes slow whatever the queue, is reported apart from the scheduling."""
    spent: list[float] = []
    real = subprocess.Popen

    class TimedPopen(real):
        def __init__(self, *args: object, **kwargs: object) -> None:
            t0 = time.perf_counter()
            super().__init__(*args, **kwargs)
            spent.append(time.perf_counter() - t0)

    subprocess.Popen = TimedPopen
    try:
        yield spent
    finally:
        subprocess.Popen = real


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(jobs: int, idle_s: float) -> dict[str, float]:
    """% of one core the detached worker uses while (a) the first engine runs and every other job waits,
    (b) the queue is paused with nothing running."""
    with tempfile.TemporaryDirectory() as tmp, stand_in_engine(Path(tmp)):
        runs = Path(tmp) / "runs"
        store = queue_of(runs, jobs)
        first = store.jobs(states=["queued"])[0]
        (runs / first.rel_dir / "hold").touch()
        result: dict[str, float] = {}
        try:
            pid = ensure_worker(runs, idle_exit_s=3600)
            assert pid is not None
            deadline = time.monotonic() + 60
            while not any(j.pid for j in store.jobs(states=[RUNNING])):
                assert time.monotonic() < deadline, "the first engine did not start"
                time.sleep(0.05)
            time.sleep(1.0)  # let it settle
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(idle_s)
            result["slot_busy"] = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
            store.set_paused(True)
            (runs / first.rel_dir / "hold").unlink()
            while store.jobs(states=[RUNNING]):
                assert time.monotonic() < deadline + 60, "the first engine did not end"
                time.sleep(0.05)
            time.sleep(1.0)
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(idle_s)
            result["paused"] = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
        finally:
            stop_worker(runs)
            for j in store.jobs(states=[RUNNING]):
                if j.pgid:
                    procs.signal_group(j.pgid, signal.SIGKILL)
            assert worker_pid(runs) is None
            store.close()
    return result


def report(sizes: list[int], idle_s: float) -> None:
    """Print 1 and 2 for each size (the figures the docs quote)."""
    passes = {n: pass_times(n) for n in sizes}
    smallest = min(sizes)
    for n in sizes:
        p = passes[n]
        ratio = p["scheduling"] / passes[smallest]["scheduling"]
        scale = f", {ratio:.1f}x the {smallest}-job pass" if n > smallest else ""
        print(
            f"worker pass, {n} jobs: hand-off (reap, queue the dependants, start the next engine) median "
            f"{p['scheduling'] * 1000:.1f} ms, max {p['scheduling_max'] * 1000:.1f} ms, plus the engine's "
            f"Popen {p['spawn'] * 1000:.1f} ms (whole pass median {p['hand_off'] * 1000:.1f} ms, max "
            f"{p['hand_off_max'] * 1000:.1f} ms) = {p['scheduling'] / p['select_1']:.0f}x a `SELECT 1` of "
            f"{p['select_1'] * 1e6:.0f} us{scale}; target <= 20 ms: {p['scheduling'] <= 0.020}; slot busy, "
            f"queue changed {p['changed'] * 1000:.2f} ms; nothing changed {p['idle'] * 1000:.2f} ms"
        )
    for n in sizes:
        cpu = idle_cpu(n, idle_s)
        print(
            f"idle worker, {n} jobs, over {idle_s:g} s: {cpu['slot_busy']:.2f}% of one core while one engine "
            f"runs and the rest wait, {cpu['paused']:.2f}% with the queue paused (target < 2%: "
            f"{max(cpu.values()) < 2.0})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[500, 5000], help="jobs in the queue")
    parser.add_argument("--idle-s", type=float, default=10.0, help="seconds of idle CPU measured")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    report(args.runs, args.idle_s)


if __name__ == "__main__":
    main()
