"""The local API's throttles: the token bucket on a clock the test moves (API Gateway's: rate and burst), and each
merchant's own rate over HTTP, as `make local` serves it."""

import json
import threading
import time

import pytest
import requests
from botocore.credentials import Credentials

from client import SigV4
from stacks.config import DEV
from tools import local_api
from tools.local import throttles
from tools.local_api import TokenBucket
from tools.sigv4 import IssuedCredential

pytestmark = pytest.mark.integration  # the merchants' rates are tested over HTTP on loopback


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admitted(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_a_full_bucket_admits_the_burst_at_once_and_no_more():
    bucket = TokenBucket(rate=50, burst=100, clock=Clock())
    assert admitted(bucket, 150) == 100


def test_the_bucket_refills_at_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=50, burst=100, clock=clock)
    admitted(bucket, 100)
    clock.now += 0.5
    assert admitted(bucket, 100) == 25
    clock.now += 0.01
    assert admitted(bucket, 1) == 0  # half a token is not a request


def test_an_idle_bucket_holds_no_more_than_the_burst():
    clock = Clock()
    bucket = TokenBucket(rate=50, burst=100, clock=clock)
    clock.now += 3600
    assert admitted(bucket, 1000) == 100


def test_an_emptied_bucket_says_when_it_holds_a_token_again():
    assert TokenBucket(rate=5, burst=10).retry_after == 1
    assert TokenBucket(rate=0.25, burst=1).retry_after == 4


# --- each merchant's own rate, over HTTP ---------------------------------------------------

ACME = IssuedCredential("AKIALOCALACME0000001", "acme-secret", "arn:aws:iam::123456789012:user/acme-checkout",
                        "123456789012", "acme", "acme-api-key")  # fmt: skip
GLOBEX = IssuedCredential("AKIALOCALGLOBEX00001", "globex-secret", "arn:aws:iam::123456789012:user/globex-billing",
                          "123456789012", "globex", "globex-api-key")  # fmt: skip
IMPOSTOR = IssuedCredential("AKIALOCALIMPOSTOR001", "not-the-secret")  # an access key the local API never issued


def signer(credential: IssuedCredential, api_key: str | None = None) -> SigV4:
    credentials = Credentials(credential.access_key_id, credential.secret_access_key)
    return SigV4(credentials, DEV.region, credential.api_key if api_key is None else api_key)


@pytest.fixture
def api(monkeypatch):
    """The local API as `make local` throttles it (the stage's bucket and each dev merchant's own), in front of a
    handler that answers 200."""

    def handler(event, context):  # answers with the API key id the event reports
        return {"statusCode": 200, "body": json.dumps({"apiKeyId": event["requestContext"]["identity"]["apiKeyId"]})}

    monkeypatch.setattr(local_api, "handler_for", lambda route: handler)
    stage, merchants = throttles(DEV)
    server = local_api.LocalApi(
        0,
        stage,
        7,
        {c.access_key_id: c for c in (ACME, GLOBEX)},
        DEV.region,
        api_keys={c.api_key: c.merchant for c in (ACME, GLOBEX)},
        api_key_ids={c.api_key: f"{c.merchant}-key-id" for c in (ACME, GLOBEX)},
        merchant_throttles=merchants,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{local_api.HOST}:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_one_merchants_burst_never_makes_anothers_request_a_429(api):
    globex, acme = DEV.merchant_rate(DEV.merchants[1]), DEV.merchant_rate(DEV.merchants[0])
    assert (DEV.merchants[1].id, globex.rate_limit, globex.burst_limit) == ("globex", 5, 10)  # the contract's
    attempts = 2 * globex.burst_limit
    assert attempts <= acme.burst_limit  # acme's interleaved requests stay within its own bucket
    answers: dict[str, list[requests.Response]] = {"globex": [], "acme": []}
    started = time.monotonic()
    with requests.Session() as session:
        for _ in range(attempts):
            for credential in (GLOBEX, ACME):
                answers[credential.merchant].append(session.get(f"{api}/balances", auth=signer(credential), timeout=5))
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers["acme"]] == [200] * attempts
    throttled = [a for a in answers["globex"] if a.status_code == 429]
    admitted = attempts - len(throttled)
    assert globex.burst_limit <= admitted <= globex.burst_limit + globex.rate_limit * elapsed
    for answer in throttled:
        assert answer.headers["Retry-After"] == "1"
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited") and error["request_id"]


def test_a_request_with_a_key_that_is_no_merchants_is_refused(api):
    answer = requests.get(f"{api}/balances", auth=signer(ACME, "not-a-key"), timeout=5)
    assert answer.status_code == 403
    assert answer.json()["error"]["type"] == "permission_error"
    assert requests.get(f"{api}/balances", auth=signer(ACME), timeout=5).status_code == 200


def test_a_client_with_only_its_credentials_is_served_under_its_merchants_own_plan(api):
    """The contract's local client signs with its profile alone (no API key): it is served as its merchant, metered
    by that merchant's plan (globex: burst 10), and the event names that merchant's key as API Gateway would."""
    plain = {name: SigV4(Credentials(c.access_key_id, c.secret_access_key), DEV.region) for name, c in
             (("acme", ACME), ("globex", GLOBEX))}  # fmt: skip
    assert "x-api-key" not in requests.Request("GET", f"{api}/balances", auth=plain["acme"]).prepare().headers
    with requests.Session() as session:
        first = session.get(f"{api}/balances", auth=plain["globex"], timeout=5)
        assert first.status_code == 200 and first.json()["apiKeyId"] == "globex-key-id"
        burst = [session.get(f"{api}/balances", auth=plain["globex"], timeout=5).status_code for _ in range(20)]
        acme = [session.get(f"{api}/balances", auth=plain["acme"], timeout=5) for _ in range(3)]
    assert 429 in burst
    assert [answer.status_code for answer in acme] == [200] * 3
    assert {answer.json()["apiKeyId"] for answer in acme} == {"acme-key-id"}


def test_a_merchant_over_its_own_rate_never_makes_anothers_request_a_429(api):
    """Requests its own plan refuses spend no one else's tokens: the stage's bucket is charged only by requests its
    merchant's plan admitted."""
    stage = DEV.throttling.burst_limit
    with requests.Session() as session:
        acme = [session.get(f"{api}/balances", auth=signer(ACME), timeout=5).status_code for _ in range(2 * stage)]
        globex = [session.get(f"{api}/balances", auth=signer(GLOBEX), timeout=5) for _ in range(3)]
    assert acme.count(429) >= stage - DEV.merchant_rate(DEV.merchants[0]).burst_limit  # acme was over its own plan
    assert [answer.status_code for answer in globex] == [200] * 3


def test_refused_requests_never_make_a_merchants_request_a_429(api):
    """Unsigned, badly signed, keyless and unrouted requests are refused before the stage's bucket is charged."""
    stage = DEV.throttling.burst_limit
    with requests.Session() as session:
        refused = [session.get(f"{api}/balances", timeout=5) for _ in range(stage)]
        refused += [session.get(f"{api}/balances", auth=signer(IMPOSTOR), timeout=5) for _ in range(stage)]
        refused += [session.get(f"{api}/balances", auth=signer(ACME, "not-a-key"), timeout=5) for _ in range(stage)]
        refused += [session.get(f"{api}/no-such-route", auth=signer(ACME), timeout=5) for _ in range(stage)]
        globex = [session.get(f"{api}/balances", auth=signer(GLOBEX), timeout=5) for _ in range(3)]
    assert {answer.status_code for answer in refused} == {403}
    assert [answer.status_code for answer in globex] == [200] * 3


def test_a_merchants_api_key_is_refused_to_every_other_merchants_signer(api):
    """A key identifies a merchant's plan: a request signed for one merchant carrying another's key is refused
    (403), and spends nothing of the key's merchant's rate."""
    globex_burst = DEV.merchant_rate(DEV.merchants[1]).burst_limit
    with requests.Session() as session:
        borrowed = [
            session.get(f"{api}/balances", auth=signer(ACME, GLOBEX.api_key), timeout=5)
            for _ in range(globex_burst + 2)
        ]
        globex = [session.get(f"{api}/balances", auth=signer(GLOBEX), timeout=5) for _ in range(3)]
    for answer in borrowed:
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "api_key_mismatch") and error["request_id"]
    assert [answer.status_code for answer in globex] == [200] * 3


def test_the_event_reports_the_id_of_the_api_key_the_request_carried(api):
    """As API Gateway reports it (requestContext.identity.apiKeyId): the edge holds it to the signer's merchant's."""
    for credential in (ACME, GLOBEX):
        answer = requests.get(f"{api}/balances", auth=signer(credential), timeout=5)
        assert answer.json() == {"apiKeyId": f"{credential.merchant}-key-id"}
