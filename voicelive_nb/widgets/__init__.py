"""ipywidgets for notebooks: the session control panel, the generated config form, transcript and log.

::

    from voicelive_nb.widgets import panel
    panel(session)                 # Start/Stop, devices, connection, config form, transcript, event log

Needs the ``notebook`` extra (ipywidgets). The live canvas view (``voicelive_nb.widgets.live``) is
imported only when a panel is built, and the panel works without it.
"""

from __future__ import annotations

from typing import Any

from .forms import ConfigForm
from .log import EventLog, TranscriptView
from .panel import SessionPanel

__all__ = ["ConfigForm", "EventLog", "SessionPanel", "TranscriptView", "panel"]


# Defined after ``from .panel import ...`` on purpose: the function, not the submodule of the
# same name, is what ``voicelive_nb.widgets.panel`` names (``from voicelive_nb.widgets.panel
# import SessionPanel`` still finds the module in sys.modules).
def panel(session: Any, **options: Any) -> SessionPanel:
    """The control panel of a :class:`~voicelive_nb.notebook_session.NotebookSession`."""
    return SessionPanel(session, **options)
