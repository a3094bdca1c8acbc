"""The form's *client echo reference* checkbox (issue #17).

It sets exactly what ``SessionConfig.with_client_echo_reference()`` sets; the generic echo-
cancellation fields and the checkbox follow each other; while a connection uses the other
reference the change is held (a note beside the checkbox, ``on_change`` keeps the connection's
echo cancellation) and the next Start delivers it. End to end with a SessionPanel on the emulator:
the live connection gets no ``session.update`` that changes the reference and no error, and the
next Start connects with the client reference (URL feature flag, 2 channels).

Headless: a trait set here is what a browser edit does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from waiting import wait_until

from voicelive_nb.emulator.server import BackgroundEmulator
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.session import Session
from voicelive_nb.widgets.forms import ECHO_PATH, ConfigForm
from voicelive_nb.widgets.panel import SessionPanel

BASE = SessionConfig.server_vad()
SERVER_EC = {"type": "server_echo_cancellation"}
CLIENT_EC = {"type": "server_echo_cancellation", "reference_source": "client", "channels": 2}


class Calls:
    """on_change recorder: a list plus an Event set on each call (no sleeps as synchronisation)."""

    def __init__(self) -> None:
        self.configs: list[SessionConfig] = []
        self.event = threading.Event()

    def __call__(self, config: SessionConfig) -> None:
        self.configs.append(config)
        self.event.set()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def form(calls: Calls) -> Iterator[ConfigForm]:
    f = ConfigForm(BASE, on_change=calls, debounce_s=0)
    yield f
    f.close()


def test_the_checkbox_sets_exactly_the_client_reference_pair(form: ConfigForm, calls: Calls) -> None:
    box = form.echo_reference
    assert box is not None and box.value is False and box.description == "client echo reference"
    assert box in form._groups[ECHO_PATH].children[1].children  # inside the echo-cancellation group
    box.value = True
    assert calls.configs[-1] == BASE.with_client_echo_reference()
    assert calls.configs[-1].to_dict()[ECHO_PATH] == CLIENT_EC
    assert calls.configs[-1].input_channels == 2
    # the generated group shows it too
    assert form.widget(f"{ECHO_PATH}.reference_source").value == "client"
    assert form.widget(f"{ECHO_PATH}.channels").value == "2"
    assert "channel 1 what the speaker played" in (form.echo_reference_note.value or "")
    box.value = False
    assert calls.configs[-1] == BASE.with_client_echo_reference(False)
    assert calls.configs[-1].to_dict()[ECHO_PATH] == SERVER_EC
    assert not calls.configs[-1].client_echo_reference and form.errors == {}
    assert form.echo_reference_note.value == ""


def test_the_checkbox_follows_the_config_without_sending(form: ConfigForm, calls: Calls) -> None:
    form.set_config(BASE.with_client_echo_reference())
    assert form.echo_reference.value is True and calls.configs == []
    form.set_config(BASE)
    assert form.echo_reference.value is False and calls.configs == []


async def test_the_checked_config_connects_with_the_feature_flag_and_two_channels(
    form: ConfigForm, calls: Calls
) -> None:
    form.echo_reference.value = True
    async with Session(calls.configs[-1], emulator=True, dotenv=False) as s:
        assert s.url is not None and "client_ec_reference%3Atrue" in s.url
        assert s.effective_session()[ECHO_PATH] == CLIENT_EC


def test_a_live_connection_holds_the_change_for_the_next_start(form: ConfigForm, calls: Calls) -> None:
    form.set_effective({**BASE.to_dict(), ECHO_PATH: SERVER_EC})  # the service reports the server reference
    form.echo_reference.value = True
    sent = calls.configs[-1]
    assert not sent.client_echo_reference and sent.to_dict()[ECHO_PATH] == SERVER_EC  # nothing to refuse
    assert form.echo_reference.value is True and form.config.client_echo_reference  # what the form shows
    note = form.echo_reference_note.value
    assert "applies at the next Start" in note and "fixes the echo reference" in note
    assert "applies at the next Start" in form.message.value
    # other changes still go live, still without the reference change
    form.widget("turn_detection.threshold").value = 0.7
    assert calls.configs[-1].value_at("turn_detection.threshold") == 0.7
    assert not calls.configs[-1].client_echo_reference
    # the session's echo of the update does not undo the held change
    form.set_config(calls.configs[-1])
    assert form.echo_reference.value is True and "next Start" in form.echo_reference_note.value
    # Start: the whole form, with the client reference
    assert form.flush() is True
    assert calls.configs[-1].client_echo_reference
    assert calls.configs[-1].value_at("turn_detection.threshold") == 0.7
    assert form.echo_reference_note.value != note
    # the new connection reports the client reference: nothing held any more
    form.set_effective({**BASE.to_dict(), ECHO_PATH: CLIENT_EC})
    assert form.flush() is False
    # toggling back while that connection lives is held the other way
    form.echo_reference.value = False
    assert calls.configs[-1].client_echo_reference and not form.config.client_echo_reference
    assert "off applies at the next Start" in form.echo_reference_note.value
    # and toggling back again before any Start releases it
    form.echo_reference.value = True
    assert calls.configs[-1].client_echo_reference and "next Start" not in form.echo_reference_note.value
    assert form.flush() is False


def test_the_panel_sends_nothing_wrong_and_the_next_start_has_the_reference(
    emulator: BackgroundEmulator,
) -> None:
    session = NotebookSession(
        BASE, endpoint=emulator.url, api_key="k", mic=False, speaker=False, dotenv=False
    )
    panel = SessionPanel(session, show_live=False, debounce_s=0.05)
    try:
        form = panel.form
        assert form is not None and form.echo_reference is not None
        panel.start_button.click()
        wait_until(lambda: panel.phase == "connected", what="connected")
        wait_until(
            lambda: form._live_reference is False, what="the form heard the service's echo cancellation"
        )
        live = session.session
        assert live is not None
        sent_before = len(live.sent_events())
        form.echo_reference.value = True
        wait_until(lambda: not form.pending, what="the debounced delivery")
        form.widget("turn_detection.threshold").value = 0.66  # an update that does go out
        wait_until(
            lambda: any(
                e.type == "session.updated" and e.session.get("turn_detection", {}).get("threshold") == 0.66
                for e in session.events
            ),
            what="the threshold applied live",
        )
        updates = [e for _t, e in live.sent_events()[sent_before:] if e.get("type") == "session.update"]
        assert updates and all(ECHO_PATH not in u.get("session", {}) for u in updates), updates
        assert live.effective_session()[ECHO_PATH].get("reference_source", "server") == "server"
        assert panel.errors == [], panel.errors
        assert "applies at the next Start" in form.echo_reference_note.value
        assert not session.config.client_echo_reference  # kept out of the live session's config

        panel.stop_button.click()
        wait_until(lambda: panel.phase == "idle" and not panel.start_button.disabled, what="stopped")
        panel.start_button.click()  # the held change goes with this Start
        wait_until(lambda: panel.phase == "connected", what="connected again")
        nxt = session.session
        assert nxt is not None and nxt is not live
        assert nxt.url is not None and "client_ec_reference%3Atrue" in nxt.url
        assert nxt.effective_session()[ECHO_PATH] == CLIENT_EC
        assert session.config.value_at("turn_detection.threshold") == 0.66
        wait_until(lambda: "next Start" not in form.echo_reference_note.value, what="the note cleared")
        assert panel.errors == [], panel.errors
    finally:
        session.stop()
        panel.close()
