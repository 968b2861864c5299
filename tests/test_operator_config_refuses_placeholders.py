"""Synth refuses prod while its gateway's host is a placeholder (`.example`, `.invalid`, `.test`, `example.com`,
localhost...; README, 'Deploying', step 1) under any spelling of it: the fully qualified name with the root's
trailing dot (``api.sparkle.example.``, what DNS tools print), ``localhost.``, and the loopback addresses, which
are localhost by another name (dev's own gateway, ``http://127.0.0.1:4010``, made https). Each would be a prod
whose every charge goes nowhere."""

import pytest

from stacks.config import load_environment
from tests.conftest import example_operator_settings


def _prod(gateway_base_url: str):
    operator = example_operator_settings()
    operator["prod"]["gateway_base_url"] = gateway_base_url
    return load_environment("prod", operator)


def test_the_documented_placeholder_is_refused():
    with pytest.raises(ValueError, match="placeholder"):
        _prod("https://api.sparkle.example/")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.sparkle.example./",  # the documented placeholder, fully qualified
        "https://sparkle.example.com./",
        "https://api.sparkle.test./",
        "https://localhost./",
        "https://127.0.0.1:4010/",  # dev's gateway, made https
        "https://[::1]/",
    ],
)
def test_a_placeholder_host_under_another_spelling_is_refused(url):
    with pytest.raises(ValueError, match="placeholder"):
        config = _prod(url)
        print(f"accepted as prod's gateway: {config.gateway_base_url}")
