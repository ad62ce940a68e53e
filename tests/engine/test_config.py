"""config.toml: parsing into dataclasses, and every kind of bad input -> ConfigError naming file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from engine.config import ConfigError, ModelConfig, RunConfig, config_hash, load_config, parse_config
from tests.engine.train_helpers import SMOKE_DIR, tiny_config, write_run

FILE = Path("runs/x/config.toml")


def parse(raw: dict[str, Any]) -> RunConfig:
    return parse_config(raw, FILE)


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        parse(raw)
    return str(e.value)


def test_smoke_config_loads_with_every_field() -> None:
    cfg = load_config(SMOKE_DIR)
    assert cfg.name == "smoke" and cfg.kind == "pretrain"
    assert cfg.model == ModelConfig(n_layer=2, d_model=32, n_head=2, d_mlp=64, max_seq_len=128)
    assert cfg.train.betas == (0.9, 0.999) and cfg.train.device == "cpu"
    assert len(cfg.data.parts) == 7 and cfg.data.parts[0].task == "distance"
    assert cfg.eval.sets == ("standard", "atlantis") and len(cfg.eval.tasks) == 7
    assert cfg.to_dict()["train"]["betas"] == [0.9, 0.999]


def test_defaults_are_the_paper_shape_and_eval_covers_every_task(tmp_path: Path) -> None:
    raw = {
        "name": "p",
        "kind": "pretrain",
        "data": {"parts": [{"task": "distance", "set": "standard", "n": 200}]},
    }
    cfg = parse(raw)
    assert (cfg.model.n_layer, cfg.model.d_model, cfg.model.n_head, cfg.model.d_mlp) == (6, 128, 4, 512)
    assert cfg.eval.tasks == (
        "distance",
        "trianglearea",
        "angle",
        "compass",
        "inside",
        "perimeter",
        "crossing",
    )
    assert cfg.data_root_path(tmp_path) == tmp_path / "../.data"


@pytest.mark.parametrize(
    ("patch", "key", "hint"),
    [
        ({"trian": {}}, "trian", "did you mean 'train'"),
        ({"train": {"bach_size": 4}}, "train.bach_size", "did you mean 'batch_size'"),
        ({"model": {"n_heads": 4}}, "model.n_heads", "did you mean 'n_head'"),
    ],
)
def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path, patch: dict, key: str, hint: str) -> None:
    msg = error_of(tiny_config(tmp_path, **patch))
    assert str(FILE) in msg and f"{key}: unknown key" in msg and hint in msg and "allowed:" in msg


@pytest.mark.parametrize(
    ("patch", "key", "allowed"),
    [
        ({"train": {"lr": "fast"}}, "train.lr", "expected a number > 0.0"),
        ({"train": {"lr": 0}}, "train.lr", "expected a number > 0.0"),
        ({"train": {"batch_size": 0}}, "train.batch_size", "expected an integer >= 1"),
        ({"train": {"batch_size": 2.5}}, "train.batch_size", "expected an integer"),
        ({"train": {"epochs": True}}, "train.epochs", "expected an integer"),
        ({"train": {"device": "tpu"}}, "train.device", "allowed: 'auto', 'cpu', 'cuda'"),
        ({"train": {"compile": "yes"}}, "train.compile", "allowed: 'auto', 'on', 'off'"),
        ({"train": {"betas": [0.9]}}, "train.betas", "two numbers"),
        ({"train": {"betas": [0.9, 1.0]}}, "train.betas[1]", "< 1.0"),
        ({"model": {"n_head": 3}}, "model.n_head", "must divide model.d_model (32)"),
        ({"kind": "distill"}, "kind", "allowed: 'pretrain', 'finetune'"),
        ({"kind": "finetune"}, "parent", 'required when kind = "finetune"'),
        ({"parent": "../pt1/final.pt"}, "parent", 'only allowed when kind = "finetune"'),
        ({"eval": {"sets": ["standard", "mars"]}}, "eval.sets[1]", "allowed: 'standard', 'atlantis'"),
        ({"eval": {"save_examples": 1}}, "eval.save_examples", "true or false"),
        ({"tasks": ["distance", "distance"]}, "tasks", "unique"),
        ({"train": {"batch_size": 1000}}, "train.batch_size", "<= the rows of data.parts (160)"),
        ({"data": {"parts": []}}, "data.parts", "at least 1"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(
    tmp_path: Path, patch: dict, key: str, allowed: str
) -> None:
    msg = error_of(tiny_config(tmp_path, **patch))
    assert msg.startswith(f"{FILE}: {key}: "), msg
    assert allowed in msg, msg


def test_bad_task_lists_the_registry(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, data={"parts": [{"task": "dist", "set": "standard", "n": 10}]})
    msg = error_of(raw)
    assert "data.parts[0].task: 'dist' is not allowed" in msg and "'distance'" in msg and "'crossing'" in msg
    raw = tiny_config(tmp_path, data={"parts": [{"task": "distance", "n": 10}]})
    assert "data.parts[0].set: missing (required)" in error_of(raw)


def test_missing_required_and_broken_toml(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path)
    del raw["kind"]
    assert "kind: missing (required)" in error_of(raw)
    (tmp_path / "config.toml").write_text("name = 'x'\n[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nowhere")


def test_config_hash_is_canonical(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path)
    write_run(tmp_path / "a", raw)
    with open(tmp_path / "a" / "config.toml", "rb") as f:
        reread = tomllib.load(f)
    assert config_hash(reread) == config_hash(dict(reversed(list(raw.items()))))
    changed = tiny_config(tmp_path, train={"lr": 1e-4})
    assert config_hash(changed) != config_hash(raw) and len(config_hash(raw)) == 64
