"""The administrator's API token is at least 12 characters, in the API's settings and in `smartcity up`'s."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.secrets import StackSecrets
from smartcity.api import ApiSettings
from smartcity.stack.supervisor import StackSettings


@pytest.mark.parametrize("model", [ApiSettings, StackSettings])
def test_a_short_api_token_is_refused_with_a_clear_message(model: type[ApiSettings | StackSettings]) -> None:
    with pytest.raises(ValidationError) as err:
        model(api_token="eleven-char")  # type: ignore[arg-type]
    message = str(err.value)
    assert "SMARTCITY_API_TOKEN must be at least 12 characters" in message
    assert "eleven-char" not in message, "the token itself is never shown"
    assert model(api_token="twelve-chars").api_token is not None  # type: ignore[arg-type]
    assert model().api_token is None, "unset is allowed: smartcity up generates one"


def test_generated_tokens_are_long_enough() -> None:
    assert len(StackSecrets().api_token) >= 12
    StackSettings(api_token=StackSecrets().api_token)  # type: ignore[arg-type]
