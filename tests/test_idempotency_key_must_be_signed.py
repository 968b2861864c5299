"""A charge's ``Idempotency-Key`` must be covered by its signature: a signed charge whose signature does not cover
its key, replayed within the signature's 5 minutes under fresh keys, would otherwise be a new payment, so a second
charge, at each replay.

Through the local API and the real handlers (AWS in moto, the Sparkle sandbox as a process): such a request is
refused with 400 ``idempotency_key_unsigned`` before anything is read or written, and so is every replay; the SDK,
which signs the key, charges."""

import threading
from collections.abc import Iterator

import pytest
import requests
from botocore.credentials import Credentials

from client import PaymentsClient, SigV4
from tests.support.api import VISA, stored_items
from tests.support.fakes import MERCHANT_A
from tools import local_api
from tools.sigv4 import IssuedCredential

KEY = IssuedCredential("AKIALOCALTEST000003", "local-secret", MERCHANT_A, MERCHANT_A.split(":")[4])
SIGNER = SigV4(Credentials(KEY.access_key_id, KEY.secret_access_key), "us-east-1")


@pytest.fixture
def api(aws_env) -> Iterator[str]:
    server = local_api.LocalApi(0, None, 25, {KEY.access_key_id: KEY}, "us-east-1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{local_api.HOST}:{server.server_port}"
    server.shutdown()
    server.server_close()


def captured_charge(api: str, token: str) -> requests.PreparedRequest:
    """A charge signed by a client that adds its key after signing: the key is not among the SignedHeaders."""
    request = requests.Request(
        "POST", f"{api}/payments", json={"amount": 1999, "currency": "usd", "source": {"token": token}}
    ).prepare()
    SIGNER(request)
    request.headers["Idempotency-Key"] = "order-1"
    return request


def test_a_charge_with_an_unsigned_key_and_its_replays_under_fresh_keys_charge_nothing(api, aws_env, sandbox):
    client = PaymentsClient(api, SIGNER)
    token = client.tokenize(**VISA).token
    captured = captured_charge(api, token)
    before = stored_items(aws_env)
    with requests.Session() as session:
        answers = [session.send(captured, timeout=30)]
        for replay in range(3):
            captured.headers["Idempotency-Key"] = f"replayed-{replay}"
            answers.append(session.send(captured, timeout=30))
    for answer in answers:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error",
            "idempotency_key_unsigned",
            "Idempotency-Key",
        )
    assert sandbox.charges() == [] and stored_items(aws_env) == before

    paid = client.pay(1999, "usd", token=token)  # the SDK signs its key
    assert paid.status == "succeeded" and len(sandbox.charges()) == 1


def test_every_spelling_of_a_key_its_signature_covers_is_the_same_key(api, aws_env, sandbox):
    """SigV4 signs a header's value trimmed, with each run of spaces as one space: a captured charge resent with its
    key respaced still verifies, and must be a replay of the one charge, never a new one."""
    client = PaymentsClient(api, SIGNER)
    token = client.tokenize(**VISA).token
    captured = requests.Request(
        "POST",
        f"{api}/payments",
        headers={"Idempotency-Key": "order 1"},
        json={"amount": 1999, "currency": "usd", "source": {"token": token}},
    ).prepare()
    SIGNER(captured)
    with requests.Session() as session:
        first = session.send(captured, timeout=30)
        replays = []
        for respaced in ("order  1", "order   1", "order 1 ", "order 1   ", " order 1", "  order  1  "):
            captured.headers["Idempotency-Key"] = respaced  # after signing: the signature is the captured one
            replays.append(session.send(captured, timeout=30))
    assert first.status_code == 201, first.text
    for replay in replays:
        assert replay.status_code == 201, replay.text
        assert replay.json()["id"] == first.json()["id"]
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.charges()) == 1
