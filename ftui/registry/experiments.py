"""Task sets, [[experiment]] and [[family]] entries (expanded to experiments), parents and [[heatmap]]s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftui.registry.records import Experiment, HeatmapDef, Study, frozen_map
from ftui.registry.schema import (
    EXPERIMENT_KEYS,
    FAMILY_KEYS,
    HEATMAP_KEYS,
    KIND_KEYS,
    KINDS,
    SAFE_NAME_RULE,
    Collector,
    did_you_mean,
    is_safe_name,
    seed_list,
    tables_of,
)


def _task_set(
    ctx: Collector,
    value: Any,
    lookup: dict[str, str] | None,
    where: str,
    fld: str,
    *,
    table: str,
    index: int | None,
    key: str,
) -> tuple[str, ...] | None:
    """A list of task names or short codes -> engine task names (None if invalid; problems recorded)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        ctx.add(
            where,
            fld,
            f"must be a non-empty list of task names or short codes, got {value!r}",
            table=table,
            index=index,
            key=key,
        )
        return None
    if lookup is None:  # the study's task list is broken: reported there
        return tuple(value)
    names: list[str] = []
    ok = True
    for word in value:
        if word not in lookup:
            canonical = list(dict.fromkeys(lookup.values()))
            close = did_you_mean(word, list(lookup)).split("; ", 1)
            hint = f"; {close[1]}" if len(close) == 2 else ")"
            ctx.add(
                where,
                fld,
                f"unknown task {word!r} (allowed: {', '.join(canonical)} or their short codes" + hint,
                table=table,
                index=index,
                key=key,
                needle=word,
            )
            ok = False
            continue
        name = lookup[word]
        if name in names:
            ctx.add(
                where,
                fld,
                f"task set {value} names task {name!r} twice",
                table=table,
                index=index,
                key=key,
                needle=word,
            )
            ok = False
        names.append(name)
    return tuple(names) if ok else None


def parse_task_sets(
    ctx: Collector, raw: dict[str, Any], lookup: dict[str, str] | None
) -> dict[str, list[tuple[str, ...] | None]]:
    out: dict[str, list[tuple[str, ...] | None]] = {}
    for name, sets in raw.items():
        where = f"task_sets {name!r}"
        if not isinstance(sets, list) or not sets:
            ctx.add(
                where,
                None,
                'must be a non-empty list of task sets, e.g. [["D"], ["D", "T"]]',
                table="task_sets",
                key=name,
            )
            out[name] = []
            continue
        out[name] = [
            _task_set(ctx, s, lookup, where, f"[{i}]", table="task_sets", index=None, key=name)
            for i, s in enumerate(sets)
        ]
    return out


@dataclass
class Declared:
    """The experiments that parsed cleanly, plus what error messages need about every declaration."""

    experiments: list[Experiment] = field(default_factory=list)
    families: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # name -> (where, table, index) of its declaration; a family member points at its family
    origins: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    # names declared with a problem (bad tasks, duplicates): references to them are not reported again
    tainted: set[str] = field(default_factory=set)


def parse_experiments(
    ctx: Collector,
    data: Mapping[str, Any],
    study: Study,
    lookup: dict[str, str] | None,
    task_sets: dict[str, list[tuple[str, ...] | None]],
) -> Declared:
    out = Declared()
    seen: dict[str, str] = {}  # name -> where it was declared

    def add(exp: Experiment, where: str, table: str, index: int, origin_where: str) -> None:
        if exp.name in seen:
            ctx.add(
                where,
                "name",
                f"duplicate experiment name {exp.name!r} (also {seen[exp.name]})",
                table=table,
                index=index,
                key="name",
            )
            out.tainted.add(exp.name)
            return
        seen[exp.name] = where
        out.origins[exp.name] = (origin_where, table, index)
        out.experiments.append(exp)

    for i, raw in enumerate(tables_of(ctx, data, "experiment")):
        name = raw.get("name")
        where = f"experiment {name!r}" if isinstance(name, str) else f"experiment #{i + 1}"
        common = _common_fields(ctx, raw, EXPERIMENT_KEYS, where, "experiment", i, study)
        if common is None:
            if isinstance(name, str):
                out.tainted.add(name)
            continue
        name, kind, parent, warmup, seeds, overrides = common
        tasks: tuple[str, ...] | None
        if "tasks" in raw:
            tasks = _task_set(
                ctx, raw["tasks"], lookup, where, "tasks", table="experiment", index=i, key="tasks"
            )
        elif kind == "pretrain":
            tasks = study.task_names  # pretraining defaults to every task of the study
        else:
            ctx.add(
                where,
                "tasks",
                "missing: a fine-tune needs the tasks it trains on",
                table="experiment",
                index=i,
            )
            tasks = None
        if tasks is None:
            out.tainted.add(name)
        else:
            exp = Experiment(name, None, kind, tasks, parent, warmup, seeds, overrides)
            add(exp, where, "experiment", i, where)

    for i, raw in enumerate(tables_of(ctx, data, "family")):
        name = raw.get("name")
        where = f"family {name!r}" if isinstance(name, str) else f"family #{i + 1}"
        common = _common_fields(ctx, raw, FAMILY_KEYS, where, "family", i, study)
        if common is None:
            continue
        name, kind, parent, warmup, seeds, overrides = common
        if name in out.families:
            ctx.add(where, "name", f"duplicate family name {name!r}", table="family", index=i, key="name")
            continue
        sets = _family_sets(ctx, raw.get("sets"), lookup, task_sets, where, i)
        members: list[str] = []
        for j, tasks in enumerate(sets, start=1):
            member = f"{name}-{j}"
            members.append(member)
            if tasks is None:
                out.tainted.add(member)
            else:
                exp = Experiment(member, name, kind, tasks, parent, warmup, seeds, overrides)
                add(exp, f"{where} ({member})", "family", i, where)
        out.families[name] = tuple(members)
    return out


def _common_fields(
    ctx: Collector,
    raw: dict[str, Any],
    allowed: Sequence[str],
    where: str,
    table: str,
    index: int,
    study: Study,
) -> tuple[str, str, str | None, bool, tuple[int, ...], Mapping[str, Any]] | None:
    """name, kind, parent, warmup, seeds, overrides shared by [[experiment]] and [[family]]."""

    def bad(fld: str, message: str) -> None:
        ctx.add(where, fld, message, table=table, index=index, key=fld)

    ctx.unknown_keys(raw, allowed, where, table, index)
    name = raw.get("name")
    if not isinstance(name, str):
        bad("name", "missing: every entry needs a name")
        return None
    if not is_safe_name(name):
        bad("name", f"unsafe name {name!r}: {SAFE_NAME_RULE} (names become folders and shell words)")
        return None
    kind = raw.get("kind", "finetune")
    if kind not in KINDS:
        bad("kind", f"unknown kind {kind!r}" + did_you_mean(str(kind), KINDS))
        return None
    parent = raw.get("parent")
    if parent is not None and not isinstance(parent, str):
        bad("parent", "must be the name of an experiment")
        return None
    if kind == "finetune" and parent is None:
        bad("parent", "missing: a fine-tune starts from its parent's final checkpoint; name the experiment")
    if kind == "pretrain" and parent is not None:
        bad("parent", 'a pretraining run starts from scratch: remove parent or use kind = "finetune"')
    warmup = raw.get("warmup", False)
    if not isinstance(warmup, bool):
        bad("warmup", f"must be true or false, got {warmup!r}")
        warmup = False
    seeds = seed_list(ctx, raw.get("seeds"), where, "seeds", table=table, index=index) or study.seeds
    overrides_raw = raw.get("overrides", {})
    if not isinstance(overrides_raw, dict):
        bad("overrides", "must be a table of profile keys, e.g. overrides = { lr = 3e-5 }")
        overrides_raw = {}
    overrides: dict[str, Any] = {}
    for key, value in overrides_raw.items():
        spec = KIND_KEYS.get(key)
        if spec is None:
            bad(f"overrides.{key}", "unknown key" + did_you_mean(key, KIND_KEYS))
        elif error := spec.check(value):
            bad(f"overrides.{key}", error)
        else:
            overrides[key] = value
    return name, kind, parent, warmup, seeds, frozen_map(overrides)


def _family_sets(
    ctx: Collector,
    value: Any,
    lookup: dict[str, str] | None,
    task_sets: dict[str, list[tuple[str, ...] | None]],
    where: str,
    index: int,
) -> list[tuple[str, ...] | None]:
    if isinstance(value, str):
        if value not in task_sets:
            ctx.add(
                where,
                "sets",
                f"unknown task set list {value!r}" + did_you_mean(value, task_sets),
                table="family",
                index=index,
                key="sets",
            )
            return []
        return task_sets[value]
    if isinstance(value, list) and value:
        return [
            _task_set(ctx, s, lookup, where, f"sets[{j}]", table="family", index=index, key="sets")
            for j, s in enumerate(value)
        ]
    ctx.add(
        where,
        "sets",
        'must name a [task_sets] entry or list task sets, e.g. [["D", "T"], ["A"]]',
        table="family",
        index=index,
        key="sets",
    )
    return []


def check_parents(ctx: Collector, declared: Declared) -> None:
    experiments = declared.experiments
    by_name = {e.name: e for e in experiments}
    for exp in experiments:
        if exp.parent is None:
            continue
        where, table, index = declared.origins[exp.name]
        parent = by_name.get(exp.parent)
        if parent is None and exp.parent in declared.tainted:
            continue  # the parent's own declaration is already reported
        if parent is None:
            ctx.add(
                where,
                "parent",
                f"unknown experiment {exp.parent!r}" + did_you_mean(exp.parent, by_name),
                table=table,
                index=index,
                key="parent",
            )
            continue
        parent_seeds = set(parent.seeds)  # (a list: 700 seeds made this half a million comparisons)
        missing = [s for s in exp.seeds if s not in parent_seeds]
        if missing:
            ctx.add(
                where,
                "seeds",
                f"seed(s) {missing} have no parent run: {parent.name!r} runs seeds "
                f"{list(parent.seeds)} (a fine-tune starts from the parent of the same seed)",
                table=table,
                index=index,
                key="seeds",
            )
    # Dependency cycles: follow parents; a chain that comes back to itself is a cycle (reported once).
    reported: set[frozenset[str]] = set()
    for exp in experiments:
        chain = [exp.name]
        current = exp
        while current.parent is not None and current.parent in by_name:
            if current.parent in chain:
                cycle = chain[chain.index(current.parent) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first = by_name[cycle[0]]
                    where, table, index = declared.origins[first.name]
                    text = " -> ".join([*cycle, cycle[0]])
                    ctx.add(
                        where, "parent", f"dependency cycle: {text}", table=table, index=index, key="parent"
                    )
                break
            chain.append(current.parent)
            current = by_name[current.parent]


def parse_heatmaps(ctx: Collector, data: Mapping[str, Any], declared: Declared) -> list[HeatmapDef]:
    by_name = {e.name: e for e in declared.experiments}
    families = declared.families
    heatmaps: list[HeatmapDef] = []
    names: set[str] = set()
    for i, raw in enumerate(tables_of(ctx, data, "heatmap")):
        name = raw.get("name")
        where = f"heatmap {name!r}" if isinstance(name, str) else f"heatmap #{i + 1}"

        def bad(fld: str, message: str, needle: str | None = None, i: int = i, where: str = where) -> None:
            ctx.add(where, fld, message, table="heatmap", index=i, key=fld, needle=needle)

        ctx.unknown_keys(raw, HEATMAP_KEYS, where, "heatmap", i)
        if not isinstance(name, str) or not is_safe_name(name):
            bad("name", f"missing or unsafe name: {SAFE_NAME_RULE}")
            continue
        if name in names:
            bad("name", f"duplicate heatmap name {name!r}")
            continue
        names.add(name)
        family = raw.get("family")
        predict_from = raw.get("predict_from")
        baseline = raw.get("baseline")
        ok = True
        if not isinstance(family, str) or family not in families:
            bad("family", f"unknown family {family!r}" + did_you_mean(str(family), families))
            ok = False
        if predict_from is not None and (not isinstance(predict_from, str) or predict_from not in families):
            bad(
                "predict_from", f"unknown family {predict_from!r}" + did_you_mean(str(predict_from), families)
            )
            ok = False
        if isinstance(baseline, str) and baseline in declared.tainted:
            ok = False  # its declaration is already reported
        elif not isinstance(baseline, str) or baseline not in by_name:
            bad("baseline", f"unknown experiment {baseline!r}" + did_you_mean(str(baseline), by_name))
            ok = False
        if not ok:
            continue
        assert isinstance(family, str) and isinstance(baseline, str)
        involved = (*families[family], *(families[predict_from] if predict_from else ()))
        if predict_from is not None and not declared.tainted.intersection(involved):
            singles = {
                by_name[m].tasks[0]
                for m in families[predict_from]
                if m in by_name and len(by_name[m].tasks) == 1
            }
            for member in families[family]:
                exp = by_name.get(member)
                if exp is None:
                    continue
                lacking = [t for t in exp.tasks if t not in singles]
                if lacking:
                    bad(
                        "predict_from",
                        f"family {predict_from!r} cannot predict row {member!r} "
                        f"({'+'.join(exp.tasks)}): it has no single-task run of {', '.join(lacking)} "
                        "(every task of a row must be a single-task row of the source family)",
                    )
                    break
        heatmaps.append(HeatmapDef(name, family, predict_from, baseline))
    return heatmaps
