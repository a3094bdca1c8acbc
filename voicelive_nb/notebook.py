"""The notebook entry point: :class:`NotebookSession` with its panel and figures.

``voicelive_nb.NotebookSession`` is this class: the engine-thread session of
:mod:`voicelive_nb.notebook_session` plus ``ui()`` (the control panel) and ``plot()``
(the session timeline figure), which live in the presentation layer.
"""

from __future__ import annotations

from typing import Any

from .notebook_session import NotebookSession as _BaseNotebookSession


class NotebookSession(_BaseNotebookSession):
    """A live Voice Live session for notebooks; see :mod:`voicelive_nb.notebook_session`."""

    def ui(self, **options: Any) -> Any:
        """The control panel (ipywidgets): Start/Stop, devices, config form, live view, transcript, log."""
        from .widgets.panel import SessionPanel

        return SessionPanel(self, **options)

    def plot(self, **options: Any) -> Any:
        """A matplotlib figure of the session: waveform, VAD spans, responses, barge-ins, latency."""
        from .plots.figures import plot_session

        return plot_session(self, **options)


__all__ = ["NotebookSession"]
