"""The registry: the shipped study, the mini study, config resolution, writing configs, and bad input."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from ftui.registry import Registry, RegistryError, _matches, load_registry, write_run_config
from ftui.registry.records import AppSettings, RunnerSettings
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "experiments.toml"
MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
BAD = REPO_ROOT / "tests" / "data" / "registry"

# Typed from STUDY.md ("Experiments"), independently of experiments.toml.
STUDY_PAIRS = [
    "distance+trianglearea", "angle+compass", "inside+perimeter", "crossing+distance", "trianglearea+angle",
    "compass+inside", "perimeter+crossing", "angle+distance", "compass+trianglearea", "angle+inside",
    "compass+perimeter", "crossing+inside", "distance+perimeter", "crossing+trianglearea", "compass+distance",
    "inside+trianglearea", "angle+perimeter", "compass+crossing", "distance+inside", "perimeter+trianglearea",
    "angle+crossing",
]  # fmt: skip
STUDY_TRIPLES = ["D+T+A", "Co+I+P", "Cr+D+T", "A+Co+I", "P+Cr+D", "T+A+Co", "I+P+Cr"]
STUDY_TASKS = ["distance", "trianglearea", "angle", "compass", "inside", "perimeter", "crossing"]
STUDY_SHORT = ["D", "T", "A", "Co", "I", "P", "Cr"]


@pytest.fixture(scope="module")
def shipped() -> Registry:
    return load_registry(SHIPPED)


@pytest.fixture(scope="module")
def mini() -> Registry:
    return load_registry(MINI)


def tasks_of(registry: Registry, family: str) -> list[tuple[str, ...]]:
    by_name = {e.name: e for e in registry.experiments}
    return [by_name[name].tasks for name in registry.families[family]]


# ---------------------------------------------------------------------------------------------------------
# The shipped study


def test_shipped_study_expands_to_71_experiments(shipped: Registry) -> None:
    assert [t.name for t in shipped.study.tasks] == STUDY_TASKS
    assert [t.short for t in shipped.study.tasks] == STUDY_SHORT
    assert shipped.study.seeds == (42,)
    assert len(shipped.experiments) == 71
    assert len(shipped.all_runs()) == 71
    assert shipped.experiments[0].name == "pt1" and shipped.experiments[0].kind == "pretrain"
    assert shipped.experiments[0].tasks == tuple(STUDY_TASKS)
    sizes = {family: len(members) for family, members in shipped.families.items()}
    assert sizes == {"ft1": 7, "ft2": 21, "ft3": 7, "ftwb1": 7, "ftwb2": 21, "ftwb3": 7}
    assert shipped.families["ft2"] == tuple(f"ft2-{i}" for i in range(1, 22))
    for exp in shipped.experiments[1:]:
        assert exp.kind == "finetune" and exp.parent == "pt1"
        assert exp.warmup == exp.family.startswith("ftwb")  # type: ignore[union-attr]
    assert {p for p in shipped.profiles} == {"paper", "reduced", "laptop", "smoke"}


def test_shipped_task_sets_match_the_study(shipped: Registry) -> None:
    pairs = [tuple(p.split("+")) for p in STUDY_PAIRS]
    short_to_name = dict(zip(STUDY_SHORT, STUDY_TASKS, strict=True))
    triples = [tuple(short_to_name[s] for s in t.split("+")) for t in STUDY_TRIPLES]
    singles = [(t,) for t in STUDY_TASKS]
    assert len(pairs) == 21 and len(set(frozenset(p) for p in pairs)) == 21  # every unordered pair once
    for prefix in ("ft", "ftwb"):
        assert tasks_of(shipped, f"{prefix}1") == singles
        assert tasks_of(shipped, f"{prefix}2") == pairs
        assert tasks_of(shipped, f"{prefix}3") == triples


def test_shipped_heatmaps(shipped: Registry) -> None:
    got = {(h.name, h.family, h.predict_from, h.baseline) for h in shipped.heatmaps}
    assert got == {
        ("ft1", "ft1", None, "pt1"),
        ("ft2", "ft2", "ft1", "pt1"),
        ("ft3", "ft3", "ft1", "pt1"),
        ("ftwb1", "ftwb1", None, "pt1"),
        ("ftwb2", "ftwb2", "ftwb1", "pt1"),
        ("ftwb3", "ftwb3", "ftwb1", "pt1"),
    }


def test_paper_profile_resolves_to_the_study_sizes(shipped: Registry) -> None:
    pt1 = shipped.resolve_config(shipped.run("pt1"), "paper")
    assert pt1["kind"] == "pretrain" and "parent" not in pt1
    assert pt1["data"]["parts"] == [{"task": t, "set": "standard", "n": 1_000_000} for t in STUDY_TASKS]
    assert pt1["train"]["lr"] == 3e-4 and pt1["train"]["epochs"] == 6 and pt1["train"]["batch_size"] == 128
    assert pt1["train"]["warmup_steps"] == 50
    assert pt1["model"] == {
        "n_layer": 6, "d_model": 128, "n_head": 4, "d_mlp": 512, "max_seq_len": 256,
        "rope_theta": 10000.0, "init_std": 0.1,
    }  # fmt: skip
    assert pt1["eval"]["n"] == 10_000 and pt1["eval"]["tasks"] == STUDY_TASKS
    assert pt1["eval"]["seed"] == shipped.study.eval_seed and pt1["data"]["seed"] == shipped.study.data_seed

    ft2 = shipped.resolve_config(shipped.run("ft2-3"), "paper")
    assert ft2["tasks"] == ["inside", "perimeter"]
    assert ft2["parent"] == "../pt1/checkpoints/final.pt" and ft2["data_root"] == "../.data"
    assert ft2["data"]["parts"] == [
        {"task": "inside", "set": "standard", "n": 20_000},
        {"task": "inside", "set": "atlantis", "n": 100_000},
        {"task": "perimeter", "set": "standard", "n": 20_000},
        {"task": "perimeter", "set": "atlantis", "n": 100_000},
    ]
    assert ft2["train"]["lr"] == 1e-5 and ft2["train"]["epochs"] == 30
    assert shipped.resolve_config(shipped.run("ft3-1"), "paper")["train"]["epochs"] == 20
    assert shipped.resolve_config(shipped.run("ft1-1"), "paper")["train"]["epochs"] == 30

    wb = shipped.resolve_config(shipped.run("ftwb2-3"), "paper")
    atlantis = {p["task"]: p["n"] for p in wb["data"]["parts"] if p["set"] == "atlantis"}
    # Trained tasks: 100,000 + 256 distinct atlantis rows; every other task: the 256 warm-up rows.
    assert atlantis == {t: 100_256 if t in ("inside", "perimeter") else 256 for t in STUDY_TASKS}


def test_smaller_profiles_inherit_and_override(shipped: Registry) -> None:
    paper, small, smoke = (shipped.profiles[p] for p in ("paper", "laptop", "smoke"))
    assert small.inherit == "paper" and smoke.inherit == "paper"
    assert small.model["rope_theta"] == paper.model["rope_theta"]  # inherited
    assert small.pretrain["weight_decay"] == paper.pretrain["weight_decay"]
    assert small.pretrain["batch_size"] == 64 and small.finetune["batch_size"] == 64  # [train] reaches both
    assert smoke.model["n_layer"] == 2 and smoke.model["d_model"] == 32
    assert 0 < smoke.pretrain["max_steps"] <= 40 and smoke.eval["n"] <= 50
    assert shipped.resolve_config(shipped.run("ft3-1"), "smoke")["train"]["epochs"] == 1


def test_default_runner_settings_when_absent(tmp_path: Path) -> None:
    text = MINI.read_text()
    start = text.index("[runner]")
    end = text.index("[profile.smoke.model]")
    path = tmp_path / "study.toml"
    path.write_text(text[:start] + text[end:])
    assert load_registry(path).runner == RunnerSettings()
    assert load_registry(MINI).runner == RunnerSettings("auto", 1, 2, "resume", 5.0, "local")


# ---------------------------------------------------------------------------------------------------------
# Another study: nothing about the shipped one is hard-coded


def test_mini_study_validates_lists_and_resolves(mini: Registry, tmp_path: Path) -> None:
    assert [t.short for t in mini.study.tasks] == ["D", "A", "Co"]
    assert [r.key for r in mini.runs()] == [
        "base",
        *[f"single-{i}" for i in (1, 2, 3)],
        "pair-1",
        "pair-2",
        "pair-3",
    ]
    assert mini.families == {
        "single": ("single-1", "single-2", "single-3"),
        "pair": ("pair-1", "pair-2", "pair-3"),
    }
    assert [r.key for r in mini.runs(["pair"])] == ["pair-1", "pair-2", "pair-3"]  # a family name selects it
    assert [r.key for r in mini.runs(["pair-[12]", "base"])] == ["base", "pair-1", "pair-2"]  # registry order
    run = mini.run("pair-3")
    assert run.parent_key == "base" and [d.key for d in mini.dependencies(run)] == ["base"]
    config = mini.resolve_config(run)
    assert config["tasks"] == ["compass", "distance"]
    assert config["eval"]["tasks"] == ["distance", "angle", "compass"]
    assert config["model"]["d_model"] == 16 and config["seed"] == 7
    assert mini.runs_dir() == MINI.parent / "runs"
    assert mini.runs_dir(tmp_path) == tmp_path


def test_several_seeds_give_seed_folders(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(MINI.read_text().replace("seeds = [7]", "seeds = [7, 8]"))
    registry = load_registry(path)
    keys = [r.key for r in registry.runs(["base", "pair-1"])]
    assert keys == ["base/seed-7", "base/seed-8", "pair-1/seed-7", "pair-1/seed-8"]
    run = registry.run("pair-1/seed-8")
    assert run.rel_dir == "pair-1/seed-8" and run.parent_key == "base/seed-8"
    config = registry.resolve_config(run)
    assert config["seed"] == 8
    assert (
        config["parent"] == "../../base/seed-8/checkpoints/final.pt" and config["data_root"] == "../../.data"
    )
    with pytest.raises(RegistryError, match="several seeds"):
        registry.run("pair-1")


def test_a_run_named_without_globs_is_found_without_expanding_every_run(tmp_path: Path) -> None:
    """`ftui list pair-1/seed-8` in a sweep of thousands builds the runs it names, not every run (issue 18);
    what it returns is what the glob matching returns, in the registry's order."""
    path = tmp_path / "study.toml"
    path.write_text(MINI.read_text().replace("seeds = [7]", "seeds = [7, 8, 10]"))
    cases = [
        ["pair-1/seed-8"],
        ["pair-1/seed-8", "base/seed-10", "pair-1/seed-8"],
        ["pair", "single-2/seed-7"],
        ["base"],
        ["pair-1/seed-9"],
        ["pair-1/seed-8", "nothing"],
        ["pair-1/seed-08"],
    ]
    everything = load_registry(path).all_runs()
    for patterns in cases:
        named = load_registry(path)
        expected = [r for r in everything if any(_matches(r, p) for p in patterns)]  # the glob rule
        unmatched = [p for p in patterns if not any(_matches(r, p) for r in everything)]
        if unmatched:
            with pytest.raises(RegistryError, match=re.escape(f"pattern {unmatched[0]!r} matches no")):
                named.runs(patterns)
            continue
        assert named.runs(patterns) == expected, patterns
        assert "_runs_by_key" not in named.__dict__, patterns  # not expanded
    registry = load_registry(path)
    assert registry.run("pair-2/seed-10") == {r.key: r for r in everything}["pair-2/seed-10"]
    assert "_runs_by_key" not in registry.__dict__
    with pytest.raises(RegistryError, match="several seeds"):
        registry.run("pair-2")
    with pytest.raises(RegistryError, match="unknown run 'pair-2/seed-9'"):
        registry.run("pair-2/seed-9")


def test_family_seeds_must_have_parent_runs(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        MINI.read_text().replace(
            'name = "pair"\nparent = "base"', 'name = "pair"\nparent = "base"\nseeds = [7, 9]'
        )
    )
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert "field 'seeds'" in str(info.value) and "[9]" in str(info.value)


def test_unknown_pattern_and_profile_are_errors(mini: Registry) -> None:
    with pytest.raises(RegistryError, match="'singel-1' matches no experiment.*did you mean 'single-1'"):
        mini.runs(["singel-1"])
    with pytest.raises(RegistryError, match="unknown profile 'paper'.*"):
        mini.resolve_config(mini.run("base"), "paper")


# ---------------------------------------------------------------------------------------------------------
# Writing run configs


def test_write_run_config_is_idempotent_and_guards_started_runs(mini: Registry, tmp_path: Path) -> None:
    run = mini.run("single-1")
    path = write_run_config(mini, run, tmp_path)
    assert path == tmp_path / "single-1" / "config.toml"
    assert tomllib.loads(path.read_text()) == mini.resolve_config(run)
    inode, mtime = path.stat().st_ino, path.stat().st_mtime_ns
    assert write_run_config(mini, run, tmp_path) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)  # identical: untouched

    other = tmp_path / "other.toml"
    other.write_text(MINI.read_text().replace("lr = 3e-4", "lr = 5e-4"))
    changed = load_registry(other)
    write_run_config(changed, changed.run("single-1"), tmp_path)  # not started yet: rewritten
    assert tomllib.loads(path.read_text())["train"]["lr"] == 5e-4

    (path.parent / "events.jsonl").write_text('{"t": 1, "event": "start"}\n')
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="already started with a different config"):
        write_run_config(mini, run, tmp_path)
    assert path.read_bytes() == before
    write_run_config(mini, run, tmp_path, force=True)
    assert tomllib.loads(path.read_text())["train"]["lr"] == 3e-4
    assert sorted(os.listdir(path.parent)) == ["config.toml", "events.jsonl"]  # no temp files left


def _strict_equal(ours: object, theirs: object) -> bool:
    """Equal values AND equal types: 1e-5 must stay a float, 20 an int (tomllib compares 1 == 1.0)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_strict_equal(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list | tuple) and isinstance(theirs, list | tuple):
        return len(ours) == len(theirs) and all(
            _strict_equal(a, b) for a, b in zip(ours, theirs, strict=True)
        )
    return type(ours) is type(theirs) and ours == theirs


STUDY_WORLD = {
    "min_population": 100_000,
    "atlantis_cities": 100,
    "atlantis_center": [-35.0, 35.0],
    "atlantis_sigma": 3.0,
}


def test_round_trip_through_the_engine_config_loader(
    shipped: Registry, mini: Registry, tmp_path: Path
) -> None:
    engine_config = pytest.importorskip("engine.config")
    cases = [(mini, run.key, None) for run in mini.runs()]
    cases += [(shipped, key, p) for key in ("pt1", "ft1-7", "ft3-2", "ftwb2-5") for p in shipped.profiles]
    for registry, key, profile in cases:
        run = registry.run(key)
        runs_dir = tmp_path / (profile or "mini")
        path = write_run_config(registry, run, runs_dir, profile)
        resolved = registry.resolve_config(run, profile)
        assert _strict_equal(tomllib.loads(path.read_text()), resolved)
        loaded = engine_config.load_config(path.parent).to_dict()
        loaded["model"].pop("vocab_size")  # the tokenizer's, not a config key
        if "parent" not in resolved:
            assert loaded.pop("parent") is None
        if "world" not in resolved:  # a profile without [world]: the engine's default, the study's world
            assert loaded.pop("world") == STUDY_WORLD
        assert _strict_equal(loaded, resolved), (key, profile)


# ---------------------------------------------------------------------------------------------------------
# Bad input: every problem names the file, the line, the entity and the field; nothing is written


def broken(tmp_path: Path, *edits: tuple[str, str]) -> tuple[Path, str]:
    """The mini study with text edits applied, written to tmp_path/study.toml."""
    text = MINI.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path, text


def problems(path: Path) -> list[str]:
    before = sorted(path.parent.rglob("*"))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert sorted(path.parent.rglob("*")) == before, "loading a registry never writes"
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str, after: str | None = None) -> int:
    start = text.index(after) if after else 0
    return text[: text.index(needle, start)].count("\n") + 1


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ("n_layer = 1", "n_layer = = 1"))
    [message] = problems(path)
    assert message.startswith(f"{path}:{line_of(text, 'n_layer = = 1')}:11: TOML syntax error")


@pytest.mark.parametrize(
    ("edit", "where", "field", "suggestion"),
    [
        (("batch_size = 16", "batch_sise = 16"), "profile 'smoke'", "train.batch_sise", "batch_size"),
        (('name = "pair"\nparent', 'name = "pair"\nparnt'), "family 'pair'", "parnt", "parent"),
        (("[runner]\n", "[runner]\ncpu_job = 3\n"), "runner", "cpu_job", "cpu_jobs"),
        (("[study]\n", "[study]\nseed = [1]\n"), "study", "seed", "seeds"),
    ],
)
def test_unknown_key_with_did_you_mean(
    tmp_path: Path, edit: tuple[str, str], where: str, field: str, suggestion: str
) -> None:
    path, text = broken(tmp_path, edit)
    line = line_of(text, field.rsplit(".", 1)[-1] + " =")
    assert f"{path}:{line}: {where}: field '{field}': unknown key" in "\n".join(problems(path))
    assert f"did you mean '{suggestion}'?" in "\n".join(problems(path))


def test_app_bell_is_read_and_on_by_default(tmp_path: Path) -> None:
    assert load_registry(MINI).app == AppSettings(bell=True)  # no [app] table
    path, _ = broken(tmp_path, ("[runner]\n", "[app]\nbell = false\n\n[runner]\n"))
    assert load_registry(path).app == AppSettings(bell=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"no"', "must be true or false, got a string 'no'"),
        ("0", "must be true or false, got an integer 0"),
    ],
)
def test_app_bell_must_be_a_boolean(tmp_path: Path, value: str, expected: str) -> None:
    path, text = broken(tmp_path, ("[runner]\n", f"[app]\nbell = {value}\n\n[runner]\n"))
    [message] = problems(path)
    assert message == f"{path}:{line_of(text, 'bell =')}: app: field 'bell': {expected}"


def test_app_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ("[runner]\n", "[app]\nbel = true\n\n[runner]\n"))
    [message] = problems(path)
    line = line_of(text, "bel =")
    assert message == f"{path}:{line}: app: field 'bel': unknown key (allowed: bell; did you mean 'bell'?)"


def test_unknown_task_name(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ('kind = "pretrain"', 'kind = "pretrain"\ntasks = ["D", "A", "compas"]'))
    [message] = problems(path)
    line = line_of(text, '"compas"')
    assert message.startswith(f"{path}:{line}: experiment 'base': field 'tasks': ")
    assert "unknown task 'compas' (allowed: distance, angle, compass or their short codes" in message
    assert "did you mean 'compass'?" in message


def test_unknown_task_in_a_task_set_list(tmp_path: Path) -> None:
    path, text = broken(
        tmp_path, ('singles = [["D"], ["A"], ["Co"]]', 'singles = [["D"], ["angel"], ["Co"]]')
    )
    message = problems(path)[0]
    assert message.startswith(f"{path}:{line_of(text, 'angel')}: task_sets 'singles': field '[1]'")
    assert "did you mean 'angle'?" in message


def test_repeated_task_in_a_set(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ('["D", "A"], ["A", "Co"]', '["D", "A"], ["A", "angle"]'))
    [message] = problems(path)
    assert message.startswith(f"{path}:{line_of(text, 'pairs =')}: task_sets 'pairs': field '[1]'")
    assert "names task 'angle' twice" in message


def test_duplicate_experiment_name(tmp_path: Path) -> None:
    extra = '[[experiment]]\nname = "single-2"\nparent = "base"\ntasks = ["D"]\n\n[task_sets]'
    path, text = broken(tmp_path, ("[task_sets]", extra))
    [message] = problems(path)
    line = line_of(text, 'sets = "singles"') - 2
    assert message.startswith(f"{path}:{line}: family 'single' (single-2):")
    assert "field 'name': duplicate experiment name 'single-2' (also experiment 'single-2')" in message


def test_missing_parent(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ('name = "pair"\nparent = "base"', 'name = "pair"\nparent = "bsae"'))
    [message] = problems(path)
    assert message.startswith(f"{path}:{line_of(text, 'bsae')}: family 'pair': field 'parent': ")
    assert "unknown experiment 'bsae'" in message and "did you mean 'base'?" in message


def test_dependency_cycle(tmp_path: Path) -> None:
    extra = (
        '[[experiment]]\nname = "a"\nparent = "b"\ntasks = ["D"]\n\n'
        '[[experiment]]\nname = "b"\nparent = "a"\ntasks = ["A"]\n\n[task_sets]'
    )
    path, text = broken(tmp_path, ("[task_sets]", extra))
    [message] = problems(path)
    line = line_of(text, 'parent = "b"')
    assert message.startswith(f"{path}:{line}: experiment 'a': field 'parent': ")
    assert "dependency cycle: a -> b -> a" in message


def test_unknown_profile(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ('default_profile = "smoke"', 'default_profile = "smok"'))
    [message] = problems(path)
    assert message == (
        f"{path}:{line_of(text, 'default_profile')}: study: field 'default_profile': unknown profile 'smok' "
        "(allowed: smoke; did you mean 'smoke'?)"
    )
    path, text = broken(
        tmp_path, ("[profile.smoke.model]", '[profile.tiny]\ninherit = "smoky"\n\n[profile.smoke.model]')
    )
    [message] = problems(path)
    assert message.startswith(f"{path}:{line_of(text, 'inherit')}: profile 'tiny': field 'inherit': unknown")


def test_profile_inheritance_cycle(tmp_path: Path) -> None:
    path, _ = broken(
        tmp_path, ("[profile.smoke.model]", '[profile.smoke]\ninherit = "smoke"\n\n[profile.smoke.model]')
    )
    assert "inheritance cycle: smoke -> smoke" in "\n".join(problems(path))


def test_heatmap_naming_a_missing_family(tmp_path: Path) -> None:
    path, text = broken(tmp_path, ('family = "pair"', 'family = "pairs"'))
    [message] = problems(path)
    line = line_of(text, 'family = "pairs"')
    assert message.startswith(f"{path}:{line}: heatmap 'pair': field 'family': ")
    assert "unknown family 'pairs'" in message and "did you mean 'pair'?" in message


def test_prediction_source_must_cover_the_target(tmp_path: Path) -> None:
    # `single` loses its compass-only row, so it cannot predict pair-2 (angle + compass).
    path, text = broken(
        tmp_path, ('singles = [["D"], ["A"], ["Co"]]', 'singles = [["D"], ["A"], ["D", "Co"]]')
    )
    [message] = problems(path)
    assert message.startswith(
        f"{path}:{line_of(text, 'predict_from')}: heatmap 'pair': field 'predict_from': "
    )
    assert "cannot predict row 'pair-2' (angle+compass): it has no single-task run of compass" in message


@pytest.mark.parametrize("bad", ["../pair", "pa/ir", "-pair", "pair..x", "pair x", ".pair"])
def test_unsafe_names_are_rejected(tmp_path: Path, bad: str) -> None:
    path, text = broken(tmp_path, ('name = "pair"\nparent', f'name = "{bad}"\nparent'))
    found = [m for m in problems(path) if "unsafe name" in m]
    assert found and found[0].startswith(
        f"{path}:{line_of(text, bad)}: family '{bad}': field 'name': unsafe name"
    )
    assert "letters, digits, '.', '_' and '-' only" in found[0]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("lr = 1e-3", 'lr = "fast"'), "field 'pretrain.lr': must be a number > 0, got a string 'fast'"),
        (
            ("n_head = 2", "n_head = 3"),
            "field 'model.n_head': must divide d_model (16) into heads of even width",
        ),
        (("n = 16", "n = 0"), "field 'eval.n': must be an integer >= 1, got 0"),
        (
            ('device = "cpu"', 'device = "gpu"'),
            "field 'train.device': unknown value 'gpu' (allowed: auto, cpu, cuda",
        ),
        (("warmup_rows = 8", "warmup_rows = 0"), None),
        (
            ("standard_rows = 128", "standard_rows = 4"),
            "field 'pretrain.batch_size': larger than the training rows",
        ),
        (('gpus = "auto"', 'gpus = "all"'), "runner: field 'gpus': must be \"auto\" or a list"),
        (('normalisation = "perfect"', 'normalisation = "best"'), "unknown scheme 'best'"),
        (("seeds = [7]", "seeds = [7, 7]"), "field 'seeds': lists a seed twice"),
        (
            ('kind = "pretrain"', 'kind = "pretrain"\nparent = "base"'),
            "a pretraining run starts from scratch",
        ),
        (('sets = "pairs"', 'sets = "pears"'), "unknown task set list 'pears'"),
        # NaN and inf pass every comparison test: each is refused by name, where the engine refuses them too
        (("lr = 1e-3", "lr = nan"), "field 'pretrain.lr': must be a finite number > 0, got nan"),
        (("betas = [0.9, 0.999]", "betas = [0.9, 1.5]"), "must be a list of 2 numbers >= 0 and < 1"),
        (("grace_s = 5.0", "grace_s = nan"), "runner: field 'grace_s': must be a number of seconds >= 0"),
        (("grace_s = 5.0", "grace_s = inf"), "runner: field 'grace_s': must be a number of seconds >= 0"),
        (
            ('name = "compass", short', 'name = "compas", short'),
            "study: field 'tasks[2].name': the engine has no task 'compas' (allowed: distance, trianglearea,"
            " angle, compass, inside, perimeter, crossing; did you mean 'compass'?)",
        ),
    ],
)
def test_other_bad_values(tmp_path: Path, edit: tuple[str, str], expected: str | None) -> None:
    path, _ = broken(tmp_path, edit)
    if expected is None:  # warm-up rows are only needed when an experiment asks for them
        path.write_text(path.read_text().replace('sets = "pairs"', 'sets = "pairs"\nwarmup = true'))
        expected = "field 'finetune.warmup_rows': must be > 0: experiments with warmup = true use it (pair-1"
    assert expected in "\n".join(problems(path))


def test_all_problems_are_reported_at_once() -> None:
    messages = problems(BAD / "many_problems.toml")
    assert len(messages) >= 5
    assert all(m.startswith(f"{BAD / 'many_problems.toml'}:") for m in messages)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="nope.toml: file not found"):
        load_registry(tmp_path / "nope.toml")
