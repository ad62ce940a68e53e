"""Executors without a cluster: job.sbatch writing and quoting (run through bash to prove it), Slurm output
parsing, the state mapping, the schema migration, [runner.slurm] validation and the errors when Slurm is
missing. The tests against a real Slurm cluster are in test_slurm.py."""

from __future__ import annotations

import io
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ftui.queue.executors import sbatch
from ftui.queue.executors.slurm import (
    SlurmError,
    SlurmInfo,
    call,
    describe_active,
    parse_exit,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    verdict,
)
from ftui.queue.model import SCHEMA_VERSION
from ftui.queue.store import CANCELLED, DONE, FAILED, QUEUED, JobSpec, Store
from ftui.queue.worker import Worker
from ftui.registry import RegistryError, load_registry
from tests.conftest import REPO_ROOT
from tests.ftui.queue_helpers import BEFORE_SCHEMA_5

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
EVIL = "x'; touch /tmp/ftui-pwned; echo '$(id)`id`\"\\"


def render(tmp_path: Path, **slurm: object) -> str:
    runs = tmp_path / "runs dir $HOME"  # a space and a dollar in the path
    run_dir = runs / "ft2-3" / "seed-42"
    run_dir.mkdir(parents=True)
    return sbatch.render(
        run_key="ft2-3/seed-42",
        action="train",
        attempt=2,
        run_dir=run_dir,
        runs_dir=runs,
        python="/opt/py thon/bin/python",
        slurm=slurm,
        restart=True,
        comment=f"{runs}/ftui.db#3#2",
    )


def sbatch_words(script: str) -> dict[str, list[str]]:
    """The #SBATCH lines as sbatch reads them (shell-like words), by option name."""
    found: dict[str, list[str]] = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            words = shlex.split(line[len("#SBATCH ") :])
            name, _, value = words[0].partition("=")
            found.setdefault(name, []).append(value if value else " ".join(words[1:]))
    return found


def test_sbatch_script_has_every_option_and_runs_the_engine(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        partition="gpu",
        account="proj-1",
        time="2:00:00",
        gres="gpu:a100:1",
        cpus=8,
        mem="16G",
        sbatch=["--qos=high", "--constraint 'a100|h100'"],
        setup=["module load cuda/12.4"],
    )
    assert text.startswith("#!/bin/bash\n")
    opts = sbatch_words(text)
    run_dir = str((tmp_path / "runs dir $HOME" / "ft2-3" / "seed-42").resolve())
    assert opts["--job-name"] == ["ftui:ft2-3/seed-42:train"]
    assert opts["--output"] == [run_dir + "/train.log"] and opts["--open-mode"] == ["append"]
    assert opts["--chdir"] == [run_dir]
    assert (opts["--partition"], opts["--account"], opts["--time"]) == (["gpu"], ["proj-1"], ["2:00:00"])
    assert (opts["--gres"], opts["--cpus-per-task"], opts["--mem"]) == (["gpu:a100:1"], ["8"], ["16G"])
    assert opts["--qos"] == ["high"] and opts["--constraint"] == ["a100|h100"]
    # The setup line is raw shell (on purpose) and comes before the engine, which is exec'ed.
    body = text.splitlines()
    assert body.index("module load cuda/12.4") < len(body) - 1
    assert shlex.split(body[-1]) == [
        "exec",
        "/opt/py thon/bin/python",
        "-m",
        "engine",
        "train",
        run_dir,
        "--restart",
    ]


def test_hostile_values_stay_data_when_bash_runs_the_script(tmp_path: Path) -> None:
    """Quoting is proven by running the script: bash must see the hostile text as one argument and run
    nothing else (no file created, no command substitution)."""
    marker = Path("/tmp/ftui-pwned")
    marker.unlink(missing_ok=True)
    text = sbatch.render(
        run_key="r",
        action="eval",
        attempt=1,
        run_dir=tmp_path / "runs" / "r",
        runs_dir=tmp_path / "runs",
        python="printf",  # exec printf '%s|' ... prints each argument the engine would get
        slurm={"partition": EVIL, "sbatch": [shlex.quote(f"--comment={EVIL}")]},
        comment=EVIL,
    )
    (tmp_path / "runs" / "r").mkdir(parents=True)
    text = text.replace("exec printf -m", "exec printf '%s|' -m")
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert out.stdout.splitlines()[-1].endswith(f"-m|engine|eval|{(tmp_path / 'runs' / 'r').resolve()}|")
    opts = sbatch_words(text)
    assert opts["--partition"] == [EVIL] and EVIL in opts["--comment"]


@pytest.mark.parametrize(
    "slurm",
    [
        {"partition": "gpu\n#SBATCH --uid=0"},
        {"mem": "1G\rtouch x"},
        {"sbatch": ["--qos=a\nrm -rf /"]},
        {"setup": ["ok\nsecond line"]},
        {"sbatch": ["qos=high"]},  # not an option
        {"sbatch": ["--x='unbalanced"]},
    ],
)
def test_line_breaks_and_non_options_are_refused(tmp_path: Path, slurm: dict[str, object]) -> None:
    with pytest.raises(sbatch.SbatchError):
        render(tmp_path, **slurm)


def test_run_folder_must_stay_under_the_runs_folder(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    for bad in (tmp_path / "runs" / ".." / "elsewhere", tmp_path / "runs"):
        with pytest.raises(sbatch.SbatchError, match="not inside the runs folder"):
            sbatch.render(
                run_key="r",
                action="train",
                attempt=1,
                run_dir=bad,
                runs_dir=tmp_path / "runs",
                python="python",
                slurm={},
            )


def test_a_percent_in_the_log_path_is_literal_for_slurm(tmp_path: Path) -> None:
    log = tmp_path / "50%j" / "train.log"
    assert sbatch.slurm_path(log) == str(log).replace("50%j", "50%%j")


# ---- parsing Slurm's answers ----------------------------------------------------------------------------
def test_parsers() -> None:
    seen = parse_squeue(
        "12|PENDING|Priority|gpu|\n13|RUNNING|None|gpu|node07\n14|CANCELLED by 0|None|gpu|n1\n"
    )
    assert seen["12"] == SlurmInfo("12", "PENDING", "Priority", "gpu", None)
    assert seen["13"].node == "node07" and seen["14"].state == "CANCELLED"
    line = (
        "JobId=13 JobName=ftui:a:train UserId=root(0) JobState=FAILED Reason=NonZeroExitCode"
        " Dependency=(null) ExitCode=3:0 Partition=debug NodeList=vm BatchHost=vm"
    )
    assert parse_scontrol(line) == SlurmInfo("13", "FAILED", "NonZeroExitCode", "debug", "vm", "3:0")
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None
    assert parse_sacct("13|TIMEOUT|0:0|vm|debug\n13.batch|CANCELLED|0:15|vm|\n", "13") == SlurmInfo(
        "13", "TIMEOUT", "", "debug", "vm", "0:0"
    )
    assert parse_exit("0:15") == (0, 15) and parse_exit("") == (None, None)
    assert describe_active(seen["12"]) == "slurm job 12 PENDING (Priority)"
    assert describe_active(seen["13"]) == "slurm job 13 RUNNING on node07"


@pytest.mark.parametrize(
    "state, exit_code, cancel, requeues, on_disk, expected, words",
    [
        ("COMPLETED", "0:0", False, 0, True, DONE, "COMPLETED"),
        ("COMPLETED", "0:0", False, 0, False, FAILED, "left no result"),
        ("FAILED", "3:0", False, 0, False, FAILED, "exit 3"),
        ("FAILED", "2:0", False, 0, False, FAILED, "bad config 2"),
        ("FAILED", "0:9", False, 0, False, FAILED, "killed by SIGKILL"),
        ("CANCELLED", "0:15", True, 0, False, CANCELLED, "cancelled by the user"),
        ("CANCELLED", "0:15", False, 0, False, CANCELLED, "outside ftui"),
        ("TIMEOUT", "0:0", False, 0, False, None, ""),
        ("PREEMPTED", "0:0", False, 0, False, None, ""),
        ("TIMEOUT", "0:0", False, 1, False, FAILED, "TIMEOUT again after 1 re-queue"),
        ("TIMEOUT", "0:0", False, 0, True, DONE, "after it finished"),
        ("OUT_OF_MEMORY", "0:125", False, 0, False, FAILED, "out of memory"),
        ("NODE_FAIL", "0:0", False, 0, False, FAILED, "its node failed"),
        ("BOOT_FAIL", "0:0", False, 0, False, FAILED, "BOOT_FAIL"),
    ],
)
def test_state_mapping(
    state: str, exit_code: str, cancel: bool, requeues: int, on_disk: bool, expected: str | None, words: str
) -> None:
    info = SlurmInfo("77", state, "", "gpu", "node3", exit_code)
    ended = verdict(info, cancel_requested=cancel, requeues=requeues, done_on_disk=on_disk)
    if expected is None:
        assert ended is None  # re-queue once
        return
    assert ended is not None and ended.state == expected and words in ended.reason
    if state == "FAILED" and exit_code == "3:0":
        assert ended.exit_code == 3 and "slurm job 77 FAILED on node3" in ended.reason


@pytest.mark.parametrize(
    "state, exit_code, cancel, requeues, outcome",
    [
        ("COMPLETED", "0:0", False, 0, None),  # done: success by default
        ("FAILED", "3:0", False, 0, None),  # failed: the engine's own failure
        ("FAILED", "0:9", False, 0, None),  # the signal makes it `killed` in the store
        ("TIMEOUT", "0:0", False, 1, "killed"),
        ("OUT_OF_MEMORY", "0:0", False, 0, "killed"),
        ("NODE_FAIL", "0:0", False, 0, "lost"),
        ("BOOT_FAIL", "0:0", False, 0, "lost"),
    ],
)
def test_slurm_endings_name_their_outcome(
    state: str, exit_code: str, cancel: bool, requeues: int, outcome: str | None
) -> None:
    info = SlurmInfo("77", state, "", "gpu", "node3", exit_code)
    ended = verdict(info, cancel_requested=cancel, requeues=requeues, done_on_disk=state == "COMPLETED")
    assert ended is not None and ended.outcome == outcome


# ---- errors without Slurm -----------------------------------------------------------------------------
def test_a_missing_slurm_command_is_a_clear_error() -> None:
    with pytest.raises(SlurmError, match="sbatch-that-does-not-exist not found"):
        call(["sbatch-that-does-not-exist", "--parsable"])
    with pytest.raises(SlurmError, match="did not answer within 0.2 s"):
        call(["sleep", "5"], timeout_s=0.2)
    with pytest.raises(SlurmError, match="false: exit 1"):
        call(["false"])


def test_without_sbatch_the_job_fails_with_the_reason_and_blocks_its_dependants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no sbatch anywhere
    store = Store(tmp_path / "runs")
    (tmp_path / "runs" / "ft").mkdir(parents=True)
    (tmp_path / "runs" / "ft" / "config.toml").write_text("")
    store.set_setting("runner", {"executor": "slurm", "slurm": {"partition": "gpu"}})
    store.enqueue(
        [
            JobSpec("ft", "ft", "ft", "train", executor="slurm"),
            JobSpec("ft", "ft", "ft", "eval", (("ft", "train"),), executor="slurm"),
        ]
    )
    worker = Worker(tmp_path / "runs", log=io.StringIO(), gpus=[])
    worker.step()
    jobs = {j.action: j for j in store.jobs()}
    assert jobs["train"].state == FAILED and "sbatch not found" in jobs["train"].reason
    assert jobs["eval"].state == "blocked"
    assert "#SBATCH --partition=gpu" in (tmp_path / "runs" / "ft" / "job.sbatch").read_text()
    assert worker.active() == 0  # nothing left to watch: the worker can go idle


# ---- store schema and settings ------------------------------------------------------------------------
def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "ftui.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_key TEXT NOT NULL,
          experiment TEXT NOT NULL, rel_dir TEXT NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL,
          seq INTEGER NOT NULL,
          restart INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', pid INTEGER, pid_start INTEGER,
          pgid INTEGER, slot TEXT, exit_code INTEGER, signal INTEGER,
          cancel_requested INTEGER NOT NULL DEFAULT 0, cancel_sent REAL,
          attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, queued_at REAL,
          started REAL, finished REAL, updated REAL NOT NULL, UNIQUE (run_key, action));
        CREATE TABLE deps (job_id INTEGER NOT NULL, dep_id INTEGER NOT NULL, PRIMARY KEY (job_id, dep_id));
        CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, t REAL NOT NULL,
          from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO jobs(run_key, experiment, rel_dir, action, state, seq, created, updated)
          VALUES ('old', 'old', 'old', 'train', 'queued', 1, 0, 0);
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    store = Store(tmp_path)
    (job,) = store.jobs()
    assert (job.run_key, job.state, job.executor, job.slurm_id, job.requeues) == (
        "old",
        QUEUED,
        "local",
        None,
        0,
    )
    store.record_slurm(job.id, "99", "slurm job 99 submitted", "gpu")
    assert store.job(job.id).slurm_id == "99"  # type: ignore[union-attr]
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_version_2_database_gets_the_outcomes_of_its_ended_jobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.enqueue(
        [JobSpec(key, key, key, "train") for key in ("ok", "crashed", "killed", "lost", "gone")]
        + [JobSpec("waits", "waits", "waits", "train", (("gone", "train"),))]
    )
    ends = {
        "ok": (DONE, "exit 0", None),
        "crashed": (FAILED, "exit 1", None),
        "killed": (FAILED, "killed by SIGKILL", 9),
        "lost": (FAILED, "lost: its process ended while no worker watched it", None),
    }
    for job in store.jobs():
        if job.run_key in ends:
            state, reason, sig = ends[job.run_key]
            store.claim(job.id, "cpu")
            store.finish(job.id, state, reason, signal=sig)
    store.cancel(["gone"])
    store.close()
    db = sqlite3.connect(tmp_path / "ftui.db")  # as ftui wrote it before the outcome column
    db.executescript(BEFORE_SCHEMA_5 + " ALTER TABLE jobs DROP COLUMN outcome; PRAGMA user_version = 2;")
    db.close()
    got = {job.run_key: job.outcome for job in Store(tmp_path).jobs()}
    assert got == {
        "ok": "success",
        "crashed": "failed",
        "killed": "killed",
        "lost": "lost",
        "gone": "cancelled",
        "waits": "dependency_failed",
    }


def test_runner_slurm_settings_are_parsed_and_checked(tmp_path: Path) -> None:
    good = MINI.read_text().replace(
        'executor = "local"',
        'executor = "slurm"\n\n[runner.slurm]\npartition = "gpu"\naccount = "proj-1"\ntime = "1-00:00:00"\n'
        'gres = "gpu:1"\ncpus = 4\nmem = "16G"\nsbatch = ["--qos=high"]\nsetup = ["module load cuda"]\n'
        "poll_s = 5\n",
    )
    path = tmp_path / "experiments.toml"
    path.write_text(good)
    runner = load_registry(path).runner
    assert runner.executor == "slurm" and runner.slurm.partition == "gpu" and runner.slurm.cpus == 4
    assert runner.slurm.sbatch == ("--qos=high",) and runner.slurm.setup == ("module load cuda",)
    assert runner.slurm.poll_s == 5.0
    bad = good.replace('time = "1-00:00:00"', 'time = "two hours"').replace("cpus = 4", "cpus = 0")
    bad = bad.replace('partition = "gpu"', 'partition = "gpu; rm -rf /"').replace("poll_s = 5", "pol_s = 5")
    path.write_text(bad)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    text = str(err.value)
    for needle in ("'time'", "'cpus'", "'partition'", "pol_s", "poll_s"):
        assert needle in text, needle
