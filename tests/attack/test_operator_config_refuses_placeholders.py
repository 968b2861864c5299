"""Attack (an operator's honest mistake): "Synth refuses prod ... while a host is a placeholder (`.example`,
`.invalid`, `.test`, `example.com`...)" (README, 'Deploying', step 1; issue 9 item 8: "no placeholder domain").

``_is_placeholder`` compares the host as written. A fully qualified spelling with the root's trailing dot
(``api.sparkle.example.``: the same name, and what DNS tools print) is accepted, and so is ``localhost.``, although
``localhost`` is on the list. The loopback addresses are localhost by another spelling: dev's own gateway
(``http://127.0.0.1:4010``) with its scheme changed to https synthesizes as prod's gateway. Each is a prod
whose every charge goes nowhere, accepted by synth."""

import pytest

from stacks.config import load_environment
from tests.conftest import example_operator_settings


def _prod(gateway_base_url: str):
    operator = example_operator_settings()
    operator["prod"]["gateway_base_url"] = gateway_base_url
    return load_environment("prod", operator)


def test_control_the_documented_placeholder_is_refused():
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
