"""Run the wb part of the study headless through ftui, wait for it, and pack the results into one archive.

    python scripts/sweep.py                    # profile `laptop`: pt1, ftwb1-*, ftwb2-* on 2 CPU cores
    python scripts/sweep.py --profile reduced  # the paper's model on a GPU, in minutes
    python scripts/sweep.py --profile smoke --runs /tmp/r --out /tmp/r.tar.gz    # the path, in a minute

It uses only the ftui command line (`ftui launch`, then `ftui list --json` every few seconds), exactly as a
user would over SSH. The archive holds, per run, `eval.json`, `config.toml` and the last lines of
`events.jsonl` (no checkpoints), plus `RESULTS.json` (what ran, where, when, from which commit, how long).
Unpacked, it is a runs folder: `ftui --runs DIR` opens it read-only; `ftui heatmap/predict --runs DIR` work
(with the registry that made it: from the repository root, or with `--registry`).
Exit 0 when every run finished, 1 when some failed or the time limit passed (the archive is written anyway).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"done", "failed", "cancelled", "blocked"}
EVENTS_TAIL_LINES = 50


def ftui(args: list[str], registry: Path, runs: Path, profile: str) -> subprocess.CompletedProcess[str]:
    common = ["--registry", str(registry), "--runs", str(runs), "--profile", profile]
    argv = [sys.executable, "-m", "ftui", *common, *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True)


def wait_for(
    patterns: list[str], registry: Path, runs: Path, profile: str, limit_s: float, poll_s: float
) -> list[dict]:
    """Poll `ftui list --json` until every run is in a terminal state or the limit passes."""
    deadline = time.monotonic() + limit_s
    last_line = ""
    while True:
        listing = ftui(["list", *patterns, "--json"], registry, runs, profile)
        if listing.returncode != 0:
            raise SystemExit(f"ftui list failed ({listing.returncode}): {listing.stderr.strip()}")
        rows: list[dict] = json.loads(listing.stdout)["runs"]
        states: dict[str, int] = {}
        for row in rows:
            states[row["state"]] = states.get(row["state"], 0) + 1
        line = "  ".join(f"{k} {v}" for k, v in sorted(states.items()))
        if line != last_line:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last_line = line
        if all(row["state"] in TERMINAL for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(poll_s)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else os.environ.get("FTUI_COMMIT", "unknown")


def _device(runs: Path, rows: list[dict]) -> str:
    """The device the engine reported in a run's start event (e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)')."""
    for row in rows:
        events = runs / row["key"] / "events.jsonl"
        if events.is_file():
            for line in events.read_text().splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "start" and event.get("device"):
                    return str(event["device"])
    return "unknown"


def _study_span(runs: Path, rows: list[dict]) -> dict[str, float]:
    """First start and last end event over the runs (unix time) and the span between: the study's wall time
    even when some runs were launched before this script (events are the runs' own record)."""
    first, last = float("inf"), 0.0
    for row in rows:
        events = runs / row["key"] / "events.jsonl"
        if not events.is_file():
            continue
        for line in events.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "start":
                first = min(first, float(event["t"]))
            elif event.get("event") == "end":
                last = max(last, float(event["t"]))
    if not last:
        return {}
    return {"first_start_t": first, "last_end_t": last, "study_wall_s": round(last - first, 1)}


def _machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {mem:.0f} GiB, {platform.system()}"


def pack(rows: list[dict], runs: Path, out: Path, meta: dict) -> None:
    top = out.name.removesuffix(".tar.gz")
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for row in rows:
            folder = runs / row["key"]
            for name in ("eval.json", "config.toml"):
                if (folder / name).is_file():
                    tar.add(folder / name, arcname=f"{top}/{row['key']}/{name}")
            events = folder / "events.jsonl"
            if events.is_file():
                tail = events.read_text().splitlines()[-EVENTS_TAIL_LINES:]
                _add_bytes(tar, f"{top}/{row['key']}/events.jsonl", ("\n".join(tail) + "\n").encode())
        _add_bytes(tar, f"{top}/RESULTS.json", (json.dumps(meta, indent=1) + "\n").encode())
    os.replace(tmp, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--registry", type=Path, default=REPO / "experiments.toml")
    ap.add_argument("--runs", type=Path, default=None, help="default: runs-PROFILE")
    ap.add_argument("--out", type=Path, default=None, help="default: results-PROFILE.tar.gz")
    ap.add_argument("--limit-s", type=float, default=3600.0, help="give up waiting after this many seconds")
    ap.add_argument("--poll-s", type=float, default=5.0)
    ap.add_argument("patterns", nargs="*", default=["pt1", "ftwb1-*", "ftwb2-*"])
    args = ap.parse_args()
    args.runs = args.runs or REPO / f"runs-{args.profile}"
    args.out = args.out or REPO / f"results-{args.profile}.tar.gz"

    t0 = time.time()
    launched = ftui(["launch", *args.patterns], args.registry, args.runs, args.profile)
    print(launched.stdout + launched.stderr, end="", flush=True)
    if launched.returncode != 0:
        return launched.returncode
    rows = wait_for(args.patterns, args.registry, args.runs, args.profile, args.limit_s, args.poll_s)
    wall = time.time() - t0
    failed = [r["key"] for r in rows if r["state"] != "done"]
    meta = {
        "produced_by": f"python scripts/sweep.py --profile {args.profile} {' '.join(args.patterns)}",
        "profile": args.profile,
        "runs": len(rows),
        "done": len(rows) - len(failed),
        "not_done": failed,
        "device": _device(args.runs, rows),
        "machine": _machine(),
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d", time.gmtime(t0)),
        "commit": _git_commit(),
        "wall_s": round(wall, 1),
        **_study_span(args.runs, rows),
    }
    pack(rows, args.runs, args.out, meta)
    done = f"{meta['done']}/{meta['runs']} runs done"
    print(f"{done} in {wall / 60:.1f} min on {meta['device']}; wrote {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
