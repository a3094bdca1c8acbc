"""The emulator's deterministic tool-call rules: which tool, which arguments, what it says after."""

from __future__ import annotations

from typing import Literal

from voicelive_nb.emulator.toolcalls import choose_tool, fill_arguments, reply_for_output, words
from voicelive_nb.tools import as_tool


def count_missing(column: Literal["price", "quantity", "region"]) -> int:
    """Count the rows where a column has no value."""
    return 0


def get_weather(city: str, days: int = 1) -> str:
    """Get the weather forecast for a city."""
    return ""


def convert_currency(amount: float, currency: Literal["usd", "eur", "gbp"], rounded: bool = False) -> str:
    """Convert money between currencies at today's exchange rate."""
    return ""


TOOLS = [as_tool(f).definition() for f in (count_missing, get_weather, convert_currency)]


def test_words_split_names() -> None:
    assert words("count_missing") == ["count", "missing"]
    assert words("getWeatherNow") == ["get", "weather", "now"]


def test_auto_picks_the_tool_whose_name_words_were_said() -> None:
    assert choose_tool("how many rows have a missing price? count them", TOOLS)["name"] == "count_missing"
    assert (
        choose_tool("what is the weather in London", TOOLS)["name"] == "get_weather"
    )  # "get" need not be said
    assert choose_tool("tell me a joke", TOOLS) is None


def test_auto_falls_back_to_the_description() -> None:
    picked = choose_tool("what is the exchange rate between currencies today", TOOLS)
    assert picked is not None and picked["name"] == "convert_currency"


def test_tool_choice_none_required_and_named() -> None:
    assert choose_tool("what is the weather in London", TOOLS, "none") is None
    assert choose_tool("tell me a joke", TOOLS, "required")["name"] == "count_missing"
    named = {"type": "function", "name": "convert_currency"}
    assert choose_tool("what is the weather", TOOLS, named)["name"] == "convert_currency"
    assert choose_tool("anything", [], "required") is None
    assert choose_tool("what is the weather", [{"type": "mcp", "server_label": "x"}]) is None


def test_arguments_from_the_utterance_against_the_schema() -> None:
    schema = TOOLS[0]["parameters"]
    assert fill_arguments("how many rows have a missing price", schema) == {"column": "price"}
    weather = TOOLS[1]["parameters"]
    assert fill_arguments("what is the weather in london for three days", weather) == {
        "city": "london",
        "days": 3,
    }
    assert fill_arguments("weather please", weather) == {
        "city": "",
        "days": 1,
    }  # required → empty, default kept
    money = TOOLS[2]["parameters"]
    assert fill_arguments("convert 12.5 to eur, not rounded", money) == {
        "amount": 12.5,
        "currency": "eur",
        "rounded": False,
    }
    assert fill_arguments("convert 7 gbp rounded", money)["rounded"] is True
    assert fill_arguments('weather in "New York"', weather)["city"] == "New York"


def test_the_reply_quotes_the_output() -> None:
    assert reply_for_output("count_missing", "3") == "Count missing says: 3"
    assert reply_for_output("get_weather", "error: boom") == "The get weather tool failed: boom"
    assert reply_for_output("x", "a" * 1000).endswith("…")
