"""`make bench-local`: the local stack's start and its payments per second.

Starts `make local` on free ports and prints how long it took to be ready, phase by phase (its own account of
them). Then token payments with metadata through the HTTP API by 1 and 8 concurrent clients and, in the same run
against the same moto server, the ceiling the emulator allows: the AWS requests one payment makes (recorded here
from a payment through the charge handler), sent straight to the emulator by the same number of threads, with no
HTTP API, no handler and no gateway. The writes go to fresh keys without their conditions (the chains' heads and
the idempotency records would refuse a second copy): the same operations, tables and item counts. Goal: the
service at >= 80 % of it. The throttles are lifted for the run (PAYMENTS_LOCAL_THROTTLE=off).
"""

import copy
import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from functools import cache
from typing import Any

import boto3
import requests

from stacks.config import DEV
from tools.local_process import LocalProcess
from tools.terraform import TerraformWorkspace

PAYMENTS = 96
BATCH = 12
GOAL = 0.80
REPLAYED = ("dynamodb", "kms")  # the services a payment's requests are replayed to
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
Request = tuple[str, str, dict[str, Any]]  # service, operation, parameters


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(clients: int, count: int, work: Callable[[int], None]) -> tuple[float, list[float]]:
    """Wall seconds and latencies (seconds) of ``count`` calls of ``work(n)`` by ``clients`` threads."""

    def timed(n: int) -> float:
        started = time.perf_counter()
        work(n)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(timed, range(count)))
    return time.perf_counter() - started, latencies


def payment_body(n: int, token: str) -> Any:
    return {"amount": 100 + n, "currency": "usd", "source": {"token": token}, "metadata": {"order_id": f"o-{n}"}}


def tokenize(local: LocalProcess) -> str:
    card: Any = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
    response = requests.post(f"{local.api}/tokens", json={"card": card}, timeout=30, auth=local.auth())
    return str(response.json()["token"])


def service_payments(local: LocalProcess, token: str, failed: list[str]) -> Callable[[int], None]:
    """One payment through the HTTP API, signed as the first dev merchant; an answer other than 201 is added to
    ``failed`` (a gateway that a loaded machine makes late answers 504)."""
    auth, run_id = local.auth(), uuid.uuid4().hex[:6]

    def pay(n: int) -> None:
        response = requests.post(
            f"{local.api}/payments",
            json=payment_body(n, token),
            timeout=60,
            headers={"Idempotency-Key": f"{run_id}-{n}-{uuid.uuid4().hex}"},
            auth=auth,
        )
        if response.status_code != 201:
            failed.append(f"{response.status_code}: {response.text}")

    return pay


def main() -> None:
    local = LocalProcess(PAYMENTS_LOCAL_THROTTLE="off")
    ready = local.start()
    print_start(local, ready)
    failed: list[str] = []
    try:
        token = tokenize(local)
        pay = service_payments(local, token, failed)
        raw = raw_payment_requests(local, token)
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
    print_throughput(results)
    if failed:
        print(f"{len(failed)} of the service's payments failed, first: {failed[0]}")


def print_start(local: LocalProcess, ready: float) -> None:
    print(f"make local ready in {ready:.1f} s (from its start to `ready`, as a user waits), of which:")
    for line in local.startup_phases():
        print(f"  {line}")
    print(flush=True)


def print_throughput(results: dict[tuple[str, int], tuple[float, list[float]]]) -> None:
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


def raw_payment_requests(local: LocalProcess, token: str) -> Callable[[int], None]:
    """One payment's DynamoDB and KMS requests, sent straight to the emulator (writes to fresh keys)."""
    recorded = recorded_payment(local, token)
    clients = {service: local.aws(service) for service in REPLAYED}
    operations = Counter(f"{service} {operation}" for service, operation, _ in recorded)
    print("the ceiling sends a payment's requests:", ", ".join(f"{name} {n}" for name, n in sorted(operations.items())))

    def one_payment(n: int) -> None:
        fresh = f"raw-{uuid.uuid4().hex}"
        for service, operation, parameters in recorded:
            client = clients[service]
            sent = (
                fresh_request(client, operation, parameters, fresh)
                if service == "dynamodb"
                else (operation, parameters)
            )
            client._make_api_call(*sent)  # the operation by its API name

    return one_payment


def recorded_payment(local: LocalProcess, token: str) -> list[Request]:
    """The DynamoDB and KMS requests of one payment, run in this process through the charge handler as `make local`
    runs it (its deployed environment, the emulator, the sandbox); the second of two, as a warm function makes it."""
    from lambdas.routes import Function
    from tools import local as local_stack
    from tools.api_events import api_event, invoke
    from tools.local_credentials import _local_user

    merchant = DEV.merchants[0]
    local_stack.configure_functions(local.emulator, DEV.region, DEV.function_name(Function.CHARGE.value), local.sandbox)
    api_key_ids: Any = TerraformWorkspace(local.state_file().parent).outputs()["merchant_api_key_ids"]
    recorded: list[Request] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        service, operation = event_name.split(".")[1:]
        if service in REPLAYED:
            recorded.append((service, operation, copy.deepcopy(params)))

    for n in range(2):
        event = api_event(
            "POST",
            "/payments",
            payment_body(n, token),
            headers={"Idempotency-Key": f"recorded-{uuid.uuid4().hex}"},
            caller=_local_user(merchant.principals) or "",
            api_key_id=api_key_ids[merchant.id],
        )
        recorded.clear()
        boto3.DEFAULT_SESSION.events.register("provide-client-params.*.*", record)
        logging.disable(logging.INFO)  # the handler's log lines, and its metrics below, stay out of the report
        try:
            with redirect_stdout(io.StringIO()):
                answer = invoke(event)
        finally:
            logging.disable(logging.NOTSET)
            boto3.DEFAULT_SESSION.events.unregister("provide-client-params.*.*", record)
        if answer["statusCode"] != 201:
            raise RuntimeError(f"the recorded payment failed: {answer['statusCode']} {answer['body']}")
    return recorded


def fresh_request(client: Any, operation: str, parameters: dict[str, Any], fresh: str) -> tuple[str, dict[str, Any]]:
    """A DynamoDB request as the ceiling sends it: reads as they were, writes as puts to keys of their own
    (``fresh``), without conditions."""
    if operation == "TransactWriteItems":
        items = [fresh_transact_item(client, item, fresh) for item in parameters["TransactItems"]]
        return operation, {"TransactItems": items}
    if operation in WRITES:
        return "PutItem", unconditional_put(client, parameters, fresh)
    return operation, parameters


def fresh_transact_item(client: Any, item: dict[str, Any], fresh: str) -> dict[str, Any]:
    ((kind, write),) = item.items()
    if kind == "ConditionCheck":
        key = fresh_key(client, write["TableName"], write["Key"], fresh)
        check = {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": next(iter(key))}}
        return {"ConditionCheck": {"TableName": write["TableName"], "Key": key, **check}}
    return {"Put": unconditional_put(client, write, fresh)}


def unconditional_put(client: Any, write: dict[str, Any], fresh: str) -> dict[str, Any]:
    """A Put of as much data as ``write`` carries (an item, or an update's values), under a fresh key."""
    table = write["TableName"]
    values = write.get("Item") or {
        **write["Key"],
        **{f"v{n}": value for n, value in enumerate(write.get("ExpressionAttributeValues", {}).values())},
    }
    keys = {name: values[name] for name in key_names(client, table) if name in values}
    return {"TableName": table, "Item": {**values, **fresh_key(client, table, keys or write["Key"], fresh)}}


def fresh_key(client: Any, table: str, key: dict[str, Any], fresh: str) -> dict[str, Any]:
    partition = key_names(client, table)[0]
    return {**key, partition: {"S": f"{json.dumps(key[partition])}#{fresh}"}}


@cache
def key_names(client: Any, table: str) -> tuple[str, ...]:
    """The table's key attributes, its partition key first."""
    schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
    return tuple(part["AttributeName"] for part in sorted(schema, key=lambda part: part["KeyType"] != "HASH"))


if __name__ == "__main__":
    main()
