"""ConfigForm: generated from field_specs(), validated, debounced, two-way without feedback loops.

Headless: ipywidgets work without a frontend; a trait set here is what a browser edit does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import ipywidgets as W
import pytest

from voicelive_nb.protocol.config import SessionConfig, field_specs
from voicelive_nb.widgets.forms import NOT_SET, OFF, ConfigForm, soft_range

SPECS = [s for s in field_specs() if s.path != "model"]
CONTAINERS = {
    s.path for s in SPECS if s.kind == "object" and any(o.path.startswith(s.path + ".") for o in SPECS)
}


class Calls:
    """on_change recorder: a list plus an Event set on each call (no sleeps as synchronisation)."""

    def __init__(self) -> None:
        self.configs: list[SessionConfig] = []
        self.threads: list[str] = []
        self.event = threading.Event()

    def __call__(self, config: SessionConfig) -> None:
        self.configs.append(config)
        self.threads.append(threading.current_thread().name)
        self.event.set()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def form(calls: Calls) -> Iterator[ConfigForm]:
    f = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=0)
    yield f
    f.close()


@pytest.fixture(scope="module")
def shared_form() -> Iterator[ConfigForm]:
    """One form for the read-only checks (building one makes ~900 widgets)."""
    f = ConfigForm(SessionConfig.server_vad())
    yield f
    f.close()


def _selector(path: str) -> Any:
    return next(
        (s for s in SPECS if s.path.rpartition(".")[0] == path and s.kind == "choice" and s.required), None
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.path)
def test_every_field_spec_gets_a_widget_of_its_kind(shared_form: ConfigForm, spec: Any) -> None:
    form = shared_form
    if spec.path in CONTAINERS:
        widget = form.widget(spec.path)
        assert isinstance(widget, W.Dropdown)
        assert widget.options[0] == NOT_SET
        assert (OFF in widget.options) == spec.nullable
        selector = _selector(spec.path)
        if selector is not None:
            assert set(widget.options) >= {str(c) for c in selector.choices}
        return
    if _selector(spec.path.rpartition(".")[0]) is spec:
        return  # a group's selector, checked with its group
    widget = form.widget(spec.path)
    expected: dict[str, type] = {
        "float": W.FloatText,
        "bool": W.Checkbox,
        "choice": W.Dropdown,
        "text": W.Textarea,
        "list": W.TagsInput,
        "object": W.Textarea,
    }
    if spec.kind == "int":
        assert isinstance(widget, W.Combobox if spec.choices else W.IntText)  # typed: never clamped
        if not spec.choices:
            slider = form.fields[spec.path].slider
            assert (slider.min, slider.max, slider.step) == (*soft_range(spec), spec.step)
    elif spec.kind == "str":
        assert isinstance(widget, W.Combobox if spec.choices else W.Text)
        if spec.choices:
            assert list(widget.options) == [str(c) for c in spec.choices]  # suggestions only
            assert widget.ensure_option is False
    else:
        assert isinstance(widget, expected[spec.kind])
    if spec.kind == "float":
        slider = form.fields[spec.path].slider
        assert (slider.min, slider.max, slider.step) == (spec.minimum, spec.maximum, spec.step)
    if spec.kind == "choice":
        assert [o for o in widget.options if not o.startswith("(")] == [str(c) for c in spec.choices]
    if spec.kind == "list":
        assert list(widget.allowed_tags) == [str(c) for c in spec.choices]
    assert spec.doc in widget.tooltip


def test_unset_fields_show_their_default_beside_them(shared_form: ConfigForm) -> None:
    note = shared_form.fields["turn_detection.speech_duration_ms"].note.value
    assert "default 200" in note and "#c62828" not in note  # server_vad's type default, grey
    assert shared_form.widget("turn_detection.speech_duration_ms").value == 200


def test_widgets_share_layouts_and_styles(shared_form: ConfigForm) -> None:
    from voicelive_nb.widgets.forms import widget_tree

    widgets = widget_tree(shared_form)
    assert len(widgets) < 6 * len(shared_form.fields)  # one comm per widget when displayed: keep it small
    sliders = [shared_form.widget(p) for p in ("turn_detection.threshold", "temperature")]
    assert sliders[0].layout is sliders[1].layout and sliders[0].style is sliders[1].style


def test_sections_group_fields_by_top_level_key(shared_form: ConfigForm) -> None:
    form = shared_form
    assert list(form.tabs.titles) == [
        "Prompt & voice",
        "Turn detection",
        "Audio",
        "Transcription",
        "Advanced",
    ]
    turn = form.tabs.children[1]
    assert form.fields["turn_detection.threshold"].row in _all_children(turn)
    assert form.fields["input_audio_echo_cancellation.channels"].row in _all_children(form.tabs.children[2])
    assert form.fields["tools"].row in _all_children(form.tabs.children[4])


def _all_children(widget: Any) -> list[Any]:
    out, stack = [], [widget]
    while stack:
        w = stack.pop()
        out.append(w)
        stack.extend(getattr(w, "children", ()))
    return out


def test_quick_slider_changes_make_one_debounced_call() -> None:
    calls = Calls()
    form = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=0.2)
    try:
        slider = form.fields["turn_detection.threshold"].slider
        assert isinstance(slider, W.FloatSlider) and slider.value == 0.5
        for value in (0.55, 0.6, 0.65, 0.7):
            slider.value = value
        assert form.pending and not calls.configs  # nothing yet: debounced
        assert calls.event.wait(5)
        assert form.flush() is False  # nothing left pending: the four changes made one call
        assert len(calls.configs) == 1
        assert calls.configs[0] == SessionConfig.server_vad().with_changes({"turn_detection.threshold": 0.7})
        assert calls.threads[0] == "voicelive-form-debounce"  # never the caller's thread
        assert form.config == calls.configs[0]
    finally:
        form.close()


def test_flush_delivers_a_pending_change_at_once() -> None:
    calls = Calls()
    form = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=30)
    try:
        form.widget("turn_detection.silence_duration_ms").value = 800
        assert form.flush() is True
        assert [c.value_at("turn_detection.silence_duration_ms") for c in calls.configs] == [800]
        assert not form.pending
    finally:
        form.close()


def test_invalid_json_is_shown_beside_the_field_and_not_applied(form: ConfigForm, calls: Calls) -> None:
    before = form.config
    form.widget("tools").value = '[{"type": "function", "name": '
    assert "invalid JSON" in form.errors["tools"]
    assert "invalid JSON" in form.fields["tools"].note.value and "#c62828" in form.fields["tools"].note.value
    assert calls.configs == [] and not form.pending
    assert form.config is before
    form.widget("tools").value = '[{"type": "function", "name": "get_time"}]'
    assert form.errors == {} and form.fields["tools"].note.value == ""
    assert calls.configs[-1].to_dict()["tools"] == [{"type": "function", "name": "get_time"}]


def test_out_of_range_typed_value_is_a_config_error_beside_the_field(form: ConfigForm, calls: Calls) -> None:
    field = form.fields["max_response_output_tokens"]
    field.widget.value = "99999"
    assert "max_response_output_tokens" in form.errors["max_response_output_tokens"]
    assert "4096" in field.note.value
    assert calls.configs == []
    field.widget.value = "not a number"
    assert "not a whole number" in form.errors["max_response_output_tokens"]
    assert calls.configs == []
    field.widget.value = "inf"
    assert form.errors == {}
    assert calls.configs[-1].max_response_output_tokens == "inf"
    field.widget.value = "256"
    assert calls.configs[-1].max_response_output_tokens == 256


def test_a_tool_error_is_shown_on_the_tools_field(form: ConfigForm, calls: Calls) -> None:
    form.widget("tools").value = '[{"type": "mcp", "server_url": "https://x"}]'
    assert "server_label" in form.errors["tools"]  # ConfigError tools[0].server_label → the tools field
    assert calls.configs == []


def test_switching_turn_detection_type_shows_only_fields_that_apply(form: ConfigForm, calls: Calls) -> None:
    kind = form.widget("turn_detection")
    assert kind.value == "server_vad"
    assert not form.is_visible("turn_detection.eagerness")
    assert form.fields["turn_detection.eagerness"].row.layout.display == "none"
    assert form.is_visible("turn_detection.threshold")

    kind.value = "semantic_vad"
    assert form.is_visible("turn_detection.eagerness")
    assert form.fields["turn_detection.eagerness"].row.layout.display is None
    assert not form.is_visible("turn_detection.threshold")
    assert not form.is_visible("turn_detection.end_of_utterance_detection")
    assert calls.configs[-1].to_dict()["turn_detection"] == {
        "type": "semantic_vad"
    }  # server_vad knobs dropped

    form.widget("turn_detection.eagerness").value = "high"
    kind.value = "azure_semantic_vad"  # that type's type_defaults are applied, eagerness dropped
    assert calls.configs[-1].to_dict()["turn_detection"] == {
        "type": "azure_semantic_vad",
        "prefix_padding_ms": 420,
        "speech_duration_ms": 80,
    }
    assert not form.is_visible("turn_detection.eagerness")
    assert form.is_visible("turn_detection.remove_filler_words")
    assert form.widget("turn_detection.prefix_padding_ms").value == 420

    kind.value = "server_vad"
    assert not form.is_visible("turn_detection.remove_filler_words")
    assert calls.configs[-1].value_at("turn_detection.speech_duration_ms") == 200


def test_nullable_objects_have_off_and_not_set(form: ConfigForm, calls: Calls) -> None:
    form.widget("turn_detection").value = OFF
    assert calls.configs[-1].turn_detection is None  # manual commit
    assert not form.is_visible("turn_detection.threshold")
    form.widget("input_audio_noise_reduction").value = "azure_deep_noise_suppression"
    assert calls.configs[-1].to_dict()["input_audio_noise_reduction"] == {
        "type": "azure_deep_noise_suppression"
    }
    form.widget("input_audio_noise_reduction").value = NOT_SET
    assert "input_audio_noise_reduction" not in calls.configs[-1].to_dict()
    form.widget("input_audio_transcription").value = OFF
    assert calls.configs[-1].input_audio_transcription is None
    assert not form.is_visible("input_audio_transcription.language")


def test_a_change_needing_two_edits_passes_through_an_invalid_step(form: ConfigForm, calls: Calls) -> None:
    form.widget("input_audio_echo_cancellation.reference_source").value = "client"
    assert "reference_source" in form.errors["input_audio_echo_cancellation.reference_source"]
    assert calls.configs == []
    form.widget("input_audio_echo_cancellation.channels").value = "2"
    assert form.errors == {}
    assert calls.configs[-1].to_dict()["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    }


def test_voice_type_shows_its_fields_and_requires_a_name(form: ConfigForm, calls: Calls) -> None:
    assert form.widget("voice").value == NOT_SET
    assert not form.is_visible("voice.name")
    form.widget("voice").value = "openai"
    assert form.is_visible("voice.name") and not form.is_visible("voice.temperature")
    assert "voice.name" in form.errors and calls.configs == []
    form.widget("voice.name").value = "alloy"
    assert calls.configs[-1].to_dict()["voice"] == {"type": "openai", "name": "alloy"}
    form.widget("voice").value = "azure-standard"
    assert form.is_visible("voice.temperature")


def test_a_bare_voice_name_is_shown_and_edited_as_an_openai_voice(calls: Calls) -> None:
    form = ConfigForm(SessionConfig(voice="alloy"), on_change=calls, debounce_s=0)
    try:
        assert form.widget("voice").value == "openai"
        assert form.widget("voice.name").value == "alloy"
        form.widget("voice.name").value = "echo"
        assert calls.configs[-1].to_dict()["voice"] == {"type": "openai", "name": "echo"}
    finally:
        form.close()


def test_set_config_updates_widgets_without_calling_on_change(form: ConfigForm, calls: Calls) -> None:
    new = SessionConfig.quickstart().with_changes({"turn_detection.threshold": 0.42})
    form.set_config(new)
    assert calls.configs == []
    assert not form.pending
    assert form.config is new
    assert form.widget("turn_detection").value == "azure_semantic_vad"
    assert form.widget("turn_detection.threshold").value == 0.42
    assert form.widget("instructions").value == new.instructions
    assert form.widget("voice.name").value == "en-US-Ava:DragonHDLatestNeural"


def test_set_config_drops_a_pending_change_and_invalid_edits() -> None:
    calls = Calls()
    form = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=30)
    try:
        form.widget("turn_detection.threshold").value = 0.9
        form.widget("tools").value = "{"
        assert form.pending and form.errors
        form.set_config(SessionConfig.manual())
        assert not form.pending and form.errors == {}
        assert form.flush() is False and calls.configs == []
        assert form.widget("turn_detection").value == OFF
    finally:
        form.close()


@pytest.mark.parametrize("name", ["quickstart", "server_vad", "manual"])
def test_presets_load_their_configs_and_keep_what_the_user_wrote(name: str) -> None:
    calls = Calls()
    form = ConfigForm(SessionConfig(instructions="x", voice="alloy"), on_change=calls, debounce_s=0)
    try:
        form.presets.value = name
        preset = getattr(SessionConfig, name)().to_dict()
        expected = {**preset, "instructions": "x", "voice": preset.get("voice", "alloy")}
        assert form.config.to_dict() == expected  # the preset's VAD and audio; the user's instructions
        assert calls.configs[-1].to_dict() == expected
        assert form.widget("instructions").value == "x"
        assert form.presets.value != name  # back to the prompt: the same preset can be chosen again
    finally:
        form.close()
    plain = ConfigForm(SessionConfig(), debounce_s=0)  # nothing written yet: exactly the preset
    try:
        assert plain.load_preset(name).to_dict() == plain.config.to_dict()
    finally:
        plain.close()


def test_export_shows_the_config_json(form: ConfigForm) -> None:
    form.widget("turn_detection.threshold").value = 0.66
    assert json.loads(form.to_json()) == form.config.to_dict() == form.to_dict()
    form.export_button.click()
    (output,) = form.export_output.outputs
    assert output["name"] == "stdout"
    assert json.loads(output["text"]) == form.config.to_dict()
    form.export_button.click()  # replaces, does not append
    assert len(form.export_output.outputs) == 1


def test_secret_values_in_json_fields_are_never_in_widget_state(form: ConfigForm, calls: Calls) -> None:
    secret = "Bearer sk-SECRET-mcp-0123456789"
    tool = {"type": "mcp", "server_label": "s", "server_url": "https://mcp.example", "authorization": secret}
    form.set_config(SessionConfig(tools=[tool]))
    assert secret not in form.widget("tools").value and "***" in form.widget("tools").value
    # editing another part of the JSON keeps the hidden value
    form.widget("tools").value = form.widget("tools").value.replace('"s"', '"s2"')
    assert calls.configs[-1].to_dict()["tools"][0] == {**tool, "server_label": "s2"}
    assert secret not in form.to_json() and json.loads(form.to_json(redact_secrets=False))["tools"][0] == {
        **tool,
        "server_label": "s2",
    }
    form.export_button.click()
    for widget in _all_children(form):
        assert secret not in str(widget.get_state())


def test_an_on_change_failure_is_shown_not_swallowed() -> None:
    def broken(config: SessionConfig) -> None:
        raise RuntimeError("the session refused")

    reported: list[str] = []
    form = ConfigForm(SessionConfig.server_vad(), on_change=broken, debounce_s=0, on_error=reported.append)
    try:
        form.widget("turn_detection.threshold").value = 0.7
        assert "the session refused" in form.message.value
        assert reported == ["applying the configuration failed: RuntimeError: the session refused"]
    finally:
        form.close()


def test_set_config_from_another_thread_while_the_user_edits() -> None:
    calls = Calls()
    form = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=0)
    try:
        configs = [
            SessionConfig.server_vad().with_changes({"turn_detection.threshold": t / 100}) for t in range(30)
        ]

        def engine() -> None:
            for config in configs:
                form.set_config(config)

        thread = threading.Thread(target=engine)
        thread.start()
        for ms in range(110, 1100, 100):  # never 500, the value set_config brings
            form.widget("turn_detection.silence_duration_ms").value = ms
        thread.join(10)
        assert not thread.is_alive()
        # every user edit was handled (none mistaken for our own sync); no call came from set_config
        assert 0 < len(calls.configs) <= 10
        assert all(c.value_at("turn_detection.silence_duration_ms") != 500 for c in calls.configs)
    finally:
        form.close()


def test_debounce_timer_thread_is_gone_after_close() -> None:
    form = ConfigForm(SessionConfig.server_vad(), on_change=lambda c: None, debounce_s=30)
    form.widget("turn_detection.threshold").value = 0.8
    assert any(t.name == "voicelive-form-debounce" for t in threading.enumerate())
    form.close()
    deadline = time.monotonic() + 5
    while any(t.name == "voicelive-form-debounce" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("path", "bad", "allowed"),
    [
        ("turn_detection.threshold", 5.0, "0.0 to 1.0"),
        ("turn_detection.silence_duration_ms", -300, "integers 0 to 10000"),
        ("turn_detection.prefix_padding_ms", 12000, "integers 0 to 10000"),
        ("temperature", 2.5, "0.0 to 2.0"),
    ],
)
def test_an_out_of_range_number_is_refused_at_the_field_and_not_sent(
    form: ConfigForm, calls: Calls, path: str, bad: float, allowed: str
) -> None:
    before = form.config
    box = form.widget(path)
    box.value = bad
    assert box.value == bad  # the box never clamps what was typed
    assert path in form.errors and allowed in form.errors[path]
    assert "out of range" in form.fields[path].note.value and allowed in form.fields[path].note.value
    assert calls.configs == [] and not form.pending and form.config is before  # nothing is sent
    assert form.flush() is False
    good = 0.61 if isinstance(bad, float) else 1500
    box.value = good
    assert form.errors == {} and calls.configs[-1].value_at(path) == good


def test_the_ms_slider_covers_a_usable_range_and_the_box_takes_more(form: ConfigForm, calls: Calls) -> None:
    field = form.fields["turn_detection.silence_duration_ms"]
    assert (field.slider.min, field.slider.max) == (0, 2000)  # ~ a few ms per pixel, not 55
    field.slider.value = 750
    assert (
        field.widget.value == 750 and calls.configs[-1].value_at("turn_detection.silence_duration_ms") == 750
    )
    field.widget.value = 4500  # beyond the slider: typed, allowed (max 10000)
    assert calls.configs[-1].value_at("turn_detection.silence_duration_ms") == 4500
    assert field.slider.value == 2000 and field.widget.value == 4500  # slider pinned, the value is not


def test_switching_vad_type_and_back_keeps_the_users_values(form: ConfigForm, calls: Calls) -> None:
    form.widget("turn_detection.threshold").value = 0.73
    form.widget("turn_detection.silence_duration_ms").value = 900
    form.widget("turn_detection").value = "semantic_vad"
    form.widget("turn_detection.eagerness").value = "high"
    form.widget("turn_detection").value = "server_vad"
    td = calls.configs[-1].to_dict()["turn_detection"]
    assert (td["threshold"], td["silence_duration_ms"]) == (0.73, 900)
    form.widget("turn_detection").value = "semantic_vad"
    assert calls.configs[-1].to_dict()["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}


def test_confirm_applied_marks_the_fields_until_edited_again(form: ConfigForm, calls: Calls) -> None:
    form.widget("turn_detection.threshold").value = 0.66
    assert form.confirm_applied(["turn_detection.threshold"]) == ["turn_detection.threshold"]
    note = form.fields["turn_detection.threshold"].note.value
    assert "applied" in note and "#2e7d32" in note
    assert "turn_detection.threshold" in form.message.value
    form.widget("turn_detection.threshold").value = 0.7
    assert "applied" not in form.fields["turn_detection.threshold"].note.value


def test_unset_voice_shows_the_services_default(form: ConfigForm) -> None:
    assert form.widget("voice").value == NOT_SET
    form.set_effective({"voice": {"type": "azure-standard", "name": "en-US-AvaNeural"}})
    assert "service default: en-US-AvaNeural (azure-standard)" in form.fields["voice.type"].note.value
