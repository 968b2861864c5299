"""`make demo`: walks through the API of a running `make local`, printing each
request and the real response: vault a card, pay with the token, replay the
same key, refund half, read the ledger, and a declined card."""

import json
import os
import sys
import uuid

import requests

from lambdas.logs import mask_card_data
from tools.local import ports

API = os.environ.get("PAYMENTS_API_URL", f"http://127.0.0.1:{ports()['api']}")


def call(title: str, method: str, path: str, body=None, key: str | None = None) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    print(f"\n## {title}\n$ {method} {path}" + (f"  (Idempotency-Key: {key})" if key else ""))
    if body is not None:
        print(mask_card_data(json.dumps(body)))  # even a sandbox test card is not echoed
    response = requests.request(method, f"{API}{path}", json=body, headers=headers, timeout=60)
    replayed = response.headers.get("Idempotent-Replayed")
    print(f"-> {response.status_code}" + (f"  Idempotent-Replayed: {replayed}" if replayed else ""))
    print(json.dumps(response.json(), indent=2))
    return response.json()


def main() -> None:
    try:
        requests.get(f"{API}/openapi.json", timeout=5)
    except requests.ConnectionError:
        sys.exit(f"nothing answers on {API}: start `make local` first (in another terminal)")
    run = uuid.uuid4().hex[:8]
    token = call(
        "Vault a card", "POST", "/tokens", {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}}
    )["token"]
    payment = {
        "amount": 2000,
        "currency": "usd",
        "source": {"token": token},
        "description": "Demo order",
        "metadata": {"order_id": f"demo-{run}"},
    }
    paid = call("Pay with the token", "POST", "/payments", payment, key=f"order-{run}")
    call(
        "Replay the same request with the same key: nothing is charged twice",
        "POST",
        "/payments",
        payment,
        key=f"order-{run}",
    )
    call("Refund half", "POST", f"/payments/{paid['id']}/refunds", {"amount": 1000}, key=f"refund-{run}")
    call("Read the payment", "GET", f"/payments/{paid['id']}")
    call(
        "Read its ledger: debits equal credits, the refund only added entries", "GET", f"/payments/{paid['id']}/ledger"
    )
    call(
        "A declined card",
        "POST",
        "/payments",
        {
            "amount": 500,
            "currency": "usd",
            "source": {"card": {"number": "4000000000000002", "exp_month": 12, "exp_year": 2030, "cvc": "123"}},
        },
        key=f"declined-{run}",
    )


if __name__ == "__main__":
    main()
