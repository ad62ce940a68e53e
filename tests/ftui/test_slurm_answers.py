"""The Slurm executor against a controller that answers badly: fake `squeue`, `sbatch` and `scancel` scripts
on PATH (no `scontrol` or `sacct`, as on a cluster without accounting) keep a small job table in a folder,
and the real worker and executor poll them.

What must hold: a job missing from one `squeue` answer, or an answer with an error on stderr (whatever the
exit code), is "unknown", never "ended"; a job is settled only on a confirmed end state, or after it was
missing from several answers over a minimum time; and no second Slurm job is ever submitted for a run folder
whose previous job may still be alive.
"""

from __future__ import annotations

import io
import re
import stat
import sys
from pathlib import Path

import pytest

from ftui.queue.store import FAILED, RUNNING, Job, JobSpec, Store
from ftui.queue.worker import Worker

SOCKET_TIMEOUT = "slurm_load_jobs error: Socket timed out on send/recv operation"

# The fakes share a job table: one line per job, "id|state|reason|partition|node|name|workdir|comment".
SQUEUE = """
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
with open(state / "calls", "a") as f:
    f.write("squeue " + " ".join(sys.argv[1:]) + "\\n")
if (state / "squeue.error").exists():  # the controller did not answer, but squeue says so on stderr only
    print((state / "squeue.error").read_text().strip(), file=sys.stderr)
    sys.exit(0)
fields = {"%i": 0, "%T": 1, "%r": 2, "%P": 3, "%N": 4, "%j": 5, "%Z": 6, "%k": 7, "%A": 8}
fmt = sys.argv[sys.argv.index("-o") + 1]
hidden = (state / "hidden").read_text().split() if (state / "hidden").exists() else []
for line in (state / "jobs").read_text().splitlines() if (state / "jobs").exists() else []:
    parts = line.split("|")
    if parts[0] in hidden:
        continue
    out = fmt
    for key, index in fields.items():
        out = out.replace(key, parts[index])
    print(out)
"""
SBATCH = """
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
with open(state / "calls", "a") as f:
    f.write("sbatch " + " ".join(sys.argv[1:]) + "\\n")
options = {}
for line in Path(sys.argv[-1]).read_text().splitlines():
    if line.startswith("#SBATCH --") and "=" in line:
        key, _, value = line[len("#SBATCH --"):].partition("=")
        options[key] = value.strip("'")
if (state / "sbatch.error").exists():  # the controller rejects the submission
    print((state / "sbatch.error").read_text().strip(), file=sys.stderr)
    sys.exit(1)
counter = state / "next_id"
job_id = int(counter.read_text()) if counter.exists() else 1001
counter.write_text(str(job_id + 1))
# an array "--array=0-N": one row per task, named JOBID_TASK, with its own (raw) job id
ids = [(str(job_id), str(job_id))]
if "array" in options:
    last = int(options["array"].split("-")[1])
    ids = [(f"{job_id}_{i}", str(job_id * 100 + i)) for i in range(last + 1)]
with open(state / "jobs", "a") as f:
    for jid, raw in ids:
        row = [jid, "PENDING", "Priority", "debug", ""]
        row += [options["job-name"], options["chdir"], options["comment"], raw]
        f.write("|".join(row) + "\\n")
print(job_id)
"""
SACCT = """
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
with open(state / "calls", "a") as f:
    f.write("sacct " + " ".join(sys.argv[1:]) + "\\n")
wanted = sys.argv[sys.argv.index("-j") + 1].split(",")
for line in (state / "jobs").read_text().splitlines():
    parts = line.split("|")
    if parts[0] in wanted:  # JobID,State,ExitCode,NodeList,Partition
        print("|".join([parts[0], parts[1], "0:0" if parts[1] == "COMPLETED" else "1:0", parts[4], parts[3]]))
"""
SCANCEL = """
import os, sys
from pathlib import Path
state = Path(os.environ["FAKE_SLURM"])
with open(state / "calls", "a") as f:
    f.write("scancel " + " ".join(sys.argv[1:]) + "\\n")
"""


class FakeSlurm:
    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.folder = folder
        self.bin_dir = bin_dir

    def install(self, name: str, body: str) -> None:
        exe = self.bin_dir / name
        exe.write_text(f"#!{sys.executable}\n{body}")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)

    def calls(self, command: str) -> list[str]:
        path = self.folder / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.split()[0] == command]

    def set_state(self, slurm_id: str, state: str, node: str = "node1") -> None:
        lines = (self.folder / "jobs").read_text().splitlines()
        out = []
        for line in lines:
            parts = line.split("|")
            if parts[0] == slurm_id:
                parts[1], parts[2], parts[4] = state, "None", node
            out.append("|".join(parts))
        (self.folder / "jobs").write_text("\n".join(out) + "\n")

    def answer_with_error(self, on: bool = True) -> None:
        path = self.folder / "squeue.error"
        if on:
            path.write_text(SOCKET_TIMEOUT + "\n")
        else:
            path.unlink(missing_ok=True)

    def hide(self, *slurm_ids: str) -> None:
        """squeue answers without these jobs (a controller that lost track of them for a while)."""
        (self.folder / "hidden").write_text(" ".join(slurm_ids))


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    state, bin_dir = tmp_path / "slurm-state", tmp_path / "slurm-bin"
    state.mkdir()
    bin_dir.mkdir()
    fake = FakeSlurm(state, bin_dir)
    for name, body in (("squeue", SQUEUE), ("sbatch", SBATCH), ("scancel", SCANCEL)):
        fake.install(name, body)
    monkeypatch.setenv("PATH", str(bin_dir))  # and no scontrol, no sacct
    monkeypatch.setenv("FAKE_SLURM", str(state))
    monkeypatch.setenv("FTUI_SLURM_POLL", "0")  # poll on every pass
    monkeypatch.setenv("FTUI_SLURM_VANISH_S", "0")  # vanished after 3 answers without it, however quick
    return fake


def make_queue(runs: Path) -> tuple[Store, Worker]:
    (runs / "ft").mkdir(parents=True)
    (runs / "ft" / "config.toml").write_text("")
    store = Store(runs)
    store.set_setting("runner", {"executor": "slurm", "slurm": {"partition": "debug"}})
    store.enqueue(
        [
            JobSpec("ft", "ft", "ft", "train", executor="slurm"),
            JobSpec("ft", "ft", "ft", "eval", (("ft", "train"),), executor="slurm"),
        ]
    )
    return store, Worker(runs, log=io.StringIO(), gpus=[])


def train(store: Store) -> object:
    return next(j for j in store.jobs() if j.action == "train")


def running_1001(tmp_path: Path, slurm: FakeSlurm) -> tuple[Store, Worker]:
    store, worker = make_queue(tmp_path / "runs")
    worker.step()
    assert [c.split()[-1] for c in slurm.calls("sbatch")] == [str(tmp_path / "runs" / "ft" / "job.sbatch")]
    slurm.set_state("1001", "RUNNING")
    worker.step()
    job = train(store)
    assert (job.state, job.slurm_id, job.reason) == (RUNNING, "1001", "slurm job 1001 RUNNING on node1")
    return store, worker


def test_an_error_on_stderr_with_exit_0_and_no_rows_is_not_an_end(tmp_path: Path, slurm: FakeSlurm) -> None:
    """The reported case: squeue prints `slurm_load_jobs error: Socket timed out` on stderr, exits 0 and
    prints no rows, and scontrol and sacct are not there. The job keeps running; its eval is not blocked."""
    store, worker = running_1001(tmp_path, slurm)
    slurm.answer_with_error()
    for _ in range(5):
        worker.step()
    job = train(store)
    assert job.state == RUNNING, job.reason
    assert "cannot ask squeue" in job.reason and "Socket timed out" in job.reason
    assert next(j for j in store.jobs() if j.action == "eval").state == "waiting"
    slurm.answer_with_error(False)
    worker.step()
    assert train(store).reason == "slurm job 1001 RUNNING on node1"


def test_missing_from_one_answer_is_unknown_and_only_repeated_misses_over_time_settle(
    tmp_path: Path, slurm: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, worker = running_1001(tmp_path, slurm)
    slurm.hide("1001")
    worker.step()
    job = train(store)
    assert job.state == RUNNING and "not in squeue's answer (1 in a row)" in job.reason
    worker.step()
    slurm.hide()  # back: the misses are forgotten
    worker.step()
    assert train(store).reason == "slurm job 1001 RUNNING on node1"
    monkeypatch.setenv("FTUI_SLURM_VANISH_S", "60")  # the real minimum time
    slurm.hide("1001")
    for _ in range(5):  # more than 3 answers without it, but within 60 s: still unknown
        worker.step()
    assert train(store).state == RUNNING
    monkeypatch.setenv("FTUI_SLURM_VANISH_S", "0")  # as if the 60 s had passed
    worker.step()
    job = train(store)
    assert job.state == FAILED
    assert re.search(
        r"vanished \(not in squeue, scontrol or sacct for 6 answers over \d+ s\) without a", job.reason
    )


def test_an_end_confirmed_by_sacct_settles_at_once(tmp_path: Path, slurm: FakeSlurm) -> None:
    """squeue no longer lists the job (Slurm forgot it after MinJobAge), sacct has its record: no waiting."""
    store, worker = running_1001(tmp_path, slurm)
    slurm.install("sacct", SACCT)
    slurm.set_state("1001", "COMPLETED")
    slurm.hide("1001")
    (tmp_path / "runs" / "ft" / "checkpoints").mkdir()
    (tmp_path / "runs" / "ft" / "checkpoints" / "final.pt").write_bytes(b"")
    worker.step()
    job = train(store)
    assert (job.state, job.reason, job.exit_code) == ("done", "slurm job 1001 COMPLETED", 0)
    assert slurm.calls("sacct")


def test_an_ended_state_in_squeue_settles_at_once(tmp_path: Path, slurm: FakeSlurm) -> None:
    store, worker = running_1001(tmp_path, slurm)
    slurm.set_state("1001", "OUT_OF_MEMORY")
    worker.step()
    job = train(store)
    assert job.state == FAILED and "OUT_OF_MEMORY" in job.reason and "out of memory" in job.reason


def vanished_but_alive(tmp_path: Path, slurm: FakeSlurm) -> tuple[Store, Worker]:
    """Job 1001 settled as vanished (the controller lost it for 3 answers), while it in fact still runs."""
    store, worker = running_1001(tmp_path, slurm)
    slurm.hide("1001")
    for _ in range(3):
        worker.step()
    assert train(store).state == FAILED
    slurm.hide()
    return store, worker


def test_retry_watches_the_job_that_still_runs_instead_of_submitting_a_second(
    tmp_path: Path, slurm: FakeSlurm
) -> None:
    store, worker = vanished_but_alive(tmp_path, slurm)
    assert [j.run_key for j in store.retry(["ft"])] == ["ft", "ft"]
    worker.step()
    worker.step()
    assert len(slurm.calls("sbatch")) == 1, slurm.calls("sbatch")  # never a job 1002 for the same folder
    job = train(store)
    assert (job.state, job.slurm_id) == (RUNNING, "1001")
    assert "1001" in job.reason and "RUNNING" in job.reason
    slurm.set_state("1001", "COMPLETED")
    (tmp_path / "runs" / "ft" / "checkpoints").mkdir()
    (tmp_path / "runs" / "ft" / "checkpoints" / "final.pt").write_bytes(b"")
    worker.step()
    assert train(store).state == "done"


def test_a_restart_is_refused_while_the_previous_job_runs(tmp_path: Path, slurm: FakeSlurm) -> None:
    store, worker = vanished_but_alive(tmp_path, slurm)
    store.enqueue([JobSpec("ft", "ft", "ft", "train", executor="slurm")], force=True)  # launch --force
    worker.step()
    assert len(slurm.calls("sbatch")) == 1
    job = train(store)
    assert job.state == FAILED
    assert "not submitted" in job.reason and "slurm job 1001" in job.reason and "scancel 1001" in job.reason


def test_no_submission_while_squeue_cannot_say_whether_the_previous_job_runs(
    tmp_path: Path, slurm: FakeSlurm
) -> None:
    store, worker = vanished_but_alive(tmp_path, slurm)
    slurm.set_state("1001", "COMPLETED")  # it did end, but the controller cannot say so yet
    slurm.answer_with_error()
    store.retry(["ft"])
    for _ in range(3):
        worker.step()
    assert len(slurm.calls("sbatch")) == 1
    job = train(store)
    assert job.state == RUNNING and job.slurm_id is None and "not submitted yet" in job.reason
    assert worker.active() == 1  # the worker keeps going until it can tell
    slurm.answer_with_error(False)
    worker.step()
    assert len(slurm.calls("sbatch")) == 2  # nothing alive in the folder now: job 1002
    assert train(store).slurm_id == "1002"


def test_a_cancel_before_submission_is_honoured(tmp_path: Path, slurm: FakeSlurm) -> None:
    store, worker = vanished_but_alive(tmp_path, slurm)
    slurm.answer_with_error()
    store.retry(["ft"])
    worker.step()
    store.cancel(["ft"])
    worker.step()
    assert train(store).state == "cancelled"
    assert worker.active() == 0 and len(slurm.calls("sbatch")) == 1


def test_the_vanish_rule_is_documented() -> None:
    from ftui.queue.executors.slurm import MISSES_TO_VANISH, VANISH_AFTER_S

    doc = (Path(__file__).resolve().parents[2] / "docs" / "slurm.md").read_text()
    assert f"{MISSES_TO_VANISH} answers in a row" in doc and f"{VANISH_AFTER_S:g} s" in doc
    assert MISSES_TO_VANISH >= 3 and VANISH_AFTER_S >= 60


# ---- job arrays -------------------------------------------------------------------------------------------
def make_family(runs: Path, n: int) -> tuple[Store, Worker]:
    """A family of `n` runs (f-0 .. f-n-1), each a training job, all ready at once."""
    for i in range(n):
        (runs / f"f-{i}").mkdir(parents=True)
        (runs / f"f-{i}" / "config.toml").write_text("")
    store = Store(runs)
    store.set_setting("runner", {"executor": "slurm", "slurm": {"partition": "debug", "time": "10"}})
    store.enqueue([JobSpec(f"f-{i}", f"f-{i}", f"f-{i}", "train", executor="slurm") for i in range(n)])
    return store, Worker(runs, log=io.StringIO(), gpus=[])


def by_key(store: Store) -> dict[str, Job]:
    return {j.run_key: j for j in store.jobs()}


def test_a_family_is_one_sbatch_call_and_each_task_is_followed_on_its_own(
    tmp_path: Path, slurm: FakeSlurm
) -> None:
    runs = tmp_path / "runs"
    store, worker = make_family(runs, 5)
    worker.step()
    assert len(slurm.calls("sbatch")) == 1  # not 5
    jobs = by_key(store)
    assert [jobs[f"f-{i}"].slurm_id for i in range(5)] == [f"1001_{i}" for i in range(5)]
    script_path = Path(slurm.calls("sbatch")[0].split()[-1])
    assert script_path.parent.parent == runs / ".slurm"
    script = script_path.read_text()
    assert "#SBATCH --array=0-4" in script and "#SBATCH --partition=debug" in script
    assert "#SBATCH --time=10" in script and "/%a/train.log" in script
    for i in range(5):  # task i runs the run folder's own job.sbatch, reached through a link
        assert (script_path.parent / str(i)).resolve() == (runs / f"f-{i}").resolve()
        assert "-m engine train" in (runs / f"f-{i}" / "job.sbatch").read_text()
    slurm.set_state("1001_2", "RUNNING")
    slurm.set_state("1001_0", "COMPLETED")
    slurm.set_state("1001_1", "FAILED")
    (runs / "f-0" / "checkpoints").mkdir()
    (runs / "f-0" / "checkpoints" / "final.pt").write_bytes(b"")
    before = len(slurm.calls("squeue"))
    worker.step()
    assert len(slurm.calls("squeue")) == before + 1  # one squeue answers for the whole array
    jobs = by_key(store)
    assert jobs["f-2"].reason == "slurm job 1001_2 RUNNING on node1"
    assert (jobs["f-0"].state, jobs["f-0"].reason) == ("done", "slurm job 1001_0 COMPLETED")
    assert jobs["f-1"].state == FAILED and "slurm job 1001_1 FAILED" in jobs["f-1"].reason
    assert [jobs[f"f-{i}"].state for i in (3, 4)] == [RUNNING, RUNNING]


def test_a_rejected_array_fails_every_job_with_slurms_message(tmp_path: Path, slurm: FakeSlurm) -> None:
    store, worker = make_family(tmp_path / "runs", 4)
    (slurm.folder / "sbatch.error").write_text(
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination"
    )
    worker.step()
    jobs = store.jobs()
    assert len(jobs) == 4 and len(slurm.calls("sbatch")) == 1
    for job in jobs:
        assert job.state == FAILED and job.slurm_id is None
        assert job.reason.startswith("not submitted: sbatch: error: Batch job submission failed: Invalid acc")
    assert worker.active() == 0


def test_a_batch_larger_than_slurms_array_limit_is_split(
    tmp_path: Path, slurm: FakeSlurm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftui.queue.executors import slurm_arrays

    monkeypatch.setattr(slurm_arrays, "MAX_TASKS", 2)
    store, worker = make_family(tmp_path / "runs", 5)
    worker.step()
    assert len(slurm.calls("sbatch")) == 3  # 2 + 2 tasks, then the one left over as a plain job
    ids = [by_key(store)[f"f-{i}"].slurm_id for i in range(5)]
    assert ids == ["1001_0", "1001_1", "1002_0", "1002_1", "1003"]


def test_cancelling_one_run_scancels_its_task_only(tmp_path: Path, slurm: FakeSlurm) -> None:
    store, worker = make_family(tmp_path / "runs", 3)
    worker.step()
    store.cancel(["f-1", "f-2"])
    worker.step()
    assert slurm.calls("scancel") == ["scancel 1001_1 1001_2"]  # both in one call, each task by its id
    slurm.set_state("1001_1", "CANCELLED")
    slurm.set_state("1001_2", "CANCELLED")
    worker.step()
    jobs = by_key(store)
    assert [jobs[k].state for k in ("f-0", "f-1", "f-2")] == [RUNNING, "cancelled", "cancelled"]


def test_a_new_worker_finds_array_tasks_submitted_just_before_a_crash(
    tmp_path: Path, slurm: FakeSlurm
) -> None:
    """The worker died between sbatch and recording the ids: the next one finds each task by its array's
    comment and tasks.json, and follows it."""
    import sqlite3

    runs = tmp_path / "runs"
    store, worker = make_family(runs, 3)
    worker.step()
    with sqlite3.connect(runs / "ftui.db") as db:  # as if the ids were never written
        db.execute("UPDATE jobs SET slurm_id = NULL")
    assert all(j.slurm_id is None for j in store.jobs())
    again = Worker(runs, log=io.StringIO(), gpus=[])
    assert again.reconcile()
    assert sorted(j.slurm_id or "" for j in store.jobs()) == ["1001_0", "1001_1", "1001_2"]
    slurm.set_state("1001_1", "RUNNING")
    again.step()
    assert by_key(store)["f-1"].reason == "slurm job 1001_1 RUNNING on node1"
    assert len(slurm.calls("sbatch")) == 1


def test_a_retried_run_whose_array_task_still_runs_is_watched_not_submitted_again(
    tmp_path: Path, slurm: FakeSlurm
) -> None:
    runs = tmp_path / "runs"
    store, worker = make_family(runs, 3)
    worker.step()
    slurm.set_state("1001_1", "RUNNING")
    slurm.hide("1001_1")  # the controller loses it for three answers: settled as vanished
    for _ in range(3):
        worker.step()
    assert by_key(store)["f-1"].state == FAILED
    slurm.hide()
    store.retry(["f-1"])
    worker.step()
    worker.step()
    assert len(slurm.calls("sbatch")) == 1
    job = by_key(store)["f-1"]
    assert (job.state, job.slurm_id) == (RUNNING, "1001_1") and "RUNNING" in job.reason
