"""A client checks the ledger without trusting the table: over HTTP (the local API server and the real handlers,
AWS in moto, the Sparkle sandbox), it recomputes a checkpoint's root from API answers alone, and checks its
signature and its link to the checkpoint before it with the public key alone (hashlib and `cryptography`, nothing
of the service's code), as docs/api.md tells a third party to."""

import base64
import hashlib
import json
import threading
from collections.abc import Iterator

import pytest
import requests
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client import InvalidId, NotFound, PaymentsClient, SigV4
from lambdas import bootstrap
from lambdas.handlers import checkpoint as checkpoint_handler
from tests.support.fakes import MERCHANT_A, MERCHANT_B
from tools import local_api
from tools.sigv4 import IssuedCredential

CHAINS = 64  # docs/api.md: each merchant's entries form 64 chains
GENESIS = "0" * 64
KEYS = {
    merchant: IssuedCredential(f"AKIACHECKPOINTS0000{n}", f"secret-{n}", principal, "123456789012")
    for n, (merchant, principal) in enumerate((("merchant-a", MERCHANT_A), ("merchant-b", MERCHANT_B)))
}


@pytest.fixture
def api(aws_env, monkeypatch, tmp_path) -> Iterator[str]:
    """The local API server on a free port, serving the real handlers over moto; the checkpoints' write-once copy
    in a directory, as `make local` keeps it."""
    monkeypatch.setenv("CHECKPOINT_ARCHIVE_DIR", str(tmp_path))
    bootstrap.adapters.cache_clear()
    server = local_api.LocalApi(0, None, 30, {key.access_key_id: key for key in KEYS.values()}, "us-east-1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{local_api.HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _signer(merchant: str) -> SigV4:
    key = KEYS[merchant]
    return SigV4(Credentials(key.access_key_id, key.secret_access_key), "us-east-1")


def _sdk(api: str, merchant: str) -> PaymentsClient:
    return PaymentsClient(api, _signer(merchant), budget_seconds=10)


def _get(api: str, merchant: str, path: str) -> requests.Response:
    return requests.get(f"{api}{path}", auth=_signer(merchant), timeout=30)


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _root(entries: list[dict]) -> str:
    """docs/api.md, GET /ledger/checkpoints/latest: the leaves are where each chain's last entry stands."""
    last = {}
    for entry in sorted(entries, key=lambda e: (e["chain"], e["sequence"])):
        last[entry["chain"]] = entry
    leaves = [{"chain": c, "hash": last[c]["hash"] if c in last else GENESIS,
               "sequence": last[c]["sequence"] if c in last else 0} for c in range(CHAINS)]  # fmt: skip
    level = [hashlib.sha256(b"\x00" + _canonical(leaf)).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def _signed_by(checkpoint: dict, pem: str) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    unsigned = {field: value for field, value in checkpoint.items() if field != "signature"}
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), _canonical(unsigned), ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def _entries_of_every_payment(payments: PaymentsClient) -> list[dict]:
    """Every ledger entry of the merchant, as GET /payments and GET /payments/{id}/ledger answer."""
    return [
        {"chain": e.chain, "sequence": e.sequence, "hash": e.hash}
        for payment in payments.payments()
        for e in payments.ledger(payment.id)
    ]


def _checkpoint_now() -> None:
    """The scheduled checkpoint function's run (deployed: every 5 minutes)."""
    assert checkpoint_handler.handler({"source": "aws.events"}, None)["written"] >= 1


def _pay(payments: PaymentsClient, amount: int) -> str:
    token = payments.tokenize("4242424242424242", 12, 2030)
    return payments.pay(amount, "usd", token=token.token).id


def test_a_client_recomputes_a_checkpoints_root_and_checks_its_signature_and_link_from_api_answers_alone(api):
    payments = _sdk(api, "merchant-a")
    for amount in (1000, 2000, 3000):
        _pay(payments, amount)
    entries_then = _entries_of_every_payment(payments)
    _checkpoint_now()
    refunded = _pay(payments, 4000)
    payments.refund(refunded, 1500)
    _pay(payments, 5000)
    entries_now = _entries_of_every_payment(payments)
    _checkpoint_now()

    pem = payments.public_key().pem
    latest = payments.latest_checkpoint().signed
    listed = [checkpoint.signed for checkpoint in payments.checkpoints(page_size=1)]  # newest first, page by page
    assert [c["sequence"] for c in listed] == [2, 1] and listed[0] == latest
    first, second = (payments.checkpoint(n).signed for n in (1, 2))
    assert (first, second) == (listed[1], listed[0])
    assert len(entries_now) == len(entries_then) + 6 and all(e["chain"] in range(CHAINS) for e in entries_now)
    assert _root(entries_then) == first["root"] and _root(entries_now) == second["root"]
    assert _signed_by(first, pem) and _signed_by(second, pem)
    assert not _signed_by(second | {"root": first["root"]}, pem)
    assert first["previous"] is None and first["merchant"] == "merchant-a"
    assert second["previous"] == hashlib.sha256(_canonical(first)).hexdigest()


def test_checkpoints_are_listed_and_read_only_for_the_callers_merchant(api):
    a, b = _sdk(api, "merchant-a"), _sdk(api, "merchant-b")
    _pay(a, 1000)
    _checkpoint_now()
    _pay(a, 2000)
    _checkpoint_now()
    assert [c.sequence for c in a.checkpoints()] == [2, 1]
    assert [c.sequence for c in b.checkpoints()] == [1]  # its own (empty) ledger's, not merchant A's
    assert b.checkpoint(1).root != a.checkpoint(1).root
    with pytest.raises(NotFound):
        b.checkpoint(2)  # merchant A's second is unknown to B, as an id of another merchant is
    assert a.checkpoint(2).signed == a.latest_checkpoint().signed


def test_paging_refuses_a_cursor_that_is_not_one_of_the_merchants_checkpoints(api):
    a = _sdk(api, "merchant-a")
    _pay(a, 1000)
    _checkpoint_now()
    _pay(a, 2000)
    _checkpoint_now()
    page = _get(api, "merchant-a", "/ledger/checkpoints?limit=1").json()
    assert [c["sequence"] for c in page["data"]] == [2] and page["has_more"] is True
    page = _get(api, "merchant-a", "/ledger/checkpoints?limit=1&starting_after=2").json()
    assert [c["sequence"] for c in page["data"]] == [1] and page["has_more"] is False
    for cursor in ("2", "0", "x", "-1", "%EF%BC%91"):  # merchant B has no checkpoint 2; a fullwidth 1 is no number
        refused = _get(api, "merchant-b", f"/ledger/checkpoints?starting_after={cursor}")
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "starting_after", cursor
    for path in ("/ledger/checkpoints/3", "/ledger/checkpoints/0", "/ledger/checkpoints/x"):
        assert _get(api, "merchant-a", path).status_code == 404, path
    with pytest.raises(InvalidId):
        a.checkpoint(0)  # refused before anything is sent


def test_the_routes_answer_unsigned_requests_with_403(api):
    for path in ("/ledger/checkpoints", "/ledger/checkpoints/1"):
        assert requests.get(f"{api}{path}", timeout=10).status_code == 403
