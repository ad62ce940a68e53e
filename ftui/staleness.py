"""Stale runs: results made from weights that have since been trained again (issue 16).

The engine records the lineage of every checkpoint (docs/run-directory.md): the sha256 digest of each
checkpoint it writes (`checkpoint` events), the parent checkpoint a fine-tune started from (`parent` in its
`start` and `checkpoint` events) and the checkpoint an evaluation scored (`checkpoint_digest` in eval.json).
ftui compares those records and never hashes a checkpoint itself. A run is stale when

- its weights are out of date (`retrain`): it is trained, and the parent digest it recorded differs from its
  parent's current `final.pt` digest (the parent was trained again after the child used it), or its parent's
  weights are out of date (transitive: a child of a stale run is stale, however deep);
- or only its results are (`retrain` False): its eval.json scored `checkpoints/final.pt` with another digest
  than the run's current final checkpoint. An eval of another checkpoint (`eval --checkpoint`) was asked for
  by name and is left alone; a run whose results alone are stale does not make its children stale (their
  weights come from its weights, which are current).

Unknown is never stale: a digest that was not recorded (runs made before the engine recorded them, a parent
being trained again right now) does not mark anything, and nothing here raises for a missing or damaged file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ftui.rundir import FINAL_CHECKPOINT, EvalResults, ProgressReader, ResultsReader, RunProgress, is_trained

ReadProgress = Callable[[str], RunProgress | None]
ReadResults = Callable[[str], EvalResults | None]


class RunLike(Protocol):
    """What the rule needs of a registry run (`ftui.registry.records.Run`)."""

    @property
    def key(self) -> str: ...
    @property
    def rel_dir(self) -> str: ...
    @property
    def parent_key(self) -> str | None: ...


@dataclass(frozen=True)
class Stale:
    """Why a run is stale. `retrain`: its weights are out of date (train and evaluate it again); otherwise
    only its eval.json is (evaluate it again)."""

    reason: str
    retrain: bool


class StaleRuns:
    """Judges runs by the rule above; each run's folder is read and each run judged at most once per instance
    (make one per pass).

    `runs` must hold every run a judged run descends from (its parent, grandparent...): pass all of the
    registry's runs. The readers default to fresh ones; `ftui list` and the app pass their stat-cached ones,
    and `note` what they have read already, so the rule costs them no extra file access.
    """

    def __init__(
        self,
        runs_dir: str | os.PathLike[str],
        runs: Iterable[RunLike],
        progress: ReadProgress | None = None,
        results: ReadResults | None = None,
    ) -> None:
        self._runs_dir = os.fspath(runs_dir)
        self._runs = {run.key: run for run in runs}
        self._progress = progress or ProgressReader(history=1).progress
        self._results = results or ResultsReader().results
        self._verdicts: dict[str, Stale | None] = {}
        self._facts: dict[str, _Facts] = {}

    def note(
        self, key: str, progress: RunProgress | None, results: EvalResults | None, trained: bool
    ) -> None:
        """What the caller has read of run `key`'s folder already (its events, eval.json, final.pt)."""
        self._facts[key] = _Facts(progress, results, trained)

    def check(self, key: str) -> Stale | None:
        """Why the run `key` is stale, or None when it is not (or is unknown)."""
        if key not in self._verdicts:
            self._verdicts[key] = None  # a parent cycle (a registry refuses one) ends here
            run = self._runs.get(key)
            self._verdicts[key] = self._judge(run) if run is not None else None
        return self._verdicts[key]

    def stale(self, keys: Iterable[str]) -> dict[str, Stale]:
        """The stale runs among `keys`, in their order."""
        return {key: verdict for key in keys if (verdict := self.check(key)) is not None}

    def _read(self, run: RunLike) -> _Facts:
        facts = self._facts.get(run.key)
        if facts is None:
            folder = os.path.join(self._runs_dir, run.rel_dir)
            facts = _Facts(self._progress(folder), self._results(folder), is_trained(folder))
            self._facts[run.key] = facts
        return facts

    def _judge(self, run: RunLike) -> Stale | None:
        progress, results, trained = self._read(run)
        parent = self._runs.get(run.parent_key) if run.parent_key is not None else None
        if parent is not None and trained:
            above = self.check(parent.key)
            if above is not None and above.retrain:
                return Stale(f"parent {parent.key} is stale", retrain=True)
            used = progress.parent_digest if progress is not None else None
            theirs = self._read(parent).progress
            current = theirs.final_digest if theirs is not None else None
            if used is not None and current is not None and used != current:
                return Stale(f"parent {parent.key} was trained again after this run used it", retrain=True)
        final = progress.final_digest if progress is not None else None
        if (
            results is not None
            and results.checkpoint == FINAL_CHECKPOINT
            and results.checkpoint_digest is not None
            and final is not None
            and results.checkpoint_digest != final
        ):
            return Stale("eval.json scored an older checkpoints/final.pt", retrain=False)
        return None


class _Facts(NamedTuple):
    progress: RunProgress | None
    results: EvalResults | None
    trained: bool


def dependency_order(keys: Iterable[str], runs: Iterable[RunLike]) -> list[str]:
    """`keys` with every run after its ancestors among them (otherwise in the given order)."""
    by_key = {run.key: run for run in runs}

    def depth(key: str) -> int:
        seen: set[str] = set()
        run = by_key.get(key)
        while run is not None and run.parent_key is not None and run.key not in seen:
            seen.add(run.key)
            run = by_key.get(run.parent_key)
        return len(seen)

    chosen = list(dict.fromkeys(keys))
    return sorted(chosen, key=depth)  # stable: equal depths keep their order
