"""The run config: `RUN_DIR/config.toml` read with tomllib into frozen dataclasses, and validated.

The schema is documented in docs/run-directory.md. Every problem raises `ConfigError` with a message that
names the file, the dotted key and what is allowed; `python -m engine` maps it to exit code 2.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.world import WorldSpec, load_world

CONFIG_NAME = "config.toml"
KINDS = ("pretrain", "finetune")
DATA_SETS = ("standard", "atlantis")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16")
COMPILE_MODES = ("auto", "on", "off")
LOSSES = ("all", "answer")  # every token (the study) | the answer only (engine/train.py answer_targets)


class ConfigError(ValueError):
    """A config.toml problem; the message is complete (file, key, what is allowed)."""


@dataclass(frozen=True)
class DataPart:
    task: str
    set: str
    n: int


@dataclass(frozen=True)
class DataConfig:
    seed: int = 0
    parts: tuple[DataPart, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the Qwen2-like decoder. Defaults are the study's (paper) shape.

    vocab_size is not a config.toml key: it is the tokenizer's (98); train.py checks that they agree.
    """

    vocab_size: int = 98
    n_layer: int = 6
    d_model: int = 128
    n_head: int = 4
    d_mlp: int = 512
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    init_std: float = 0.1

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128
    epochs: int = 1
    max_steps: int = 0
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    warmup_steps: int = 50
    group_by_length: bool = False
    packing: bool = False
    loss: str = "all"
    log_every_steps: int = 100
    log_every_s: float = 2.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    device: str = "auto"
    dtype: str = "auto"
    compile: str = "auto"


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 1
    n: int = 10000
    sets: tuple[str, ...] = DATA_SETS
    tasks: tuple[str, ...] = ()  # empty = every task of engine.tasks.TASKS
    batch_size: int = 1000
    save_examples: bool = False


@dataclass(frozen=True)
class RunConfig:
    name: str
    kind: str
    seed: int = 42
    tasks: tuple[str, ...] = ()
    parent: str | None = None
    data_root: str = "../.data"
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldSpec = field(default_factory=WorldSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def parent_path(self, run_dir: Path) -> Path | None:
        return None if self.parent is None else _resolve(run_dir, self.parent)

    def data_root_path(self, run_dir: Path) -> Path:
        return _resolve(run_dir, self.data_root)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists): for events and checkpoints."""
        return json.loads(json.dumps(asdict(self)))


def _resolve(run_dir: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (run_dir / p)


# ---------------------------------------------------------------------------------------------------------
# Validation: a tiny schema language. Each key maps to a checker that returns the converted value or raises.


class _Ctx:
    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {problem}")


Checker = Callable[[_Ctx, str, Any], Any]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _int(lo: int | None = None) -> Checker:
    def check(ctx: _Ctx, key: str, v: Any) -> int:
        allowed = "an integer" + (f" >= {lo}" if lo is not None else "")
        if isinstance(v, bool) or not isinstance(v, int):
            raise ctx.fail(key, f"expected {allowed}, got {_describe(v)}")
        if lo is not None and v < lo:
            raise ctx.fail(key, f"expected {allowed}, got {v}")
        return v

    return check


def _float(lo: float | None = None, strict: bool = False, hi: float | None = None) -> Checker:
    def check(ctx: _Ctx, key: str, v: Any) -> float:
        bound = ""
        if lo is not None:
            bound += f" {'>' if strict else '>='} {lo}"
        if hi is not None:
            bound += f"{' and' if bound else ''} < {hi}"
        allowed = "a number" + bound
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ctx.fail(key, f"expected {allowed}, got {_describe(v)}")
        f = float(v)
        ok = math.isfinite(f)
        if lo is not None:
            ok = ok and (f > lo if strict else f >= lo)
        if hi is not None:
            ok = ok and f < hi
        if not ok:
            raise ctx.fail(key, f"expected {allowed}, got {v}")
        return f

    return check


def _str(choices: tuple[str, ...] | None = None) -> Checker:
    def check(ctx: _Ctx, key: str, v: Any) -> str:
        if not isinstance(v, str) or (choices is None and not v):
            raise ctx.fail(key, f"expected a non-empty string, got {_describe(v)}")
        if choices is not None and v not in choices:
            raise ctx.fail(key, f"{v!r} is not allowed; allowed: {', '.join(map(repr, choices))}")
        return v

    return check


def _bool(ctx: _Ctx, key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ctx.fail(key, f"expected true or false, got {_describe(v)}")
    return v


def _list(item: Checker, min_len: int = 0, unique: bool = True) -> Checker:
    def check(ctx: _Ctx, key: str, v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list):
            raise ctx.fail(key, f"expected a list, got {_describe(v)}")
        if len(v) < min_len:
            raise ctx.fail(key, f"expected at least {min_len} item(s), got {len(v)}")
        out = tuple(item(ctx, f"{key}[{i}]", x) for i, x in enumerate(v))
        if unique and len(set(out)) != len(out):
            raise ctx.fail(key, f"items must be unique, got {v!r}")
        return out

    return check


def _task_names() -> tuple[str, ...]:
    # Imported lazily: the task registry is the one place that lists the tasks.
    from engine.tasks import TASKS

    return tuple(TASKS)


def _task(ctx: _Ctx, key: str, v: Any) -> str:
    return _str(_task_names())(ctx, key, v)


def _betas(ctx: _Ctx, key: str, v: Any) -> tuple[float, float]:
    if not isinstance(v, list) or len(v) != 2:
        raise ctx.fail(key, f"expected a list of two numbers in [0, 1), got {_describe(v)}")
    b = tuple(_float(0.0, hi=1.0)(ctx, f"{key}[{i}]", x) for i, x in enumerate(v))
    return (b[0], b[1])


def _center(ctx: _Ctx, key: str, v: Any) -> tuple[float, float]:
    if not isinstance(v, list) or len(v) != 2:
        raise ctx.fail(key, f"expected [longitude, latitude] in degrees, got {_describe(v)}")
    lon = _float(-180.0)(ctx, f"{key}[0]", v[0])
    lat = _float(-90.0)(ctx, f"{key}[1]", v[1])
    if lon > 180.0 or lat > 90.0:
        raise ctx.fail(key, f"expected longitude in [-180, 180] and latitude in [-90, 90], got {v}")
    return (lon, lat)


def _table(
    ctx: _Ctx, key: str, v: Any, schema: Mapping[str, Checker], required: tuple[str, ...] = ()
) -> dict:
    if not isinstance(v, dict):
        raise ctx.fail(key, f"expected a table, got {_describe(v)}")
    prefix = f"{key}." if key else ""
    for k in v:
        if k not in schema:
            close = difflib.get_close_matches(k, list(schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.fail(f"{prefix}{k}", f"unknown key{hint}; allowed: {', '.join(schema)}")
    for k in required:
        if k not in v:
            raise ctx.fail(f"{prefix}{k}", "missing (required)")
    return {k: schema[k](ctx, f"{prefix}{k}", x) for k, x in v.items()}


def _part(ctx: _Ctx, key: str, v: Any) -> DataPart:
    schema = {"task": _task, "set": _str(DATA_SETS), "n": _int(1)}
    return DataPart(**_table(ctx, key, v, schema, required=("task", "set", "n")))


def _sub(cls: type, schema: Mapping[str, Checker], required: tuple[str, ...] = ()) -> Checker:
    def check(ctx: _Ctx, key: str, v: Any) -> Any:
        return cls(**_table(ctx, key, v, schema, required))

    return check


_DATA = _sub(DataConfig, {"seed": _int(0), "parts": _list(_part, min_len=1, unique=False)}, ("parts",))
_WORLD = _sub(
    WorldSpec,
    {
        "min_population": _int(0),
        "atlantis_cities": _int(1),
        "atlantis_center": _center,
        "atlantis_sigma": _float(0.0, strict=True),
    },
)
_MODEL = _sub(
    ModelConfig,
    {
        "n_layer": _int(1),
        "d_model": _int(2),
        "n_head": _int(1),
        "d_mlp": _int(1),
        "max_seq_len": _int(2),
        "rope_theta": _float(0.0, strict=True),
        "init_std": _float(0.0, strict=True),
    },
)
_TRAIN = _sub(
    TrainConfig,
    {
        "batch_size": _int(1),
        "epochs": _int(1),
        "max_steps": _int(0),
        "lr": _float(0.0, strict=True),
        "weight_decay": _float(0.0),
        "betas": _betas,
        "grad_clip": _float(0.0),
        "warmup_steps": _int(0),
        "group_by_length": _bool,
        "packing": _bool,
        "loss": _str(LOSSES),
        "log_every_steps": _int(1),
        "log_every_s": _float(0.0, strict=True),
        "checkpoint_every": _int(1),
        "keep_checkpoints": _int(1),
        "device": _str(DEVICES),
        "dtype": _str(DTYPES),
        "compile": _str(COMPILE_MODES),
    },
)
_EVAL = _sub(
    EvalConfig,
    {
        "seed": _int(0),
        "n": _int(1),
        "sets": _list(_str(DATA_SETS), min_len=1),
        "tasks": _list(_task, min_len=1),
        "batch_size": _int(1),
        "save_examples": _bool,
    },
)
_TOP: dict[str, Checker] = {
    "name": _str(),
    "kind": _str(KINDS),
    "seed": _int(0),
    "tasks": _list(_task),
    "parent": _str(),
    "data_root": _str(),
    "data": _DATA,
    "world": _WORLD,
    "model": _MODEL,
    "train": _TRAIN,
    "eval": _EVAL,
}


def parse_config(raw: Mapping[str, Any], file: Path) -> RunConfig:
    """Validate an already-parsed TOML document (`file` only names it in messages)."""
    ctx = _Ctx(file)
    values = _table(ctx, "", dict(raw), _TOP, required=("name", "kind", "data"))
    cfg = RunConfig(**values)
    try:
        load_world(cfg.world)  # also counts its cities (cached: every run builds its world anyway)
    except ValueError as e:
        key, _, problem = str(e).partition(": ")
        raise ctx.fail(key, problem) from None
    m = cfg.model
    if m.d_model % m.n_head:
        raise ctx.fail("model.n_head", f"must divide model.d_model ({m.d_model}), got {m.n_head}")
    if m.head_dim % 2:
        raise ctx.fail("model.n_head", f"d_model / n_head must be even for RoPE, got {m.head_dim}")
    rows = sum(p.n for p in cfg.data.parts)
    if cfg.train.batch_size > rows:
        raise ctx.fail(
            "train.batch_size", f"must be <= the rows of data.parts ({rows}), got {cfg.train.batch_size}"
        )
    if cfg.kind == "finetune" and cfg.parent is None:
        raise ctx.fail("parent", 'required when kind = "finetune" (path of the parent\'s final.pt)')
    if cfg.kind == "pretrain" and cfg.parent is not None:
        raise ctx.fail("parent", 'only allowed when kind = "finetune"')
    if not cfg.eval.tasks:
        cfg = RunConfig(**{**values, "eval": EvalConfig(**{**asdict(cfg.eval), "tasks": _task_names()})})
    return cfg


def read_raw(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    file = run_dir / CONFIG_NAME
    try:
        with open(file, "rb") as f:
            return file, tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{file}: not found (a run directory needs a config.toml)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e}") from None


def load_config(run_dir: Path) -> RunConfig:
    file, raw = read_raw(run_dir)
    return parse_config(raw, file)


def config_hash(raw: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of config.toml as parsed by tomllib (sorted keys, no spaces).

    Hashing the raw document (not the defaults-filled dataclass) lets ftui compute the same hash with only
    tomllib and json.
    """
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
