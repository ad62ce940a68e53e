"""The engine's task names, read from the engine's own list (`engine/tasks/names.toml`) as a file.

ftui never imports engine code (it would pull in numpy and the task modules, and the engine may one day need
torch to import): it finds the engine package with `importlib.util.find_spec`, which locates a top-level
package without running it, and reads the file the engine builds its task registry from. One truth, so a
registry naming a task the engine does not have ("compas") is refused by `ftui validate`, not by the job.
"""

from __future__ import annotations

import functools
import importlib.util
import tomllib
from pathlib import Path

NAMES_FILE = Path("tasks") / "names.toml"  # inside the engine package


@functools.cache
def engine_task_names() -> tuple[str, ...] | None:
    """The task names the engine implements, in its order; None when no engine is installed beside ftui
    (then task names are not checked here; the engine still checks them when a run starts)."""
    try:
        spec = importlib.util.find_spec("engine")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / NAMES_FILE
        try:
            names = tomllib.loads(path.read_text(encoding="utf-8"))["names"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            continue
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return tuple(names)
    return None
