"""Old import paths of modules that moved: they forward to the new module, with a warning.

A moved module keeps a stub at its old path whose module ``__getattr__`` (PEP 562) calls
:func:`forward`: ``from voicelive_nb.emulator.tts import synthesize`` still works,
and warns with a :class:`DeprecationWarning` that names the new path and the release that
removes the old one (:data:`REMOVED_IN`). The warning points at the importing line, so
Jupyter shows it under the cell that needs the change.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

__all__ = ["REMOVED_IN", "forward", "moved_message"]

#: The release that removes the old paths (the first after 0.1, where they moved).
REMOVED_IN = "0.2"


def moved_message(old: str, new: str, name: str) -> str:
    return (
        f"{old} moved to {new}: import {name} from {new} "
        f"(the old path is removed in voicelive_nb {REMOVED_IN})"
    )


def forward(old: str, target: ModuleType, name: str) -> Any:
    """What the stub left at ``old`` returns from its module ``__getattr__`` for one of its moved
    names: ``target``'s attribute, with a :class:`DeprecationWarning` pointing at the importing line.

    The stub reads::

        def __getattr__(name: str) -> Any:
            if name not in MOVED_NAMES:
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
            return forward(__name__, new_module, name)
    """
    # stacklevel 3: past this function and the stub's __getattr__, to the import
    warnings.warn(moved_message(old, target.__name__, name), DeprecationWarning, stacklevel=3)
    return getattr(target, name)
