"""Names of Python objects read from stored data, resolved only among modules this process already imported.

Stored data (a checkpoint, a bundle, a shared store) may come from someone else: a `module:Class` it names must
never be imported, since importing runs the module's code. What the process's own code imported (the agents
module given to `--agents`, the models it uses) is what may be looked up.
"""

from __future__ import annotations

import sys
from typing import Any


def loaded(module: str, qualname: str) -> Any | None:
    """`module.qualname` if `module` is already imported and has it, else None. Never imports anything."""
    target: Any = sys.modules.get(module)
    if target is None or not qualname:
        return None
    for part in qualname.split("."):
        if part.startswith("__"):
            return None  # dunder walks (`__class__.__base__...`) reach far beyond what a module defines
        target = getattr(target, part, None)
        if target is None:
            return None
    return target
