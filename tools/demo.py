"""`make demo`: walks through the API of a running `make local` with the SDK (``client``), signed as the first
dev merchant: vault a card, pay with the token, replay the same key, lose the gateway's answer and let the SDK's
retry settle it without a second charge, refund half, read the ledger, and a declined card; authorise a payment,
capture part of it and read its hold in the ledger, authorise another and cancel it; a payment's event arriving at a
webhook receiver on this machine, verified by the SDK from the raw body; then shows that another merchant cannot see
the payment."""

import itertools
import json
import os
import queue
import sys
import threading
import time
import uuid
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from client import (
    CardDeclined,
    Delivery,
    NotFound,
    PaymentsClient,
    PaymentStatusConflict,
    SigV4,
    WebhookSignatureError,
    verify_webhook,
)
from stacks.config import DEV
from tools.local import ports
from tools.local_credentials import credentials_path

API = os.environ.get("PAYMENTS_API_URL", f"http://127.0.0.1:{ports()['api']}")
SANDBOX = f"http://127.0.0.1:{ports()['sandbox']}"
DELIVERY_WAIT_SECONDS = 30  # `make local` delivers every second


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


def receiver(deliveries: "queue.Queue[tuple[bytes, str]]") -> ThreadingHTTPServer:
    """A merchant's webhook receiver on a free local port: keeps each delivery's raw body and signature header."""

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            deliveries.put((self.rfile.read(int(self.headers["Content-Length"])), self.headers["Payments-Signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def recorded_deliveries(client: PaymentsClient, event_id: str) -> list[Delivery]:
    """The event's attempts, once the delivery that reached the receiver is recorded (just after its answer)."""
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while not (deliveries := client.event_deliveries(event_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return deliveries


def webhook_of_a_payment(client: PaymentsClient, token: str) -> None:
    """Registers the receiver, pays, and verifies the payment's event when it arrives; a changed body is refused."""
    deliveries: queue.Queue[tuple[bytes, str]] = queue.Queue()
    server = receiver(deliveries)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    endpoint = client.create_webhook_endpoint(url, ["payment.succeeded", "refund.succeeded"])
    print(f"\n## A webhook endpoint for a receiver on this machine\n{endpoint.id} at {url}, {list(endpoint.events)}")
    secret = endpoint.secret or ""
    try:
        paid = client.pay(1200, "usd", token=token, description="Demo order, told by webhook")
        deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
        while True:
            body, signature = deliveries.get(timeout=max(deadline - time.monotonic(), 0.1))
            event = verify_webhook(body, signature, secret)
            if event.object_id == paid.id:
                break
        print(f"\n## Its event arrived, signed ({signature[:24]}…), verified by the SDK from the raw body")
        print(f"{event.type} {event.id} created {event.created_at}; data.object, typed:")
        print(json.dumps(event.object if isinstance(event.object, dict) else asdict(event.object), indent=2))
        try:
            verify_webhook(body.replace(b"1200", b"1"), signature, secret)
        except WebhookSignatureError as refused:
            print(f"\n## The same delivery with its amount changed\nrefused: {refused.reason}")
        show(
            "Its deliveries (each attempt's endpoint, time, and status or error)", recorded_deliveries(client, event.id)
        )
        latest = [f"{e.type} {e.id} {e.object_id}" for e in itertools.islice(client.events("payment.succeeded"), 3)]
        print("\n## GET /events?type=payment.succeeded, newest first\n" + "\n".join(latest))
    except queue.Empty:
        sys.exit(f"no webhook arrived within {DELIVERY_WAIT_SECONDS} s: is `make local` delivering?")
    finally:
        client.delete_webhook_endpoint(endpoint.id)
        server.shutdown()


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
    webhook_of_a_payment(acme, token.token)
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
