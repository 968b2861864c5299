"""Nothing stored can be computed from card data without a KMS key (api-contract.md, Idempotency).

An attacker who reads both tables and knows everything about the requests but the card (its BIN and last four
digits included) tries every card number and CVC those leave open: 10^5 Luhn-valid numbers, then 10^3 CVCs for the
true number. For each, the plain digests (MD5, SHA-1, SHA-256) of the number alone, of the CVC alone and of every
request that carried card data (as sent, canonical, and wrapped with its path as a plain body hash would be) must match
no stored value, in hex or base64, whole or inside a longer value."""

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3

from tests.service_fixtures import REGION
from tests.support.events import body_of, invoke

PAN, CVC = "4242424242424242", "737"
BIN, LAST4 = PAN[:6], PAN[-4:]
PAN_MARK, CVC_MARK = "<pan>", "<cvc>"  # where a candidate goes in a request template
ALGORITHMS = (hashlib.md5, hashlib.sha1, hashlib.sha256)
DIGEST_SIZES = (16, 20, 32)
HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{22,}")

TOKEN_REQUEST = {"card": {"number": PAN_MARK, "exp_month": 12, "exp_year": 2030, "holder_name": "A. Lovelace"}}
CARD_PAYMENT = {"amount": 1999, "currency": "usd",
                "source": {"card": {"number": PAN_MARK, "exp_month": 12, "exp_year": 2030, "cvc": CVC_MARK}},
                "description": "Order A-1001", "metadata": {"order_id": "A-1001"}}  # fmt: skip


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sent(template: dict) -> str:
    """The body exactly as the test sends it (json.dumps' defaults, key order as written)."""
    return json.dumps(template)


def filled(text: str) -> str:
    return text.replace(PAN_MARK, PAN).replace(CVC_MARK, CVC)


def templates() -> dict[str, str]:
    """Every text an attacker would hash, with the card data marked. Both requests were sent to routes without path
    parameters, so a plain body hash would wrap them with an empty path."""
    texts = {"the card number alone": PAN_MARK, "the CVC alone": CVC_MARK}
    for name, body in (("the token request", TOKEN_REQUEST), ("the card payment", CARD_PAYMENT)):
        texts |= {f"{name} as sent": sent(body), f"{name} canonical": canonical(body),
                  f"{name} wrapped with its path": canonical({"body": body, "path": {}})}  # fmt: skip
    return texts


def luhn_sum(number: str) -> int:
    digits = [int(d) for d in reversed(number)]
    return sum(d if place % 2 == 0 else (2 * d) // 10 + (2 * d) % 10 for place, d in enumerate(digits))


def candidate_pans() -> list[str]:
    """Every 16-digit number with the known BIN and last four that passes Luhn. The sixth unknown digit sits at an
    even place from the right (never doubled), so one value of it completes each choice of the other five."""
    pans = []
    for middle in range(10**5):
        stem = f"{BIN}{middle:05d}"
        pans.append(f"{stem}{-luhn_sum(f'{stem}0{LAST4}') % 10}{LAST4}")
    return pans


# --- what is stored -----------------------------------------------------------------------------


def stored_values(items: list[dict]) -> Iterator[str | bytes]:
    """Every attribute name and every scalar of the items (DynamoDB's typed JSON), inside maps and lists too."""
    for item in items:
        for name, typed in item.items():
            yield name
            yield from _scalars(typed)


def _scalars(typed: dict) -> Iterator[str | bytes]:
    ((kind, value),) = typed.items()
    if kind in ("S", "N", "B"):
        yield value
    elif kind in ("SS", "NS", "BS"):
        yield from value
    elif kind == "M":
        yield from stored_values([value])
    elif kind == "L":
        for element in value:
            yield from _scalars(element)


def _base64(run: str) -> bytes:
    run = run.replace("-", "+").replace("_", "/")
    run = run[: len(run) - (len(run) % 4 == 1)]
    return base64.b64decode(run + "=" * (-len(run) % 4))


def decodings(value: str | bytes) -> Iterator[bytes]:
    """The raw bytes a value holds: itself, and every hex or base64 run in it, decoded at every alignment."""
    raw = bytes(value) if isinstance(value, (bytes, bytearray)) else value.encode()
    yield raw
    text = raw.decode("latin-1")
    for run in HEX_RUN.findall(text):
        for start in (0, 1):
            part = run[start:]
            yield bytes.fromhex(part[: len(part) // 2 * 2])
    for run in BASE64_RUN.findall(text):
        for start in range(4):
            yield _base64(run[start:])


def digest_windows(values) -> set[bytes]:
    """Every digest-sized slice of every decoding of the values: a digest stored in any of those forms is one."""
    windows = set()
    for value in values:
        for blob in decodings(value):
            windows |= {blob[i : i + size] for size in DIGEST_SIZES for i in range(len(blob) - size + 1)}
    return windows


# --- the attack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    text: str  # which template
    card: str  # "the true card" or "another candidate": never the digits themselves
    algorithm: str
    digest: bytes = field(repr=False)


def attack(windows: set[bytes]) -> list[Match]:
    """Every plain digest of a candidate's texts that is among ``windows``: every number with the true CVC, then
    every CVC with the true number."""
    searches = ((PAN_MARK, candidate_pans(), PAN), (CVC_MARK, [f"{n:03d}" for n in range(1000)], CVC))
    matches = []
    for name, template in templates().items():
        for mark, candidates, truth in searches:
            parts = [filled(part).encode() for part in template.split(mark)]  # the other datum is the true one
            if len(parts) == 1:
                continue  # this text does not hold this datum
            for candidate in candidates:
                message = candidate.encode().join(parts)
                for algorithm in ALGORITHMS:
                    digest = algorithm(message).digest()
                    if digest in windows:
                        card = "the true card" if candidate == truth else "another candidate"
                        matches.append(Match(name, card, algorithm(b"").name, digest))
    return matches


def plain_body_hash(body: dict) -> str:
    """A request digest computed without a key: the plain SHA-256 of the body wrapped with its path."""
    return hashlib.sha256(canonical({"body": body, "path": {}}).encode()).hexdigest()


# --- the tests ----------------------------------------------------------------------------------


def test_the_candidates_are_every_luhn_valid_number_with_the_known_bin_and_last4():
    pans = candidate_pans()
    assert len(set(pans)) == 10**5 and PAN in pans  # a tenth of the 10^6 numbers the BIN and last four leave
    assert all(len(p) == 16 and p.startswith(BIN) and p.endswith(LAST4) and luhn_sum(p) % 10 == 0 for p in pans)


def test_no_stored_value_is_a_plain_digest_of_card_data(aws_env, sandbox):
    token = invoke("POST", "/tokens", raw_body=filled(sent(TOKEN_REQUEST)), headers={"Idempotency-Key": "token"})
    assert token["statusCode"] == 201, token["body"]
    paid = invoke("POST", "/payments", raw_body=filled(sent(CARD_PAYMENT)), headers={"Idempotency-Key": "card"})
    assert paid["statusCode"] == 201, paid["body"]
    token_payment = {"amount": 500, "currency": "usd", "source": {"token": body_of(token)["token"]}}
    by_token = invoke("POST", "/payments", token_payment, headers={"Idempotency-Key": "by-token"})
    assert by_token["statusCode"] == 201, by_token["body"]
    refund = invoke("POST", f"/payments/{body_of(paid)['id']}/refunds", {"amount": 400},
                    headers={"Idempotency-Key": "refund"})  # fmt: skip
    assert refund["statusCode"] == 201, refund["body"]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    ledger, keys = (dynamodb.scan(TableName=aws_env[name])["Items"] for name in ("LEDGER_TABLE", "IDEMPOTENCY_TABLE"))
    assert len(keys) >= 4  # at least the token's key, both payments' and the refund's, each recognising its body

    stored = digest_windows(stored_values(ledger + keys))
    # The detector's self-check, against the same stored values: a plain body hash, a digest of the number
    # alone in base64 three characters into a JSON string, and a binary digest of a request are each found.
    number_digest = base64.urlsafe_b64encode(hashlib.sha1(PAN.encode()).digest()).decode().rstrip("=")
    planted = {
        "plain body hash": plain_body_hash(json.loads(filled(sent(CARD_PAYMENT)))),
        "base64 inside JSON": json.dumps({"seen": f"fp_{number_digest}"}),
        "binary": hashlib.md5(filled(canonical(TOKEN_REQUEST)).encode()).digest(),
    }
    planted_windows = {name: digest_windows([value]) for name, value in planted.items()}
    matches = attack(stored.union(*planted_windows.values()))

    assert [(m.text, m.card, m.algorithm) for m in matches if m.digest in stored] == []
    found = {name for name, windows in planted_windows.items() for m in matches if m.digest in windows}
    assert found == set(planted)
    assert {(m.text, m.card, m.algorithm) for m in matches if m.digest in planted_windows["plain body hash"]} == {
        ("the card payment wrapped with its path", "the true card", "sha256")
    }
