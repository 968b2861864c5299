"""`make bench-local`: the local stack under load.

Starts `make local` on free ports (timing how long it takes to be ready), then
sends token payments with metadata through the HTTP API with 1 and 8
concurrent clients, and, in the same run against the same moto server, replays
the AWS calls one payment makes (two reads, one velocity query, two
transactions, through the same adapters) with no HTTP API, no handler and no
gateway: that is the ceiling the emulator allows. Goal: the service at >= 70 %
of it. The stage throttle is lifted for the run (PAYMENTS_LOCAL_THROTTLE=off).
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests

from tools.local_process import LocalProcess

PAYMENTS = 96
BATCH = 12
GOAL = 0.70


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(clients: int, count: int, work) -> tuple[float, list[float]]:
    """Wall seconds and latencies (seconds) of ``count`` calls of ``work(n)`` by ``clients`` threads."""

    def timed(n: int) -> float:
        started = time.perf_counter()
        work(n)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(timed, range(count)))
    return time.perf_counter() - started, latencies


def main() -> None:
    local = LocalProcess(PAYMENTS_LOCAL_THROTTLE="off")
    ready = local.start()
    try:
        auth = local.auth()
        token = requests.post(
            f"{local.api}/tokens",
            json={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}},
            timeout=30,
            auth=auth,
        ).json()["token"]
        run_id = uuid.uuid4().hex[:6]

        def pay(n: int) -> None:
            body = {
                "amount": 100 + n,
                "currency": "usd",
                "source": {"token": token},
                "metadata": {"order_id": f"o-{n}"},
            }
            response = requests.post(
                f"{local.api}/payments",
                json=body,
                timeout=60,
                headers={"Idempotency-Key": f"{run_id}-{n}-{time.perf_counter_ns()}"},
                auth=auth,
            )
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code}: {response.text}")

        raw = raw_payment_calls(local)
        # moto's cost per request grows with the table (a transaction deep-copies it), so the
        # scenarios take turns in small batches and each sees the same table sizes.
        results: dict[tuple[str, int], tuple[float, list[float]]] = {}
        for _ in range(PAYMENTS // BATCH):
            for clients in (1, 8):
                for name, work in (("service", pay), ("raw AWS calls", raw)):
                    seconds, latencies = run(clients, BATCH, work)
                    total, all_latencies = results.get((name, clients), (0.0, []))
                    results[(name, clients)] = (total + seconds, all_latencies + latencies)
    finally:
        local.stop()
    print(f"make local ready in {ready:.1f} s (synth, emulator, terraform apply, sandbox, API)\n")
    print(f"{'':16}{'clients':>8}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}", end="   ")
    print(f"({PAYMENTS} payments each, in batches of {BATCH})")
    throughput = {key: len(latencies) / seconds for key, (seconds, latencies) in results.items()}
    for (name, clients), (_, latencies) in sorted(
        results.items(), key=lambda item: (item[0][1], item[0][0] != "service")
    ):
        print(
            f"{name:16}{clients:>8}{throughput[(name, clients)]:>9.1f}{percentile(latencies, 0.5) * 1000:>9.1f}"
            f"{percentile(latencies, 0.99) * 1000:>9.1f}"
        )
    for clients in (1, 8):
        share = throughput[("service", clients)] / throughput[("raw AWS calls", clients)]
        print(f"service / raw ceiling, {clients} client(s): {share:.0%}   (goal >= {GOAL:.0%})")


def raw_payment_calls(local: LocalProcess):
    """One payment's AWS calls, made directly through the adapters against the same emulator."""
    from lambdas.adapters.envelope import EnvelopeCipher
    from lambdas.adapters.idempotency import IdempotencyStore
    from lambdas.adapters.ledger_store import LedgerStore
    from lambdas.domain.cards import MaskedCard
    from lambdas.domain.payments import Payment

    function = local.aws("lambda").get_function_configuration(FunctionName="payments-dev-charge")
    env = function["Environment"]["Variables"]
    dynamodb = local.aws("dynamodb")
    store = LedgerStore(
        dynamodb, env["LEDGER_TABLE"], EnvelopeCipher(local.aws("kms"), env["VAULT_KEY_ID"], "payment-metadata")
    )
    idempotency = IdempotencyStore(dynamodb, env["IDEMPOTENCY_TABLE"])
    card = MaskedCard("visa", "4242", 12, 2030, "fp-bench")

    def one_payment(n: int) -> None:
        record = f"raw-{uuid.uuid4().hex}"
        idempotency.get(record)
        store.get_token("tok_missing")
        now = datetime.now(UTC)
        store.count_payments_since(card.fingerprint, now - timedelta(hours=1))
        payment = Payment(f"pay_{uuid.uuid4().hex[:24]}", 100, "USD", card, now, metadata={"order_id": str(n)})
        store.write([store.new_payment(payment), idempotency.claim(record, "hash", payment.id)])
        settled, entries = payment.succeed("ch_raw", now)
        store.write(
            [
                store.change_payment(payment, settled),
                *store.new_entries(entries),
                idempotency.complete(record, 201, "{}"),
            ]
        )

    return one_payment


if __name__ == "__main__":
    main()
