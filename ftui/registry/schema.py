"""The vocabulary of experiments.toml: allowed keys and value rules, problems, and a line locator.

Validation collects every problem it finds (not just the first) so one `ftui validate` shows them all. Each
problem names the file, the line (tomllib gives no positions, so `SourceMap` finds them in the text), the
entity (experiment, family, profile...), the field and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a registry file."""

    file: str
    line: int | None
    where: str | None  # e.g. "experiment 'ft2-3'", "profile 'small'", "study"
    field: str | None  # dotted key inside `where`, e.g. "tasks", "pretrain.lr"
    message: str
    column: int | None = None

    def __str__(self) -> str:
        location = self.file
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        parts = [location]
        if self.where:
            parts.append(self.where)
        if self.field:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "where": self.where,
            "field": self.field,
            "message": self.message,
            "text": str(self),
        }


class RegistryError(Exception):
    """The registry (or a request against it) is invalid; `.problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """' (allowed: a, b; did you mean 'x'?)': the tail of an 'unknown ...' message."""
    choices = list(allowed)
    # Long lists (every experiment of a study) would drown the message: show the start and the count.
    shown = (
        ", ".join(choices)
        if len(choices) <= 16
        else ", ".join(choices[:8]) + f", ... ({len(choices)} in all)"
    )
    import difflib  # (here: only a bad registry pays for it)

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f" (allowed: {shown}{hint})"


# ---------------------------------------------------------------------------------------------------------
# Locating things in the text


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _norm_header(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


class SourceMap:
    """Finds the line of a table, a key or a value in a TOML text (1-based), best effort.

    Good enough for error messages: it understands `[table]`, `[[array]]` headers and `key = ` lines; values
    inside multi-line arrays are found by searching for their quoted text after the key.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, header name, is array-of-tables)
        self.headers: list[tuple[int, str, bool]] = []
        for number, line in enumerate(self.lines, start=1):
            match = _HEADER.match(line)
            if match and not line.lstrip().startswith("#"):
                self.headers.append((number, _norm_header(match.group(2)), match.group(1) == "[["))

    def block(self, table: str, index: int | None = None) -> tuple[int, int] | None:
        """Line range [start, end) of `[table]` (or the `index`-th `[[table]]`) with its sub-tables."""
        if table == "":
            end = self.headers[0][0] if self.headers else len(self.lines) + 1
            return (1, end)
        seen = -1
        for pos, (number, name, is_array) in enumerate(self.headers):
            if name != table:
                continue
            if index is not None:
                if not is_array:
                    continue
                seen += 1
                if seen != index:
                    continue
            end = len(self.lines) + 1
            for later_number, later_name, later_array in self.headers[pos + 1 :]:
                if not later_name.startswith(table + ".") or (later_name == table and later_array):
                    end = later_number
                    break
            return (number, end)
        # `[profile.small]` may hold `pretrain.lr = ...` as dotted keys: fall back to the parent table.
        if "." in table:
            return self.block(table.rsplit(".", 1)[0], index)
        return None

    def find(
        self, table: str, index: int | None = None, key: str | None = None, needle: str | None = None
    ) -> int | None:
        """Line of `key` (or of the quoted `needle` at/after `key`) in a table; else the table's header."""
        span = self.block(table, index)
        if span is None:
            return None
        start, end = span
        line_no: int | None = start if table else None
        if key is not None:
            last = key.rsplit(".", 1)[-1]
            pattern = re.compile(rf"^\s*(?:{re.escape(key)}|{re.escape(last)}|\"{re.escape(last)}\")\s*=")
            for number in range(start, end):
                if pattern.match(self.lines[number - 1]):
                    line_no = number
                    break
        if needle is not None:
            quoted = re.compile(rf"[\"']{re.escape(needle)}[\"']")
            for number in range(line_no or start, end):
                if quoted.search(self.lines[number - 1]):
                    return number
        return line_no


# ---------------------------------------------------------------------------------------------------------
# Value rules


@dataclass(frozen=True)
class Spec:
    """What one key accepts. `kind`: int | float | str | bool | float_list | str_list | int_table."""

    kind: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None  # exclusive; for float_list, each item's bounds
    choices: tuple[str, ...] = ()
    length: int | None = None  # for lists

    def check(self, value: Any) -> str | None:
        """None if `value` is allowed, else a message saying what is allowed."""
        if self.kind in ("int", "float"):
            return self._number(value)
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {_show(value)}"
        if self.kind == "str":
            if not isinstance(value, str):
                return f"must be a string{self._allowed()}, got {_show(value)}"
            if self.choices and value not in self.choices:
                return f"unknown value {value!r}" + did_you_mean(value, self.choices)
            return None
        if self.kind in ("float_list", "str_list"):
            item_ok = (
                (lambda v: isinstance(v, int | float) and not isinstance(v, bool))
                if self.kind == "float_list"
                else (lambda v: isinstance(v, str))
            )
            noun = "numbers" if self.kind == "float_list" else "strings"
            count = f"{self.length} " if self.length else ""
            if not isinstance(value, list) or not all(item_ok(v) for v in value):
                return f"must be a list of {count}{noun}{self._range()}, got {_show(value)}"
            if self.length is not None and len(value) != self.length:
                return f"must be a list of {count}{noun}{self._range()}, got {len(value)}"
            if self.kind == "float_list":
                for item in value:
                    if self._number(item) is not None:
                        return f"must be a list of {count}{noun}{self._range()}, got {value!r}"
            if self.kind == "str_list":
                if not value:
                    return f"must not be empty{self._allowed()}"
                for item in value:
                    if self.choices and item not in self.choices:
                        return f"unknown value {item!r}" + did_you_mean(item, self.choices)
                if len(set(value)) != len(value):
                    return f"lists a value twice: {value}"
            return None
        if self.kind == "int_table":
            if not isinstance(value, dict):
                return f"must be a table like {{ 3 = 20 }}, got {_show(value)}"
            for key, item in value.items():
                if not key.isdigit() or int(key) < 1:
                    return f"keys must be task-set sizes (1, 2, 3, ...), got {key!r}"
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    return f"values must be integers >= 1, got {_show(item)} for {key}"
            return None
        raise AssertionError(f"unknown spec kind {self.kind}")

    def _number(self, value: Any) -> str | None:
        """The rule of the engine (engine/config.py): the right type, finite (no nan or inf), in range."""
        noun = "an integer" if self.kind == "int" else "a number"
        kinds = int if self.kind == "int" else int | float
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"must be {noun}{self._range()}, got {_show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number{self._range()}, got {value!r}"
        low = self.minimum is not None and (
            value <= self.minimum if self.exclusive_minimum else value < self.minimum
        )
        if low or (self.maximum is not None and value >= self.maximum):
            return f"must be {noun}{self._range()}, got {value!r}"
        return None

    def _range(self) -> str:
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"< {self.maximum:g}")
        return (" " + " and ".join(bounds)) if bounds else ""

    def _allowed(self) -> str:
        return f" (allowed: {', '.join(self.choices)})" if self.choices else ""


def _show(value: Any) -> str:
    kind = type(value).__name__
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
        "list": "a list",
    }
    return f"{names.get(kind, kind)} {value!r}" if kind != "dict" else "a table"


# Engine run-config sections (docs/run-directory.md). ftui validates them early so `ftui validate` catches a
# bad profile before any run starts; the engine validates again when it loads config.toml.
MODEL_KEYS: dict[str, Spec] = {
    "n_layer": Spec("int", 1),
    "d_model": Spec("int", 2),
    "n_head": Spec("int", 1),
    "d_mlp": Spec("int", 1),
    "max_seq_len": Spec("int", 2),
    "rope_theta": Spec("float", 0, exclusive_minimum=True),
    "init_std": Spec("float", 0, exclusive_minimum=True),
}
TRAIN_KEYS: dict[str, Spec] = {
    "batch_size": Spec("int", 1),
    "epochs": Spec("int", 1),
    "max_steps": Spec("int", 0),
    "lr": Spec("float", 0, exclusive_minimum=True),
    "weight_decay": Spec("float", 0),
    "betas": Spec("float_list", 0, length=2, maximum=1),  # each in [0, 1)
    "grad_clip": Spec("float", 0),
    "warmup_steps": Spec("int", 0),
    "group_by_length": Spec("bool"),
    "packing": Spec("bool"),
    "loss": Spec("str", choices=("all", "answer")),
    "log_every_steps": Spec("int", 1),
    "log_every_s": Spec("float", 0, exclusive_minimum=True),
    "checkpoint_every": Spec("int", 1),
    "keep_checkpoints": Spec("int", 1),
    "device": Spec("str", choices=("auto", "cpu", "cuda")),
    "dtype": Spec("str", choices=("auto", "float32", "bfloat16")),
    "compile": Spec("str", choices=("auto", "on", "off")),
}
# Registry-only keys of a pretrain/finetune profile section: they build the [data] recipe and pick epochs.
RECIPE_KEYS: dict[str, Spec] = {
    "standard_rows": Spec("int", 0),  # per trained task, from the standard (no Atlantis) stream
    "atlantis_rows": Spec("int", 0),  # per trained task, from the atlantis stream
    "warmup_rows": Spec("int", 0),  # per study task, atlantis rows, for experiments with warmup = true
    "epochs_by_set_size": Spec("int_table"),  # { 3 = 20 }: epochs for task sets of that size
}
KIND_KEYS: dict[str, Spec] = {**TRAIN_KEYS, **RECIPE_KEYS}
EVAL_KEYS: dict[str, Spec] = {
    "n": Spec("int", 1),
    "batch_size": Spec("int", 1),
    "sets": Spec("str_list", choices=("standard", "atlantis")),
    "save_examples": Spec("bool"),
}
# The world a profile's runs live in (STUDY.md "World"; the engine's [world] table). Keys left out take the
# engine's defaults, which are the study's world.
WORLD_KEYS: dict[str, Spec] = {
    "min_population": Spec("int", 0),
    "atlantis_cities": Spec("int", 1),
    "atlantis_center": Spec("float_list", length=2),  # [longitude, latitude] in degrees
    "atlantis_sigma": Spec("float", 0, exclusive_minimum=True),  # degrees
}
PROFILE_SECTIONS: dict[str, dict[str, Spec]] = {
    "world": WORLD_KEYS,
    "model": MODEL_KEYS,
    "train": TRAIN_KEYS,
    "pretrain": KIND_KEYS,
    "finetune": KIND_KEYS,
    "eval": EVAL_KEYS,
}
# What a merged profile must define; everything else falls back to the engine's defaults.
REQUIRED_MODEL = tuple(MODEL_KEYS)
REQUIRED_KIND = ("batch_size", "epochs", "lr")
REQUIRED_EVAL = ("n",)

KINDS = ("pretrain", "finetune")
NORMALISATIONS = ("perfect", "improvement")
EXECUTORS = ("local", "slurm")
CRASH_POLICIES = ("resume", "fail")

TOP_KEYS = ("study", "runner", "app", "profile", "experiment", "task_sets", "family", "heatmap")
STUDY_KEYS = ("tasks", "default_profile", "seeds", "runs", "normalisation", "data_seed", "eval_seed")
TASK_KEYS = ("name", "short")
RUNNER_KEYS = ("gpus", "jobs_per_gpu", "cpu_jobs", "on_worker_crash", "grace_s", "executor", "slurm")
APP_KEYS: dict[str, Spec] = {"bell": Spec("bool")}
SLURM_KEYS = ("partition", "account", "time", "gres", "cpus", "mem", "sbatch", "setup", "poll_s")
PROFILE_KEYS = ("inherit", *PROFILE_SECTIONS)
EXPERIMENT_KEYS = ("name", "kind", "tasks", "parent", "warmup", "seeds", "overrides")
FAMILY_KEYS = ("name", "kind", "sets", "parent", "warmup", "seeds", "overrides")
HEATMAP_KEYS = ("name", "family", "predict_from", "baseline")

# Names become folder names and shell words: keep them boring.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAFE_NAME_RULE = "letters, digits, '.', '_' and '-' only, starting with a letter or digit, no '..'"


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.match(name)) and ".." not in name


# ---------------------------------------------------------------------------------------------------------
# Collecting problems while parsing


@dataclass
class Collector:
    """Where problems are collected, and how to point at a line."""

    file: str
    source: SourceMap
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        where: str | None,
        fld: str | None,
        message: str,
        *,
        table: str = "",
        index: int | None = None,
        key: str | None = None,
        needle: str | None = None,
    ) -> None:
        line = self.source.find(table, index, key, needle)
        problem = Problem(self.file, line, where, fld, message)
        if problem not in self.problems:  # e.g. a family's parent, found once per member
            self.problems.append(problem)

    def unknown_keys(
        self,
        data: Mapping[str, Any],
        allowed: Sequence[str],
        where: str,
        table: str,
        index: int | None = None,
    ) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    where, key, "unknown key" + did_you_mean(key, allowed), table=table, index=index, key=key
                )


def table_of(ctx: Collector, data: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            ctx.add("top level", key, f"missing: the file must have a [{key}] table")
        return {}
    if not isinstance(value, dict):
        ctx.add("top level", key, f"must be a table [{key}]", key=key)
        return {}
    return value


def tables_of(ctx: Collector, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        ctx.add("top level", key, f"must be an array of tables written [[{key}]]", key=key)
        return []
    return value


def seed_list(
    ctx: Collector, value: Any, where: str, fld: str, *, table: str, index: int | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )
    if not ok:
        ctx.add(where, fld, "must be a non-empty list of integers >= 0", table=table, index=index, key=fld)
        return None
    if len(set(value)) != len(value):
        ctx.add(where, fld, f"lists a seed twice: {value}", table=table, index=index, key=fld)
        return None
    return tuple(value)
