"""Figures people keep (matplotlib): :func:`plot_session`, :func:`plot_vad`.

The live view is a canvas widget instead: :class:`voicelive_nb.widgets.live.LiveView`.
"""

from __future__ import annotations

from .figures import SessionFigure, plot_session, plot_vad

__all__ = ["SessionFigure", "plot_session", "plot_vad"]
