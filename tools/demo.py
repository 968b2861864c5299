"""`make demo`: walks through the API of a running `make local` with the SDK (``client``), signed as the first
dev merchant: vault a card, pay with the token, replay the same key, lose the gateway's answer and let the SDK's
retry settle it without a second charge, refund half, read the ledger, and a declined card; authorise a payment,
capture part of it and read its hold in the ledger, authorise another and cancel it; then shows that another merchant
cannot see the payment."""

import json
import os
import sys
import uuid
from dataclasses import asdict

import requests

from client import CardDeclined, NotFound, PaymentsClient, PaymentStatusConflict, SigV4
from stacks.config import DEV
from tools.local import ports
from tools.local_credentials import credentials_path

API = os.environ.get("PAYMENTS_API_URL", f"http://127.0.0.1:{ports()['api']}")
SANDBOX = f"http://127.0.0.1:{ports()['sandbox']}"


def show(title: str, result: object) -> None:
    print(f"\n## {title}")
    print(json.dumps(asdict(result) if not isinstance(result, list) else [asdict(r) for r in result], indent=2))


def sandbox_charges() -> int:
    return len(requests.get(f"{SANDBOX}/_sandbox/charges", timeout=5).json()["data"])


def authorise_then_capture(client: PaymentsClient, token: str) -> None:
    held = client.authorize(3000, "usd", token=token, description="Demo order, shipped in part")
    show("Authorise only: requires_capture, the card holds 3000 until capture_before", held)
    show("Capture 1800 of it: the other 1200 is released at the gateway", client.capture(held.id, 1800))
    try:
        client.cancel(held.id)
    except PaymentStatusConflict as refused:
        print(f"\n## Cancel it after the capture\n{refused.status} {refused.type}: {refused.code}")
    entries = client.ledger(held.id)
    show(
        "Its ledger: the hold (authorization_hold against authorization_hold_offset), its reversal, the capture",
        entries,
    )
    released = client.cancel(client.authorize(500, "usd", token=token).id)
    show("Authorise another and cancel it: canceled, its hold reversed", released)


def main() -> None:
    credentials = credentials_path()
    if not credentials.exists():
        sys.exit(f"no {credentials}: start `make local` first (in another terminal)")
    merchants = [merchant.id for merchant in DEV.merchants]
    acme, globex = (PaymentsClient(API, SigV4.from_chain(m, credentials_file=str(credentials))) for m in merchants[:2])
    try:
        token = acme.tokenize("4242424242424242", 12, 2030)
    except requests.ConnectionError:
        sys.exit(f"nothing answers on {API}: start `make local` first (in another terminal)")
    run = uuid.uuid4().hex[:8]
    show(f"Vault a card (signed as {merchants[0]})", token)
    paid = acme.pay(2000, "usd", token=token.token, description="Demo order", metadata={"order_id": run}, key=run)
    show("Pay with the token", paid)
    show("The same call with the same key: replayed, nothing charged twice", acme.pay(
        2000, "usd", token=token.token, description="Demo order", metadata={"order_id": run}, key=run))  # fmt: skip

    before = sandbox_charges()
    requests.post(f"{SANDBOX}/_sandbox/faults", json={"drop_rate": 1.0}, timeout=5)  # charges, then loses the answer
    try:
        settled = acme.pay(1500, "usd", token=token.token)
    finally:
        requests.post(f"{SANDBOX}/_sandbox/faults", json={"drop_rate": 0.0}, timeout=5)
    show(f"The gateway's answer is lost (504); the SDK retries with the same key: settled, "
         f"{sandbox_charges() - before} charge at the gateway", settled)  # fmt: skip

    show("Refund half", acme.refund(paid.id, 1000))
    show("Read the payment", acme.payment(paid.id))
    show("Its ledger: debits equal credits, the refund only added entries", acme.ledger(paid.id))
    authorise_then_capture(acme, token.token)
    try:
        acme.pay(500, "usd", card={"number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"})
    except CardDeclined as declined:
        print(f"\n## A declined card\n{declined.status} {declined.type}: decline_code={declined.decline_code}")
    try:
        globex.payment(paid.id)
    except NotFound as not_found:
        print(f"\n## {merchants[1]} reads {merchants[0]}'s payment\n{not_found.status}: {not_found.message}")


if __name__ == "__main__":
    main()
