"""SessionPanel against a real emulator: Start/Stop, light, transcript, log, two-way form, errors, secrets.

Headless (no browser): ``button.click()`` runs the callback as a frontend click would; the
engine thread pushes widget state through the panel's one session listener.
"""

from __future__ import annotations

import html
import json
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as W
import pytest
from waiting import wait_until

import voicelive_nb.widgets as vw
from voicelive_nb.emulator.server import BackgroundEmulator, Faults, start_in_thread
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.widgets.panel import COLORS, SessionPanel

SECRET = "sk-SECRET-0123456789abcdef0123456789"


@pytest.fixture
def make_panel(emulator: BackgroundEmulator) -> Iterator[Callable[..., tuple[NotebookSession, SessionPanel]]]:
    made: list[tuple[NotebookSession, SessionPanel]] = []

    def make(**kw: Any) -> tuple[NotebookSession, SessionPanel]:
        options = {"show_live": False, "debounce_s": 0.05, **kw.pop("panel", {})}
        session = NotebookSession(
            kw.pop("config", SessionConfig.server_vad()),
            endpoint=kw.pop("endpoint", emulator.url),
            api_key=kw.pop("api_key", "k"),
            mic=kw.pop("mic", False),
            speaker=False,
            dotenv=False,
            **kw,
        )
        panel = SessionPanel(session, **options)
        made.append((session, panel))
        return session, panel

    yield make
    for session, panel in made:
        session.stop()
        panel.close()


def click_start(panel: SessionPanel) -> None:
    assert not panel.start_button.disabled
    panel.start_button.click()


def test_start_speak_stop(make_panel: Any, question_wav: Path) -> None:
    session, panel = make_panel()
    assert panel.phase == "idle" and COLORS["idle"] in panel.light.value
    assert panel.stop_button.disabled and not panel.start_button.disabled

    click_start(panel)
    wait_until(lambda: panel.phase == "connected" and "connected" in panel.status.value, what="green light")
    assert COLORS["connected"] in panel.light.value
    assert panel.start_button.disabled and not panel.stop_button.disabled

    session.speak(question_wav, pace="fast")
    wait_until(
        lambda: any(line.type == "response.done" for line in panel.event_log.lines), what="response.done"
    )
    assistant = [e.text for e in session.transcript if e.role == "assistant" and e.final]
    assert assistant
    wait_until(lambda: html.escape(assistant[-1]) in panel.transcript.value, what="assistant text")
    assert "vl-user" in panel.transcript.value
    # audio deltas are hidden by default and shown on request
    assert not any(line.type == "response.audio.delta" for line in panel.event_log.lines)
    panel.event_log.hide_deltas.value = False
    assert any(line.type == "response.audio.delta" for line in panel.event_log.lines)
    panel.event_log.filter.value = "speech_"
    assert {line.type for line in panel.event_log.lines} == {
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    }

    panel.stop_button.click()
    wait_until(
        lambda: panel.phase == "idle" and "stopped" in panel.status.value and not panel.start_button.disabled,
        what="grey light",
    )
    assert COLORS["idle"] in panel.light.value
    wait_until(lambda: panel.stop_button.disabled, what="stop disabled")
    assert panel.errors == []


def test_the_form_is_two_way_without_loops(make_panel: Any) -> None:
    session, panel = make_panel()
    form = panel.form
    assert form is not None
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")

    form.widget("turn_detection.threshold").value = 0.61

    def threshold_acknowledged() -> bool:
        return any(
            e.type == "session.updated" and e.session.get("turn_detection", {}).get("threshold") == 0.61
            for e in session.events
        )

    wait_until(threshold_acknowledged, what="session.updated with threshold 0.61")
    assert session.config.value_at("turn_detection.threshold") == 0.61

    # a change from a cell reaches the form; set_config schedules nothing (no echo update)
    updates_before = sum(e.type == "session.updated" for e in session.events)
    session.update(instructions="Be brief.", wait=False)
    wait_until(lambda: form.widget("instructions").value == "Be brief.", what="form follows the session")
    assert not form.pending
    assert form.config is session.config
    wait_until(lambda: sum(e.type == "session.updated" for e in session.events) == updates_before + 1)
    assert form.widget("turn_detection.threshold").value == 0.61
    assert panel.errors == []


def test_config_changes_while_stopped_apply_at_the_next_start(make_panel: Any) -> None:
    session, panel = make_panel(panel={"debounce_s": 30})
    panel.form.widget("turn_detection.silence_duration_ms").value = 700
    assert session.config.value_at("turn_detection.silence_duration_ms") == 500  # still debouncing
    click_start(panel)  # Start flushes the form first
    wait_until(lambda: panel.phase == "connected")
    live = session.session
    assert live is not None
    assert live.effective_session()["turn_detection"]["silence_duration_ms"] == 700


def test_an_update_the_session_cannot_express_is_shown(make_panel: Any) -> None:
    session, panel = make_panel()
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    panel.form.widget("input_audio_transcription").value = "(not set)"  # session.update cannot unset
    wait_until(lambda: any("cannot unset input_audio_transcription" in e for e in panel.errors))
    assert "cannot unset" in panel.error_area.value
    # the form goes back to what the session really has
    wait_until(lambda: panel.form.widget("input_audio_transcription").value == "azure-speech")
    assert panel.form.config.to_dict() == session.config.to_dict()


def test_connection_loss_shows_code_and_reason() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.5, close_code=1011, close_reason="maintenance")
    )
    session = NotebookSession(endpoint=emu.url, api_key="k", mic=False, speaker=False, dotenv=False)
    panel = SessionPanel(session, show_live=False)
    try:
        click_start(panel)
        wait_until(lambda: "1011" in panel.error_area.value and "maintenance" in panel.error_area.value)
        assert panel.phase == "failed" and COLORS["failed"] in panel.light.value
        assert "failed: connection lost: 1011" in panel.status.value
        wait_until(lambda: not session.running and panel.stop_button.disabled, what="run ended")
        assert not panel.start_button.disabled  # can start again
        panel.clear_errors_button.click()
        assert panel.error_area.value == "" and panel.errors == []
    finally:
        session.stop()
        panel.close()
        emu.stop()


def test_a_callback_error_is_shown_not_swallowed(make_panel: Any) -> None:
    session, panel = make_panel(mic="no-such-device")
    assert panel.mic_picker.value == "no-such-device"
    panel.start_button.click()
    assert "start failed: AudioDeviceUnavailable" in panel.error_area.value
    assert "microphone" in panel.error_area.value
    assert panel.phase == "idle" and not session.running
    # picking "none" fixes it for the next start
    panel.mic_picker.value = "none"
    assert session.mic_spec is False
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")


def test_device_pickers_follow_audio_availability(make_panel: Any) -> None:
    from voicelive_nb.audio.device import audio_available

    session, panel = make_panel()
    available, reason = audio_available()
    for picker in (panel.mic_picker, panel.speaker_picker):
        assert picker.options[:2] == ("system default", "none")
        assert picker.disabled == (not available)
    if not available:
        assert html.escape(reason) in panel.device_note.value
    assert panel.mic_picker.value == "none"  # mic=False
    panel.speaker_picker.value = "system default"
    assert session.speaker_spec == "auto"


def test_connection_box_shows_the_endpoint_or_the_emulator(
    make_panel: Any, emulator: BackgroundEmulator
) -> None:
    _session, panel = make_panel(api_key=SECRET)
    assert emulator.url in panel.connection.value
    assert f"sk…89 ({len(SECRET)} chars)" in panel.connection.value
    builtin = NotebookSession(mic=False, speaker=False, dotenv=False, emulator=True)
    emu_panel = SessionPanel(builtin, show_live=False, show_config=False)
    try:
        assert "built-in emulator" in emu_panel.connection.value
        assert emu_panel.form is None
    finally:
        emu_panel.close()


def test_panel_convenience_and_display() -> None:
    session = NotebookSession(mic=False, speaker=False, dotenv=False, emulator=True)
    panel = vw.panel(session, show_live=False)
    try:
        assert isinstance(panel, SessionPanel)
        bundle = panel._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id
    finally:
        panel.close()


def _reachable(root: Any) -> list[Any]:
    """Every widget reachable from ``root`` via children and widget-valued traits (independent walk)."""
    seen: dict[str, Any] = {}
    stack = [root]
    while stack:
        widget = stack.pop()
        if not isinstance(widget, W.Widget) or widget.model_id in seen:
            continue
        seen[widget.model_id] = widget
        for name in widget.trait_names():
            value = getattr(widget, name, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in values if isinstance(v, W.Widget))
    return list(seen.values())


def _assert_no_secret(panel: SessionPanel) -> int:
    widgets = _reachable(panel)
    for widget in widgets:
        state = widget.get_state()
        text = json.dumps(state, default=repr)
        assert SECRET not in text, f"secret in {type(widget).__name__} state"
        assert SECRET[6:20] not in text
    return len(widgets)


def test_no_widget_state_holds_the_api_key(make_panel: Any, question_wav: Path) -> None:
    session, panel = make_panel(api_key=SECRET)
    assert panel.form is not None  # build the lazy form: scan it too
    assert _assert_no_secret(panel) > 300
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    session.speak(question_wav, pace="fast")
    wait_until(lambda: any(line.type == "response.done" for line in panel.event_log.lines))
    panel.form.export_button.click()
    assert _assert_no_secret(panel) > 300
    panel.stop_button.click()
    wait_until(lambda: panel.phase == "idle" and not panel.start_button.disabled)
    _assert_no_secret(panel)


def test_a_rejected_key_shows_an_error_without_the_key() -> None:
    emu = start_in_thread(pace="fast", api_key="the-right-key")
    session = NotebookSession(endpoint=emu.url, api_key=SECRET, mic=False, speaker=False, dotenv=False)
    panel = SessionPanel(session, show_live=False)
    try:
        click_start(panel)
        wait_until(lambda: panel.phase == "failed" and panel.errors, what="authentication failure")
        assert "401" in panel.error_area.value or "auth" in panel.error_area.value.lower()
        _assert_no_secret(panel)
    finally:
        session.stop()
        panel.close()
        emu.stop()


def test_live_view_slot(make_panel: Any) -> None:
    _session, panel = make_panel(panel={"show_live": True})
    (child,) = panel.live_slot.children
    if panel.live_view is not None:
        assert child.children == (panel.window_picker, panel.live_view)
        assert 20 <= panel.live_view.window_s <= 30  # a whole turn fits by default
        panel.window_picker.value = 60.0
        assert panel.live_view.window_s == 60.0 and panel.live_view.monitor.window_s == 60.0
    else:  # the live view module is missing or failed: said so, not hidden
        assert "live view" in child.value


def test_the_form_is_built_when_its_tab_opens(make_panel: Any) -> None:
    session, panel = make_panel()
    assert panel._form is None  # not sent to the browser before anyone looks at it
    panel.tabs.selected_index = list(panel.tabs.titles).index("Configuration")
    form = panel._form
    assert form is not None and panel.form is form
    assert form.config is session.config
    assert panel.errors == []


def test_close_detaches_the_listener(make_panel: Any) -> None:
    session, panel = make_panel()
    assert panel._listener in session._listeners
    panel.close()
    assert panel._listener not in session._listeners


# ---------------------------------------------------------------------------------------------
# the transcript and the event log on their own (fed like the pump feeds them)
# ---------------------------------------------------------------------------------------------


class _History:
    """The two views a NotebookSession gives the log widgets: ``.session.timed_events()`` and
    ``.transcript``, over a bounded history like the real Session's."""

    def __init__(self, max_events: int = 10_000) -> None:
        from collections import deque

        self._events: deque[tuple[float, Any]] = deque(maxlen=max_events)
        self.transcript: list[Any] = []
        self.session = self

    def timed_events(self) -> list[tuple[float, Any]]:
        return list(self._events)

    def receive(self, stamp: float, wire: dict[str, Any]) -> None:
        from voicelive_nb.protocol.codec import decode_server_event

        self._events.append((stamp, decode_server_event(json.dumps(wire))))


def test_event_log_is_bounded_incremental_and_marks_errors() -> None:
    from voicelive_nb.widgets.log import EventLog

    history = _History(max_events=50)
    log = EventLog(max_lines=20)
    try:
        for i in range(30):
            history.receive(
                100.0 + i,
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": i, "item_id": f"i{i}"},
            )
        history.receive(
            131.0,
            {"type": "error", "error": {"type": "invalid_request_error", "code": "bad", "message": "<no>"}},
        )
        log.update_from(history)
        lines = log.lines
        assert len(lines) == 20 and lines[0].summary == "at 11 ms"
        assert lines[-1].type == "error" and lines[-1].error and lines[-1].t == pytest.approx(31.0)
        labels = [label for label, _ in log.list.options]
        assert labels[-1].startswith("⚠ ↓") and "<no>" in labels[-1]  # errors marked, received
        log.select(lines[-1].seq)  # a click shows the event's JSON
        assert "invalid_request_error" in log.detail.value and "&lt;no&gt;" in log.detail.value
        log.update_from(history)  # nothing new: nothing added
        assert len(log.lines) == 20 and log.lines[-1].seq == lines[-1].seq
        # the session's bounded history dropped what the log saw last: still no duplicates
        for i in range(60):
            history.receive(
                200.0 + i,
                {
                    "type": "response.audio.delta",
                    "response_id": "r",
                    "item_id": "a",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "AAAA",
                },
            )
        log.update_from(history)
        assert log.lines[-1].type == "error"  # audio deltas hidden
        log.hide_deltas.value = False
        assert [line.summary for line in log.lines[-2:]] == ["3 bytes", "3 bytes"]
        assert sum(line.type == "response.audio.delta" for line in log.lines) == 20  # bounded
        before = log._seq
        log.update_from(history)
        assert log._seq == before
    finally:
        log.close()


def test_transcript_view_escapes_and_marks_partial_text() -> None:
    from voicelive_nb.protocol.state import TranscriptEntry
    from voicelive_nb.widgets.log import TranscriptView

    history = _History()
    view = TranscriptView()
    try:
        assert "no conversation yet" in view.value
        history.transcript = [
            TranscriptEntry("user", "u1", "<script>alert(1)</script>", True),
            TranscriptEntry("assistant", "a1", "Hello & wel", False),
        ]
        view.update_from(history)
        assert "<script>" not in view.value and "&lt;script&gt;" in view.value
        assert "<i>Hello &amp; wel</i>" in view.value
        # streaming text resends only the small live part, not the finished turns
        sent: list[str] = []
        view.history.observe(lambda change: sent.append("history"), names="value")
        view.live.observe(lambda change: sent.append("live"), names="value")
        for n in range(3):
            history.transcript[-1] = TranscriptEntry("assistant", "a1", "Hello & wel" + "l" * n, False)
            view.update_from(history)
        view.update_from(history)  # nothing changed: nothing sent
        assert sent == ["live", "live"]  # n=0 equals what is shown already
        history.transcript = [
            *history.transcript[:1],
            TranscriptEntry("assistant", "a1", "Hello & welcome", True),
        ]
        view.update_from(history)
        assert "<i>" not in view.value and "Hello &amp; welcome" in view.value
    finally:
        view.close()


def _sent_types(session: NotebookSession) -> list[str]:
    live = session.session
    return [wire["type"] for _t, wire in live.sent_events()] if live is not None else []


def test_an_out_of_range_value_is_refused_and_never_sent_then_a_good_one_is_confirmed(
    make_panel: Any,
) -> None:
    session, panel = make_panel()
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    form = panel.form
    assert form is not None
    updates = _sent_types(session).count("session.update")
    threshold = form.widget("turn_detection.threshold")
    threshold.value = 5.0
    silence = form.widget("turn_detection.silence_duration_ms")
    silence.value = -300
    assert "0.0 to 1.0" in form.fields["turn_detection.threshold"].note.value
    assert "integers 0 to 10000" in form.fields["turn_detection.silence_duration_ms"].note.value
    assert not form.pending and form.flush() is False
    assert _sent_types(session).count("session.update") == updates  # nothing sent
    assert session.config.value_at("turn_detection.threshold") == 0.5
    threshold.value = 0.61
    silence.value = 650
    wait_until(lambda: "applied" in form.fields["turn_detection.threshold"].note.value, what="confirmation")
    wait_until(lambda: "applied" in form.fields["turn_detection.silence_duration_ms"].note.value)
    assert _sent_types(session).count("session.update") == updates + 1
    live = session.session
    assert live is not None and live.effective_session()["turn_detection"]["threshold"] == 0.61


def test_failed_status_stays_one_line_and_the_details_expand(make_panel: Any) -> None:
    from voicelive_nb.widgets.panel import STATUS_MAX, one_line

    long = "failed: " + "the service said something very long about the failure " * 6
    assert len(one_line(long)) <= STATUS_MAX and one_line(long).endswith("…")
    assert one_line("a\nb") == "a …"
    _session, panel = make_panel()
    panel.show_error(long)
    assert "<details" in panel.error_area.value and html.escape(long.strip()) in panel.error_area.value
    assert panel.start_button.layout.min_width == "90px" and panel.stop_button.layout.flex == "0 0 auto"


def test_a_rejected_start_shows_a_one_line_status() -> None:
    emu = start_in_thread(pace="fast", api_key="right-key")
    session = NotebookSession(endpoint=emu.url, api_key="wrong-key", mic=False, speaker=False, dotenv=False)
    panel = SessionPanel(session, show_live=False)
    try:
        click_start(panel)
        wait_until(lambda: panel.phase == "failed", what="failed")
        text = html.unescape(panel.status.value.split(">", 1)[1].rsplit("<", 1)[0])
        assert "\n" not in text and len(text) <= 60
        assert panel.errors and len(panel.errors[-1]) >= len(text)  # the whole message is in the error area
        assert sum(session.status in e for e in panel.errors) == 1  # once, not twice
    finally:
        session.stop()
        panel.close()
        emu.stop()


def test_push_to_talk_with_manual_turn_detection(make_panel: Any, question_wav: Path) -> None:
    session, panel = make_panel(config=SessionConfig.manual())
    assert panel.talk_button.layout.display == "none" or panel.phase != "connected"
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    panel.refresh()
    assert panel.talk_button.layout.display is None and not panel.talk_button.disabled
    panel.talk_button.value = True  # pressed
    wait_until(lambda: "input_audio_buffer.clear" in _sent_types(session), what="clear sent")
    session.speak(question_wav, pace="fast", tail_silence_ms=200)
    live = session.session
    assert live is not None
    wait_until(lambda: live.bytes_sent > 24000, what="audio appended")
    panel.talk_button.value = False  # released: commit + response.create
    session.wait_for("response.done", timeout=30)
    types = _sent_types(session)
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    assert panel.talks == 1
    _other, other_panel = make_panel()  # server VAD: no push-to-talk button
    assert other_panel.talk_button.layout.display == "none"


def test_the_event_inspector_shows_both_directions_json_and_session_separators(make_panel: Any) -> None:
    session, panel = make_panel()
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    wait_until(lambda: any(ln.type == "session.updated" for ln in panel.event_log.lines))
    lines = panel.event_log.lines
    sent = [ln for ln in lines if ln.direction == "client"]
    assert sent and sent[0].type == "session.update" and sent[0].text().startswith("↑")
    assert any(ln.direction == "server" and ln.text().startswith("↓") for ln in lines)
    panel.event_log.select(sent[0].seq)
    detail = html.unescape(panel.event_log.detail.value)
    assert '"type": "session.update"' in detail and "sent at" in detail
    session.stop()
    click_start(panel)
    wait_until(lambda: panel.phase == "connected")
    wait_until(lambda: sum(ln.type == "session.update" for ln in panel.event_log.lines) == 2)
    wait_until(
        lambda: any(label.startswith("──── session 2") for label, _ in panel.event_log.list.options),
        what="a separator before the second session",
    )


def test_the_inspector_masks_secrets_and_elides_audio() -> None:
    from voicelive_nb.widgets.log import EventLog

    log = EventLog()
    try:
        log.add_sent(1.0, {"type": "input_audio_buffer.append", "audio": "A" * 1280})
        log.add_sent(
            2.0, {"type": "session.update", "session": {"tools": [{"authorization": "Bearer xyz123"}]}}
        )
        first, second = log.lines
        assert log.details(first.seq) == {"type": "input_audio_buffer.append", "audio": "<audio: 960 bytes>"}
        assert "xyz123" not in json.dumps(log.details(second.seq))
    finally:
        log.close()


def test_emulator_note_and_a_text_fallback_for_a_stale_panel() -> None:
    builtin = NotebookSession(mic=False, speaker=False, dotenv=False, emulator=True)
    panel = SessionPanel(builtin, show_live=False, show_config=False)
    try:
        assert "ignores instructions" in panel.connection.value
        assert "re-run this cell" in panel._repr_mimebundle_()["text/plain"]
        assert panel.children[0] is panel.stale_watch and "vlnb-panel" in panel._dom_classes
    finally:
        panel.close()


def test_the_panel_starts_no_thread_and_still_sees_the_end_of_every_action(
    make_panel: Any, question_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start, push-to-talk, Stop: the panel only posts work to the session's engine (futures and
    its one listener); it starts no thread of its own, yet shows each outcome (the stop's final
    status and re-enabled Start come from the listener's last call, not from a polling thread)."""
    started: list[str] = []
    real_start = threading.Thread.start

    def observed_start(thread: threading.Thread) -> None:
        caller = traceback.extract_stack()[-2]  # the code that called start()
        if "voicelive_nb/widgets/" in caller.filename:
            started.append(f"{thread.name} from {caller.name}")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", observed_start)
    session, panel = make_panel(config=SessionConfig.manual())
    click_start(panel)
    wait_until(lambda: panel.phase == "connected", what="connected")
    panel.talk_button.value = True
    wait_until(lambda: "input_audio_buffer.clear" in _sent_types(session), what="clear sent")
    session.speak(question_wav, pace="fast", tail_silence_ms=200)
    live = session.session
    assert live is not None
    wait_until(lambda: live.bytes_sent > 24000, what="audio appended")
    panel.talk_button.value = False
    session.wait_for("response.done", timeout=30)
    panel.stop_button.click()
    wait_until(lambda: not session.running, what="stopped")
    wait_until(lambda: panel.phase == "idle" and not panel.start_button.disabled, what="Start enabled again")
    assert panel.stop_button.disabled and "stopped" in panel.status.value
    assert started == []
