"""The run directory on the ftui side (docs/run-directory.md): its file names, whether a run is trained or
evaluated on disk, progress from `events.jsonl` (the events fold), and typed results from `eval.json`.

The app polls every run about once a second, so reading must be cheap: a reader keeps, per file, the byte
offset it has parsed up to and the (size, mtime, inode) it saw. An unchanged file costs one `stat`; a grown
file costs reading only the appended bytes. Only complete lines are parsed (the engine may be half-way through
writing the last one); a corrupt line is counted and skipped, never fatal.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ftui.appended import next_anchor, read_on

# The files of a run directory (the engine writes them; docs/run-directory.md). Spelled here only.
CONFIG = "config.toml"
EVENTS = "events.jsonl"
RESULTS = "eval.json"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
FINAL_CHECKPOINT = os.path.join(CHECKPOINTS, "final.pt")
StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class RunProgress:
    """What the events of a run say so far. Times are unix seconds; None = not reported yet."""

    action: str | None = None  # action of the newest `start` event: "train" | "eval"
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None  # as the engine reported it with the last step event (see `eta_now`)
    resumed_from_step: int | None = None
    device: str | None = None
    eval_set: str | None = None  # newest eval event: the set just finished, sets finished / all sets
    eval_done: int | None = None
    eval_total: int | None = None
    eval_sets_done: int = 0  # sets finished since the newest eval start (the engine's `done`)
    end_reason: str | None = None  # reason of the `end` event after the newest start ("finished", ...)
    error: str | None = None  # message of an `error` event after the newest start
    last_event_t: float | None = None
    last_step_t: float | None = None
    corrupt_lines: int = 0  # lines that were complete but not valid JSON objects
    losses: tuple[float, ...] = ()  # recent losses, oldest first (for a sparkline)
    # Lineage (docs/run-directory.md): sha256 of checkpoints/final.pt as the engine wrote it, and of the
    # parent checkpoint the weights started from; None when not recorded (before final.pt, an older engine).
    final_digest: str | None = None
    parent_digest: str | None = None
    # (t, step) of the newest step events since the newest start, oldest first (for `steps_per_s`)
    step_times: tuple[tuple[float, int], ...] = ()

    def steps_per_s(self) -> float | None:
        """Training steps per second: the median rate between the recent step events (None before two).

        The engine's own ETA comes from its last interval alone, so one slow interval (a checkpoint saved on a
        busy machine) made it swing from 14 min to 2 h 49 min and back within 20 s. The median of the last
        RATE_INTERVALS intervals does not move for one slow interval, and follows a lasting change of speed
        after about half of them.
        """
        import statistics  # here: `ftui list` of runs that are not training never needs it

        rates = [
            (s1 - s0) / (t1 - t0)
            for (t0, s0), (t1, s1) in itertools.pairwise(self.step_times)
            if t1 > t0 and s1 > s0
        ]
        return statistics.median(rates) if rates else None

    def eta_now(self, now: float | None = None) -> float | None:
        """Seconds of training left: the steps left at the smoothed rate (`steps_per_s`; the engine's `eta_s`
        until two step events are in), counted down from the last step event. None when not training."""
        # action None: a first read of a long events.jsonl starts after the `start` event (COLD_TAIL)
        if self.action not in (None, "train") or self.last_step_t is None or self.end_reason is not None:
            return None
        rate = self.steps_per_s()
        if rate and self.step is not None and self.total_steps is not None:
            eta: float | None = max(0, self.total_steps - self.step) / rate
        else:
            eta = self.eta_s
        if eta is None:
            return None
        now = time.time() if now is None else now
        return max(0.0, eta - (now - self.last_step_t))


MAX_LOSSES = 200
RATE_INTERVALS = 15  # step intervals the ETA's rate is the median of (`RunProgress.steps_per_s`)
COLD_READ_LIMIT = 1 << 20  # a first read of a larger events.jsonl parses only its last COLD_TAIL bytes
COLD_TAIL = 256 << 10
_STEP = re.compile(rb'"event"\s*:\s*"step"')


def _fold(d: dict[str, Any], ev: dict[str, Any]) -> None:
    """The events fold: one event into `d`, a mutable dict of RunProgress fields (no object per event: this
    is hot)."""
    kind = ev.get("event")
    t = _num(ev.get("t"))
    if t is not None:
        d["last_event_t"] = t
    if kind == "step":
        loss = _num(ev.get("loss"))
        step = _int(ev.get("step"))
        if t is not None and step is not None:
            times = d["step_times"]
            if times and step < times[-1][1]:  # steps went back without a start event: a new series
                times = ()
            d["step_times"] = (times + ((t, step),))[-(RATE_INTERVALS + 1) :]
        d.update(
            step=step,
            total_steps=_int(ev.get("total_steps")),
            epoch=_num(ev.get("epoch")),
            loss=loss,
            lr=_num(ev.get("lr")),
            tokens_per_s=_num(ev.get("tokens_per_s")),
            eta_s=_num(ev.get("eta_s")),
            last_step_t=t,
        )
        if loss is not None:
            d["losses"] = (d["losses"] + (loss,))[-MAX_LOSSES:]
    elif kind == "start":
        action = ev.get("action")
        d.update(
            action=action if isinstance(action, str) else None,
            resumed_from_step=_int(ev.get("resumed_from_step")),
            device=str(ev["device"]) if ev.get("device") is not None else None,
            end_reason=None,
            error=None,
            step_times=(),  # a resumed run's first interval would span the restart
        )
        if action == "train":  # a new training: the final checkpoint is yet to come
            d.update(final_digest=None, parent_digest=_digest(ev.get("parent")))
        elif action == "eval":
            d.update(eval_set=None, eval_done=None, eval_total=None, eval_sets_done=0)
    elif kind == "eval":
        # One event per finished set: `done` = sets finished so far, `total` = all sets (engine/evaluate.py).
        done, total = _int(ev.get("done")), _int(ev.get("total"))
        d.update(
            eval_set=ev.get("set") if isinstance(ev.get("set"), str) else None,
            eval_done=done,
            eval_total=total,
            eval_sets_done=done if done is not None else d["eval_sets_done"] + 1,
        )
    elif kind == "checkpoint" and ev.get("path") == FINAL_CHECKPOINT:
        digest = ev.get("digest")
        d["final_digest"] = digest if isinstance(digest, str) else None
        d["parent_digest"] = _digest(ev.get("parent")) or d["parent_digest"]
    elif kind == "end":
        reason = ev.get("reason")
        d["end_reason"] = reason if isinstance(reason, str) else "finished"
        if _int(ev.get("step")) is not None and d["action"] == "train":
            d["step"] = _int(ev.get("step"))
    elif kind == "error":
        d["error"] = str(ev.get("error", "error"))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _digest(lineage: Any) -> str | None:
    """The digest of a `{"path": ..., "digest": ...}` lineage record, or None."""
    digest = lineage.get("digest") if isinstance(lineage, dict) else None
    return digest if isinstance(digest, str) and digest else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


FileKey = tuple[int, int, int]  # (inode, size, mtime_ns) of a file: unchanged key, unchanged file


@dataclass
class EventsTail:
    """How far a reader has read one events.jsonl: the file's key when last read, the bytes parsed so far
    (always at a line boundary) and the progress they fold into. A persisted one (ftui/run_cache.py) resumes
    reading at `offset`."""

    key: FileKey
    offset: int
    progress: RunProgress = field(default_factory=RunProgress)
    anchor: bytes = b""  # the last bytes before `offset` (ftui/appended.py): still there, or read from 0


RecallTail = Callable[[str], EventsTail | None]


class ProgressReader:
    """Incremental, thread-safe reader of the `events.jsonl` of many runs.

    `recall(path)`, when given, is asked for a file the reader has not read yet: a tail read by an earlier
    process (ftui/run_cache.py). Its key is compared with the file's like any other, so a file changed since
    is read again (only its new bytes when it grew)."""

    def __init__(self, history: int = MAX_LOSSES, recall: RecallTail | None = None) -> None:
        self.history = max(1, history)  # step events kept for `losses` (1: only the last step matters)
        self._tails: dict[str, EventsTail] = {}
        self._lock = threading.Lock()
        self._recall = recall

    def tails(self) -> dict[str, EventsTail]:
        """Every file read (or recalled) so far: path -> its tail (for ftui/run_cache.py to persist)."""
        with self._lock:
            return dict(self._tails)

    def progress(self, run_dir: StrPath) -> RunProgress | None:
        """The progress of the run in `run_dir`, or None when it has no events yet."""
        path = os.path.join(run_dir, EVENTS)  # plain strings: pathlib costs more than the stat here
        try:
            st = os.stat(path)
        except OSError:
            with self._lock:
                self._tails.pop(path, None)
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            tail = self._tails.get(path)
            if tail is None and self._recall is not None:
                tail = self._recall(path)
            if tail is not None and tail.key == key:
                self._tails[path] = tail
                return tail.progress
            if tail is None or tail.key[0] != st.st_ino or st.st_size < tail.offset:
                tail = EventsTail(key, 0)  # new, replaced or truncated (`train --restart`): start over
            tail = self._read_from(path, tail, key)
            self._tails[path] = tail
            return tail.progress

    def _read_from(self, path: str, tail: EventsTail, key: FileKey) -> EventsTail:
        offset = tail.offset
        try:
            with open(path, "rb") as f:
                chunk = read_on(f, offset, tail.anchor) if offset else None
                if chunk is None and offset:  # rewritten in place, not appended to: start over
                    tail = EventsTail(key, 0)
                    offset = 0
                if offset == 0 and key[1] > COLD_READ_LIMIT:
                    # First look at a long history: the latest attempt's state lies in its tail.
                    offset = key[1] - COLD_TAIL
                    f.seek(offset)
                    skipped = len(f.readline())  # a partial line
                    offset += skipped
                    chunk = f.read()
                elif offset == 0:
                    f.seek(0)
                    chunk = f.read()
        except OSError:
            return tail
        assert chunk is not None
        end = chunk.rfind(b"\n")
        if end < 0:  # nothing complete yet; re-read these bytes next time the file changes
            return EventsTail(key, offset, tail.progress, tail.anchor)
        lines = chunk[:end].split(b"\n")
        # Only the last `history` step lines can show (recent losses), and the last RATE_INTERVALS + 1 (the
        # rate of the ETA): skip parsing older ones.
        keep = max(self.history, RATE_INTERVALS + 1)
        step_lines = [i for i, line in enumerate(lines) if _STEP.search(line, 0, 64)]
        skip = set(step_lines[:-keep]) if len(step_lines) > keep else set()
        d = dict(tail.progress.__dict__)
        for i, line in enumerate(lines):
            if i in skip or not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            if isinstance(ev, dict):
                _fold(d, ev)
            else:
                d["corrupt_lines"] += 1
        return EventsTail(key, offset + end + 1, RunProgress(**d), next_anchor(tail.anchor, chunk[: end + 1]))


@dataclass(frozen=True)
class EvalSet:
    """One evaluated set of `eval.json` ("atlantis/distance"); a field of the wrong type reads as None."""

    task: str | None = None
    metric: str | None = None
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    n: int | None = None
    parse_failure_rate: float | None = None


@dataclass(frozen=True)
class EvalResults:
    """A run's `eval.json`: the checkpoint (path, digest) and step evaluated and its sets in file order
    (`sets` is None when the file has no "sets" object; entries that are not objects are left out)."""

    sets: dict[str, EvalSet] | None
    checkpoint: str | None = None
    step: int | None = None
    checkpoint_digest: str | None = None  # sha256 of the checkpoint's bytes; None from an older engine

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResults:
        raw_sets = data.get("sets")
        sets = None
        if isinstance(raw_sets, dict):
            sets = {
                str(key): EvalSet(
                    task=_str(entry.get("task")),
                    metric=_str(entry.get("metric")),
                    mean=_num(entry.get("mean")),
                    median=_num(entry.get("median")),
                    std=_num(entry.get("std")),
                    n=_int(entry.get("n")),
                    parse_failure_rate=_num(entry.get("parse_failure_rate")),
                )
                for key, entry in raw_sets.items()
                if isinstance(entry, dict)
            }
        checkpoint = data.get("checkpoint")
        return cls(
            sets,
            str(checkpoint) if checkpoint is not None else None,
            _int(data.get("step")),
            _str(data.get("checkpoint_digest")),
        )


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


RecallResults = Callable[[str], "tuple[FileKey, EvalResults | None] | None"]


class ResultsReader:
    """Cached reader of `eval.json` files (re-parsed only when the file changes; an unchanged one costs a
    stat). The one reader of eval.json: `ftui list`, the app's run screen and the analysis use it.

    `recall(path)`, when given, is asked for a file not read yet: (key, results) as an earlier process read
    them (ftui/run_cache.py); used only while the file's key is unchanged."""

    def __init__(self, recall: RecallResults | None = None) -> None:
        self._cache: dict[str, tuple[FileKey, EvalResults | None]] = {}
        self._lock = threading.Lock()
        self._recall = recall

    def entries(self) -> dict[str, tuple[FileKey, EvalResults | None]]:
        """Every file read (or recalled) so far: path -> (its key, its results)."""
        with self._lock:
            return dict(self._cache)

    def results(self, run_dir: StrPath) -> EvalResults | None:
        """The run's eval.json, or None when it is missing, unreadable or not a JSON object."""
        path = os.path.join(run_dir, RESULTS)
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(path)
            if cached is None and self._recall is not None:
                cached = self._recall(path)
            if cached is not None and cached[0] == key:
                self._cache[path] = cached
                return cached[1]
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except (OSError, ValueError):
            data = None  # written atomically, so this is a file damaged by hand: show "no results"
        results = EvalResults.from_json(data) if isinstance(data, dict) else None
        with self._lock:
            self._cache[path] = (key, results)
        return results


def has_config(run_dir: StrPath) -> bool:
    return os.path.isfile(os.path.join(run_dir, CONFIG))


def is_trained(run_dir: StrPath) -> bool:
    return os.path.isfile(os.path.join(run_dir, FINAL_CHECKPOINT))


def is_evaluated(run_dir: StrPath, since: float | None = None) -> bool:
    """eval.json exists; with `since` (unix seconds), written at or after it (an evaluation's own product)."""
    try:
        st = os.stat(os.path.join(run_dir, RESULTS))
    except OSError:
        return False
    return since is None or st.st_mtime >= since


def has_product(run_dir: StrPath, action: str, since: float | None = None) -> bool:
    """The product of `action` is on disk: the final checkpoint of training, an eval.json (newer than
    `since`) of evaluation."""
    return is_trained(run_dir) if action == "train" else is_evaluated(run_dir, since)


def product_name(action: str) -> str:
    """What `action` leaves behind, for messages."""
    return "checkpoints/final.pt" if action == "train" else "a new eval.json"


def started_on_disk(run_dir: StrPath) -> bool:
    """The engine has started the run: events or checkpoints exist in its folder."""
    return os.path.exists(os.path.join(run_dir, EVENTS)) or os.path.exists(os.path.join(run_dir, CHECKPOINTS))


def summarize_results(
    results: EvalResults,
    tasks: tuple[str, ...] = (),
    short: dict[str, str] | None = None,
    limit: int | None = 4,
) -> str:
    """One line from eval.json: the Atlantis metric of the trained tasks (all tasks when none given), the
    first `limit` of them and "…" (None: every one, for `ftui list --wide`)."""
    sets = results.sets
    if not sets:
        return "no sets"
    short = short or {}
    parts: list[str] = []
    wanted = tasks or tuple(dict.fromkeys(entry.task for entry in sets.values() if entry.task))
    for task in wanted:
        entry = sets.get(f"atlantis/{task}") or sets.get(f"standard/{task}")
        if entry is None or entry.mean is None:
            continue
        label = short.get(task, task)
        value = f"{entry.mean:.0%}" if entry.metric == "accuracy" else _compact(entry.mean)
        parts.append(f"{label} {value}")
    shown = parts if limit is None else parts[:limit]
    text = " ".join(shown) + (" …" if len(shown) < len(parts) else "")
    return text or f"{len(sets)} sets"


def _compact(x: float) -> str:
    if abs(x) >= 1e5:
        return f"{x:.1e}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"
