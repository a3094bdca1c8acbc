"""What the lab's entry points accept, turned into what they use (shared by replay, sweep, widget).

Public helpers rather than privates imported across modules: ``replay``, ``sweep`` and
``VadLab`` accept the same forms of configuration and truth, and this is the one place that
says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..protocol.config import SessionConfig
from .truth import Truth, load_truth

__all__ = ["as_config", "as_truth", "optional_pandas"]


def as_config(config: SessionConfig | Mapping[str, Any] | None) -> SessionConfig:
    """A :class:`SessionConfig` from one, a dict of its fields, or ``None`` (server VAD defaults)."""
    if config is None:
        return SessionConfig.server_vad()
    if isinstance(config, SessionConfig):
        return config
    return SessionConfig.from_dict(dict(config))


def as_truth(truth: Truth | str | Path | Sequence[Sequence[float]] | None) -> Truth | None:
    """A :class:`Truth` from one, a label file, or ``(start_s, end_s)`` spans; ``None`` stays ``None``."""
    if truth is None or isinstance(truth, Truth):
        return truth
    if isinstance(truth, (str, Path)):
        return load_truth(truth)
    return Truth.from_spans(truth)


def optional_pandas() -> Any:
    """pandas if it is installed (tables are lists of dicts without it), else None."""
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        return None
    return pandas
