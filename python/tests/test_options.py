"""Options come from the core's option table: the TypedDict lists them, and a bad value's
ConfigError carries the core's text and option id unchanged (the same text C shows)."""

from __future__ import annotations

from typing import Any

import pytest

import tether
from tether import ClientOptions

URL = "ws://127.0.0.1:1/"


def test_client_options_lists_every_keyword_the_client_accepts() -> None:
    binding = {"events"} | {k for k in ClientOptions.__annotations__ if k.startswith("on_")}
    for name in ClientOptions.__annotations__:
        if name in binding:
            continue
        # An unknown keyword would be "unknown option"; a known one with a bad type names it.
        bad: dict[str, Any] = {name: object()}
        with pytest.raises(tether.ConfigError) as info:
            tether.Client(URL, **bad)
        assert info.value.option == name
        assert "unknown option" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        (
            {"backoff_multiplier": 0.5},
            "invalid value for option `backoff_multiplier`: 0.5 must be a finite number >= 1.0",
        ),
        (
            {"token": "t"},
            'invalid value for option `token`: only with protocol="envelope" '
            "(raw mode sends bare messages)",
        ),
        (
            {"outbox_max_messages": 0},
            "invalid value for option `outbox_max_messages`: must be greater than zero",
        ),
    ],
)
def test_config_errors_are_the_cores_text(options: dict[str, Any], text: str) -> None:
    with pytest.raises(tether.ConfigError) as info:
        tether.Client(URL, **options)
    assert str(info.value) == text
