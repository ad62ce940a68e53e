"""The contract between ftui's validation and the engine's: the same value gets the same verdict.

Each value (in range, at a bound, beyond it, NaN, inf, the wrong type) of every numeric field the engine
checks goes through ftui's registry (written into the mini study where a profile or the study sets it) and
through the engine's own parser (engine.config.parse_config, put into the config ftui resolves for every
run). ftui must accept exactly what the engine accepts: a value ftui lets through would be queued and only
fail when its job starts. Task names too: ftui knows the engine's tasks from the engine's task list file,
without importing the engine.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from engine.config import (
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_config,
)
from ftui.registry import RegistryError, load_registry
from tests.conftest import REPO_ROOT

MINI = REPO_ROOT / "tests" / "data" / "mini_study.toml"
NAN, INF = float("nan"), float("inf")

INT_VALUES: list[Any] = [-1, 0, 1, 2, 3, 64, 2.0, "1", True]
FLOAT_VALUES: list[Any] = [-1.0, 0, 0.0, 1e-12, 0.5, 1, 1.0, 2.5, NAN, INF, -INF, "0.1", True]
BETAS_VALUES: list[Any] = [
    [0.9, 0.999],
    [0.0, 0.0],
    [0, 0.5],
    [0.9, 1.0],
    [0.9, 1.5],
    [-0.1, 0.9],
    [NAN, 0.9],
    [0.9, INF],
    [0.9],
    [0.9, 0.99, 0.999],
    "0.9",
    [True, 0.9],
]

# engine config key -> (where ftui takes it from: a [table] of the mini study and its key, values to try)
FIELDS: dict[str, tuple[str, str, list[Any]]] = {
    **{f"model.{k}": ("profile.smoke.model", k, INT_VALUES) for k in ("n_layer", "d_mlp", "max_seq_len")},
    "model.d_model": ("profile.smoke.model", "d_model", [*INT_VALUES, 32]),
    "model.n_head": ("profile.smoke.model", "n_head", [*INT_VALUES, 4, 8, 16]),
    **{f"model.{k}": ("profile.smoke.model", k, FLOAT_VALUES) for k in ("rope_theta", "init_std")},
    **{
        f"train.{k}": ("profile.smoke.train", k, INT_VALUES)
        for k in (
            "batch_size",
            "epochs",
            "max_steps",
            "warmup_steps",
            "log_every_steps",
            "checkpoint_every",
            "keep_checkpoints",
        )
    },
    **{
        f"train.{k}": ("profile.smoke.train", k, FLOAT_VALUES)
        for k in ("weight_decay", "grad_clip", "log_every_s")
    },
    "train.lr": ("profile.smoke.pretrain", "lr", FLOAT_VALUES),
    "train.betas": ("profile.smoke.train", "betas", BETAS_VALUES),
    "eval.n": ("profile.smoke.eval", "n", INT_VALUES),
    "eval.batch_size": ("profile.smoke.eval", "batch_size", INT_VALUES),
    "eval.seed": ("study", "eval_seed", INT_VALUES),
    "data.seed": ("study", "data_seed", INT_VALUES),
    "seed": ("study", "seeds", [[v] for v in INT_VALUES]),
}


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def with_value(text: str, table: str, key: str, value: Any) -> str:
    """The registry text with `key = value` in `[table]` (replacing the key's line, or added to the table)."""
    header = f"[{table}]"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end
    body, n = re.subn(
        rf"^{key} = [^\n]*", f"{key} = {toml_value(value)}", text[start:end], count=1, flags=re.M
    )
    if n == 0:
        body = f"\n{key} = {toml_value(value)}" + body
    return text[:start] + body + text[end:]


def engine_accepts(config: dict[str, Any]) -> bool:
    try:
        parse_config(config, Path("config.toml"))
    except ConfigError:
        return False
    return True


def set_key(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    *tables, last = dotted.split(".")
    node = out
    for t in tables:
        node = node.setdefault(t, {})
    node[last] = value[0] if dotted == "seed" else value  # the study's `seeds` list -> one run's seed
    return out


def ftui_verdict(text: str) -> list[dict[str, Any]] | None:
    """The configs ftui resolves for every run of the registry `text`, or None when ftui refuses it."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "experiments.toml"
        file.write_text(text)
        try:
            registry = load_registry(file)
        except RegistryError:
            return None
        return [registry.resolve_config(run) for run in registry.all_runs()]


BASELINE = MINI.read_text()
BASE_CONFIGS = ftui_verdict(BASELINE) or []


def cases() -> list[Any]:
    return [
        pytest.param(field, value, id=f"{field}={toml_value(value)}")
        for field, (_, _, values) in FIELDS.items()
        for value in values
    ]


@pytest.mark.parametrize("field, value", cases())
def test_ftui_and_the_engine_give_the_same_verdict(field: str, value: Any) -> None:
    table, key, _ = FIELDS[field]
    resolved = ftui_verdict(with_value(BASELINE, table, key, value))
    runs = [c for c in BASE_CONFIGS if table != "profile.smoke.pretrain" or c["kind"] == "pretrain"]
    engine_ok = all(engine_accepts(set_key(c, field, value)) for c in runs)
    assert (resolved is not None) == engine_ok, (
        f"{field} = {toml_value(value)}: ftui {'accepts' if resolved is not None else 'refuses'} it, "
        f"the engine {'accepts' if engine_ok else 'refuses'} it"
    )
    if resolved is not None:  # and what ftui writes is what the engine reads
        assert all(engine_accepts(c) for c in resolved)


def test_the_contract_covers_every_numeric_field_the_engine_checks() -> None:
    numeric: set[str] = {"seed"}
    for prefix, cls in (
        ("model", ModelConfig),
        ("train", TrainConfig),
        ("eval", EvalConfig),
        ("data", DataConfig),
    ):
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float", "tuple[float, float]") and f.name != "vocab_size":
                numeric.add(f"{prefix}.{f.name}")
    assert numeric <= set(FIELDS), sorted(numeric - set(FIELDS))
    assert {f.name for f in dataclasses.fields(RunConfig)} >= {"seed", "tasks"}


@pytest.mark.parametrize("name, engine_ok", [("compass", True), ("compas", False), ("Compass", False)])
def test_task_names_get_the_same_verdict(name: str, engine_ok: bool) -> None:
    text = BASELINE.replace('{ name = "compass", short = "Co" }', f'{{ name = "{name}", short = "Co" }}')
    base = BASE_CONFIGS[0]
    config = base | {"tasks": [name if t == "compass" else t for t in base["tasks"]]}
    assert engine_accepts(config) == engine_ok
    assert (ftui_verdict(text) is not None) == engine_ok


def test_ftui_reads_the_task_names_without_importing_the_engine() -> None:
    probe = (
        "import sys; from ftui.registry import load_registry;"
        f"load_registry({str(MINI)!r});"
        "print(sorted(m for m in sys.modules if m == 'engine' or m.startswith('engine.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_engine_task_list_file_is_the_engines_order() -> None:
    from engine.tasks import TASKS
    from ftui.registry.tasks import engine_task_names

    assert engine_task_names() == tuple(TASKS)
