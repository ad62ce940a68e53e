"""[profile.NAME] tables: per-section key checks, inheritance, and completeness of every merged profile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ftui.registry.records import Experiment, Profile, frozen_map
from ftui.registry.schema import (
    KINDS,
    PROFILE_KEYS,
    PROFILE_SECTIONS,
    REQUIRED_EVAL,
    REQUIRED_KIND,
    REQUIRED_MODEL,
    SAFE_NAME_RULE,
    Collector,
    Spec,
    did_you_mean,
    is_safe_name,
)


def parse_profiles(ctx: Collector, raw: dict[str, Any]) -> dict[str, Profile]:
    own: dict[str, dict[str, Any]] = {}
    flawed: set[str] = set()  # profiles with a bad key or value: "missing ..." would only repeat it
    for name, body in raw.items():
        before = len(ctx.problems)
        where = f"profile {name!r}"
        table = f"profile.{name}"
        if not is_safe_name(name):
            ctx.add(where, None, f"bad profile name: {SAFE_NAME_RULE}", table=table)
            continue
        if not isinstance(body, dict):
            ctx.add(where, None, "must be a table [profile.NAME]", table="profile", key=name)
            continue
        ctx.unknown_keys(body, PROFILE_KEYS, where, table)
        sections: dict[str, Any] = {"inherit": body.get("inherit")}
        for section, specs in PROFILE_SECTIONS.items():
            values = body.get(section, {})
            if not isinstance(values, dict):
                ctx.add(where, section, f"must be a table [{table}.{section}]", table=table, key=section)
                values = {}
            sections[section] = _checked_section(ctx, values, specs, where, section, f"{table}.{section}")
        own[name] = sections
        if len(ctx.problems) > before:
            flawed.add(name)

    profiles: dict[str, Profile] = {}

    def build(name: str, chain: tuple[str, ...]) -> Profile | None:
        if name in profiles:
            return profiles[name]
        body = own[name]
        parent_name = body["inherit"]
        layers: dict[str, dict[str, Any]] = {
            s: {} for s in ("world", "model", "pretrain", "finetune", "eval")
        }
        if parent_name is not None:
            where = f"profile {name!r}"
            if not isinstance(parent_name, str) or parent_name not in own:
                ctx.add(
                    where,
                    "inherit",
                    f"unknown profile {parent_name!r}" + did_you_mean(str(parent_name), own),
                    table=f"profile.{name}",
                    key="inherit",
                )
                return None
            if parent_name in chain:
                cycle = " -> ".join((*chain, name, parent_name))
                ctx.add(
                    where, "inherit", f"inheritance cycle: {cycle}", table=f"profile.{name}", key="inherit"
                )
                return None
            parent = build(parent_name, (*chain, name))
            if parent is None:
                return None
            layers = {
                "world": dict(parent.world),
                "model": dict(parent.model),
                "pretrain": dict(parent.pretrain),
                "finetune": dict(parent.finetune),
                "eval": dict(parent.eval),
            }
        # Layering: the parent's result, then this profile's shared [train], then its own kind section.
        layers["world"].update(body["world"])
        layers["model"].update(body["model"])
        layers["eval"].update(body["eval"])
        for kind in KINDS:
            layers[kind].update(body["train"])
            layers[kind].update(body[kind])
        profile = Profile(
            name=name,
            inherit=parent_name,
            model=frozen_map(layers["model"]),
            pretrain=frozen_map(layers["pretrain"]),
            finetune=frozen_map(layers["finetune"]),
            eval=frozen_map(layers["eval"]),
            world=frozen_map(layers["world"]),
        )
        profiles[name] = profile
        return profile

    for name in own:
        build(name, ())
    for profile in profiles.values():
        lineage = {profile.name}
        parent = profile.inherit
        while parent is not None and parent not in lineage:
            lineage.add(parent)
            parent = own[parent]["inherit"] if parent in own else None
        if not lineage & flawed:
            _check_complete(ctx, profile)
    return profiles


def _checked_section(
    ctx: Collector, values: dict[str, Any], specs: Mapping[str, Spec], where: str, section: str, table: str
) -> dict[str, Any]:
    """The valid keys of one profile section (problems recorded for the others)."""
    good: dict[str, Any] = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            ctx.add(where, f"{section}.{key}", "unknown key" + did_you_mean(key, specs), table=table, key=key)
            continue
        error = spec.check(value)
        if error:
            ctx.add(where, f"{section}.{key}", error, table=table, key=key)
            continue
        good[key] = value
    return good


def _check_complete(ctx: Collector, profile: Profile) -> None:
    where = f"profile {profile.name!r}"
    table = f"profile.{profile.name}"
    missing = [f"model.{k}" for k in REQUIRED_MODEL if k not in profile.model]
    for kind in KINDS:
        section = profile.kind(kind)
        missing += [f"{kind}.{k}" for k in REQUIRED_KIND if k not in section]
        if section.get("standard_rows", 0) + section.get("atlantis_rows", 0) <= 0:
            ctx.add(
                where,
                f"{kind}.standard_rows",
                "no training rows: set standard_rows and/or atlantis_rows > 0",
                table=f"{table}.{kind}",
            )
    missing += [f"eval.{k}" for k in REQUIRED_EVAL if k not in profile.eval]
    if missing:
        ctx.add(
            where,
            None,
            f"missing {', '.join(missing)} (give them here or in the profile it inherits)",
            table=table,
        )
    d_model, n_head = profile.model.get("d_model"), profile.model.get("n_head")
    if isinstance(d_model, int) and isinstance(n_head, int) and n_head:
        # The engine's RoPE rotates pairs of channels, so each head needs an even width.
        if d_model % n_head or (d_model // n_head) % 2:
            ctx.add(
                where,
                "model.n_head",
                f"must divide d_model ({d_model}) into heads of even width, got {n_head}",
                table=f"{table}.model",
                key="n_head",
            )


def check_profiles_against_experiments(
    ctx: Collector, profiles: Mapping[str, Profile], experiments: Sequence[Experiment], n_study_tasks: int
) -> None:
    """Checks that need both: warm-up rows exist where used, and every run has at least one batch of rows."""
    for profile in profiles.values():
        where = f"profile {profile.name!r}"
        warm_users: dict[str, list[str]] = {kind: [] for kind in KINDS}
        short: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for exp in experiments:
            section = {**profile.kind(exp.kind), **exp.overrides}
            if exp.warmup and section.get("warmup_rows", 0) <= 0:
                warm_users[exp.kind].append(exp.name)
            rows = len(exp.tasks) * (section.get("standard_rows", 0) + section.get("atlantis_rows", 0))
            if exp.warmup:
                rows += n_study_tasks * section.get("warmup_rows", 0)
            if isinstance(section.get("batch_size"), int) and rows < section["batch_size"]:
                short[exp.kind].append(f"{exp.name} ({rows})")
        for kind in KINDS:
            table = f"profile.{profile.name}.{kind}"
            if warm_users[kind]:
                ctx.add(
                    where,
                    f"{kind}.warmup_rows",
                    f"must be > 0: experiments with warmup = true use it ({_few(warm_users[kind])})",
                    table=table,
                    key="warmup_rows",
                )
            if short[kind]:
                ctx.add(
                    where,
                    f"{kind}.batch_size",
                    f"larger than the training rows of {_few(short[kind])}: lower it or add rows",
                    table=table,
                    key="batch_size",
                )


def _few(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
