"""The access model: every function driven through its use cases against moto, each AWS call it makes
recorded from botocore, the calls AWS makes on its behalf added, and every one of them decided against the
synthesized dev stack's policies as IAM and KMS would. moto checks no policy at all, so this is where a missing
grant shows. Then the calls that must be refused, and every grant statement removed in turn: each removal must
refuse at least one recorded call, or the grant is superfluous (or the recording misses a call)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import clear_caches
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from moto import mock_aws

from lambdas import bootstrap
from lambdas.adapters.dynamo import to_item
from lambdas.domain.checkpoints import signature_holds
from lambdas.handlers import checkpoint as checkpoint_handler
from lambdas.handlers import deliver as deliver_handler
from lambdas.handlers import reconcile as reconcile_handler
from lambdas.handlers import settle as settle_handler
from lambdas.ports import Sent
from lambdas.routes import Function
from lambdas.storage_schema import IDEMPOTENCY, LEDGER, MERCHANTS, Partition, merchant_items
from lambdas.use_cases import utc_now
from sparkle_sandbox.server import DEFAULT_SECRET_KEY
from tests.conftest import ENVIRONMENTS, REPO
from tests.service_fixtures import REGION, Sandbox
from tests.support.access_model import ACCOUNT, Recorded, Recorder, References, StackModel, load
from tests.support.cases import assert_holds_for_each
from tests.support.events import body_of, invoke
from tests.support.fakes_webhooks import FakeSender
from tests.support.iam_eval import Decision, Request, statements_from_json
from tools.api_events import route_for
from tools.emulator import EMULATOR_CREDENTIALS
from tools.function_resources import create_table

ACME = f"arn:aws:iam::{ACCOUNT}:user/acme-checkout"  # dev's merchants (stacks/config.py)
GLOBEX = f"arn:aws:iam::{ACCOUNT}:user/globex-billing"
VISA = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030}
PROCESSING_ERROR = {**VISA, "number": "4000000000000119", "cvc": "737"}  # the sandbox charges nothing: a 502
DECLINED = {**VISA, "number": "4000000000000002", "cvc": "737"}
SCHEMAS = (LEDGER, IDEMPOTENCY, MERCHANTS)


class Driver:
    """Invokes each function's handler as Lambda would, with its calls attributed to it, each function in a container
    of its own: its adapters (clients, data-key caches) and its cached gateway secret are not another's."""

    def __init__(self, recorder: Recorder, monkeypatch) -> None:
        self.recorder = recorder
        self.containers: dict[Function, tuple[bootstrap.AwsAdapters, dict]] = {}
        self.running: Function | None = None
        self.new_container = bootstrap.adapters.__wrapped__  # the adapters as a cold start builds them
        monkeypatch.setattr(bootstrap, "adapters", self.adapters)
        monkeypatch.setattr(settle_handler, "adapters", self.adapters)  # it holds bootstrap's own

    def adapters(self) -> bootstrap.AwsAdapters:
        assert self.running is not None, "a handler ran outside Driver.invoking"
        return self.containers[self.running][0]

    @contextmanager
    def invoking(self, function: Function, asynchronous: bool = False, cold: bool = False) -> Iterator[None]:
        """``cold``: in a new container (Lambda runs a function in many), with nothing cached. An invocation inside
        another's runs meanwhile (a scheduled run while a request waits on the gateway), and the other goes on after."""
        if cold or function not in self.containers:
            self.containers[function] = (self.new_container(), {})
        providers = self.containers[function][1]
        outer, outer_providers = self.running, dict(DEFAULT_PROVIDERS)
        DEFAULT_PROVIDERS.clear()
        DEFAULT_PROVIDERS.update(providers)
        self.running = function
        try:
            with self.recorder.invoking(function, asynchronous):
                yield
        finally:
            self.running = outer
            providers.clear()
            providers.update(DEFAULT_PROVIDERS)
            DEFAULT_PROVIDERS.clear()
            DEFAULT_PROVIDERS.update(outer_providers)
        assert self.recorder.errors == []

    def api(self, method: str, path: str, body=None, key=None, caller: str = ACME, cold: bool = False) -> dict:
        route, _ = route_for(method, path.partition("?")[0])
        assert route is not None
        with self.invoking(route.function, cold=cold):
            return invoke(method, path, body, headers={"Idempotency-Key": key} if key else None, caller=caller)

    def pay(self, source: dict, key: str, cold: bool = False, **fields) -> dict:
        body = {"amount": 1000, "currency": "usd", "source": source, **fields}
        return self.api("POST", "/payments", body, key, cold=cold)


def drive(driver: Driver, sandbox: Sandbox) -> None:
    """Every function through its use cases: the success paths, replays, declines, lost answers and their
    reconciliation, reads by the owner and by another merchant, and a failing scheduled run."""
    api = driver.api
    created = api("POST", "/tokens", {"card": VISA})
    assert created["statusCode"] == 201, created["body"]
    token = body_of(created)["token"]
    assert api("POST", "/tokens", {"card": VISA}, key="tok-1")["statusCode"] == 201
    assert api("POST", "/tokens", {"card": VISA}, key="tok-1")["headers"].get("Idempotent-Replayed")

    paid = driver.pay({"token": token}, "pay-1", metadata={"order_id": "A-1"})
    assert paid["statusCode"] == 201, paid["body"]
    payment = body_of(paid)["id"]
    replayed = driver.pay({"token": token}, "pay-1", cold=True, metadata={"order_id": "A-1"})  # opens the stored answer
    assert replayed["headers"].get("Idempotent-Replayed")
    unsettled = driver.pay({"card": {**VISA, "cvc": "737"}}, "pay-2")
    assert unsettled["statusCode"] == 201
    assert driver.pay({"card": DECLINED}, "pay-3")["statusCode"] == 402
    assert driver.pay({"card": PROCESSING_ERROR}, "pay-4")["statusCode"] == 502  # pending, no charge
    sandbox.faults(drop_rate=1.0)
    assert driver.pay({"token": token}, "pay-5")["statusCode"] == 504  # charged, the answer lost: pending
    sandbox.faults(drop_rate=0.0)

    read = api("GET", f"/payments/{payment}")
    assert read["statusCode"] == 200 and body_of(read)["metadata"] == {"order_id": "A-1"}
    assert api("GET", f"/payments/{payment}/ledger")["statusCode"] == 200
    assert api("GET", f"/payments/{payment}", caller=GLOBEX)["statusCode"] == 404  # another merchant's payment
    assert api("GET", "/payments/pay_000000000000000000000000")["statusCode"] == 404

    refund_path = f"/payments/{payment}/refunds"
    assert api("POST", refund_path, {"amount": 400}, key="ref-1")["statusCode"] == 201
    assert api("POST", refund_path, {"amount": 400}, key="ref-1")["headers"].get("Idempotent-Replayed")
    assert api("POST", refund_path, {"amount": 10_000}, key="ref-3")["statusCode"] == 400  # more than is left
    sandbox.faults(drop_rate=1.0)
    assert api("POST", refund_path, {"amount": 100}, key="ref-2")["statusCode"] == 504  # refunded, answer lost
    sandbox.faults(drop_rate=0.0)

    # Two hours on: the lost answers are settled, the payment the gateway never charged is given up.
    counts = reconcile_later(driver, timedelta(hours=2))
    assert counts["settled"] == 2 and counts["failed"] == 1, counts
    assert body_of(api("GET", f"/payments/{payment}"))["amount_refunded"] == 500

    # The scheduled checkpoint of each merchant's ledger, then the routes that serve it and the key that checks it.
    with driver.invoking(Function.CHECKPOINT):
        assert checkpoint_handler.handler({"source": "aws.events"}, None)["written"] == 2, "a checkpoint per merchant"
    latest = api("GET", "/ledger/checkpoints/latest")
    public_key = body_of(api("GET", "/ledger/public-key"))
    assert latest["statusCode"] == 200 and signature_holds(body_of(latest), public_key["pem"])
    listed = api("GET", "/ledger/checkpoints")
    assert listed["statusCode"] == 200 and body_of(listed)["data"] == [body_of(latest)]
    assert body_of(api("GET", f"/ledger/checkpoints/{body_of(latest)['sequence']}")) == body_of(latest)
    assert api("POST", refund_path, {"amount": 100}, key="ref-4")["statusCode"] == 201  # on a chain signed above
    with driver.invoking(Function.CHECKPOINT):  # the next holds the ledger to the last: the entry where it signed
        assert checkpoint_handler.handler({"source": "aws.events"}, None)["written"] == 1, "acme's ledger moved"
    capture_and_cancel(driver, sandbox, token)
    settlements(driver, sandbox, adjusted=payment, dropped=body_of(unsettled)["id"])
    webhooks_and_deliveries(driver, payment)


def settlements(driver: Driver, sandbox: Sandbox, adjusted: str, dropped: str) -> None:
    """The sandbox settles everything but ``dropped``, with ``adjusted``'s line off by 5 and a line nobody knows;
    the import four days on books the matched lines, records the mismatch and the unknown line, and reports
    ``dropped`` not settled; the merchant reads its share; the next run finds nothing new."""
    (settlement,) = sandbox.settle(adjust={adjusted: 5}, drop=[dropped], unknown=1)
    counts = settle_later(driver, timedelta(days=4))
    assert (counts["settlements"], counts["mismatched"], counts["unknown_references"]) == (1, 1, 1), counts
    assert counts["matched"] >= 1 and counts["not_settled"] >= 1 and counts["errors"] == 0, counts
    share = driver.api("GET", f"/settlements/{settlement['id']}")
    assert share["statusCode"] == 200 and body_of(share)["status"] == "mismatched", share["body"]
    assert body_of(driver.api("GET", "/settlements"))["data"][0]["id"] == settlement["id"]
    assert settle_later(driver, timedelta(days=4))["settlements"] == 0  # imported in full before


def webhooks_and_deliveries(driver: Driver, payment: str) -> None:
    """An endpoint registered (its secret sealed; the key replayed), another deleted, the list read; every due event
    sent to the endpoint, which fails each round (the sender answers 500), so every attempt is recorded and, after the
    last wait (none: WEBHOOK_RETRY_WAITS is 0 here), each event is dead-lettered; then one redelivered, and its
    attempts read (``payment``'s event)."""
    api = driver.api
    endpoint = {"url": "https://93.184.216.34/hooks", "events": ["*"]}  # an address: nothing to resolve
    created = api("POST", "/webhook_endpoints", endpoint, key="we-1")
    assert created["statusCode"] == 201, created["body"]
    assert api("POST", "/webhook_endpoints", endpoint, key="we-1")["headers"].get("Idempotent-Replayed")
    gone = body_of(api("POST", "/webhook_endpoints", endpoint | {"events": ["refund.failed"]}, key="we-2"))["id"]
    assert api("DELETE", f"/webhook_endpoints/{gone}")["statusCode"] == 200
    assert [e["id"] for e in body_of(api("GET", "/webhook_endpoints"))["data"]] == [body_of(created)["id"]]
    runs = []
    for _ in range(2):
        with driver.invoking(Function.DELIVER):
            runs.append(deliver_handler.handler({"source": "aws.events"}, None))
    assert runs[0]["failed"] >= 1 and runs[1]["dead_lettered"] >= 1, runs
    events = body_of(api("GET", "/events?limit=100"))["data"]
    (event,) = [e["id"] for e in events if e["type"] == "payment.succeeded" and e["data"]["object"]["id"] == payment]
    assert api("POST", f"/events/{event}/redeliver", {}, key="re-1")["statusCode"] == 202
    assert body_of(api("GET", f"/events/{event}/deliveries"))["data"]


def capture_and_cancel(driver: Driver, sandbox: Sandbox, token: str) -> None:
    """Authorisations captured in part (and the capture replayed), cancelled, refused a capture once cancelled; a
    capture booked by reconciliation while the request waited on the gateway; a capture whose answer is lost, settled
    by reconciliation; and one left to expire, cancelled and voided by it."""
    api = driver.api

    def authorise(key: str) -> str:
        authorised = driver.pay({"token": token}, key, capture=False, metadata={"order_id": key})
        assert authorised["statusCode"] == 201, authorised["body"]
        assert body_of(authorised)["status"] == "requires_capture"
        return str(body_of(authorised)["id"])

    captured = f"/payments/{authorise('auth-1')}/capture"
    assert api("POST", captured, {"amount": 600}, key="cap-1")["statusCode"] == 200
    replayed = api("POST", captured, {"amount": 600}, key="cap-1", cold=True)  # opens the stored answer
    assert replayed["headers"].get("Idempotent-Replayed")
    cancelled = authorise("auth-2")
    assert api("POST", f"/payments/{cancelled}/cancel", {}, key="can-1")["statusCode"] == 200
    refused = api("POST", f"/payments/{cancelled}/capture", {}, key="cap-2")
    assert refused["statusCode"] == 400 and body_of(refused)["error"]["code"] == "payment_not_capturable"
    raced = authorise("auth-3")
    with reconciled_during_capture(driver) as settled:
        answered = api("POST", f"/payments/{raced}/capture", {}, key="cap-3")
    # reconciliation booked the capture first; the request's booking lost, and it answers from the payment re-read
    assert settled == [1] and answered["statusCode"] == 200, answered["body"]
    assert body_of(answered)["status"] == "succeeded"
    lost = authorise("auth-4")
    sandbox.faults(drop_rate=1.0)
    assert api("POST", f"/payments/{lost}/capture", {}, key="cap-4")["statusCode"] == 504  # captured, answer lost
    sandbox.faults(drop_rate=0.0)
    expiring = authorise("auth-5")

    assert reconcile_later(driver, timedelta(hours=2))["settled"] == 1  # the lost capture, looked up and booked
    assert body_of(api("GET", f"/payments/{lost}"))["status"] == "succeeded"
    assert reconcile_later(driver, timedelta(days=8))["expired"] == 1  # past capture_before: cancelled and voided
    assert body_of(api("GET", f"/payments/{expiring}"))["cancellation_reason"] == "expired"


@contextmanager
def reconciled_during_capture(driver: Driver) -> Iterator[list[int]]:
    """In the capture function's container, a reconciliation run two hours on after each capture the gateway made,
    before the capture function books it; each run's count of payments settled."""
    container = driver.containers[Function.CAPTURE][0]
    gateway = container.gateway
    settled: list[int] = []

    class ReconciledMeanwhile:
        def __getattr__(self, name: str):
            return getattr(gateway, name)

        def capture(self, *args, **kwargs):
            charge = gateway.capture(*args, **kwargs)
            settled.append(reconcile_later(driver, timedelta(hours=2))["settled"])
            return charge

    container.gateway = ReconciledMeanwhile()
    try:
        yield settled
    finally:
        container.gateway = gateway


def reconcile_later(driver: Driver, offset: timedelta) -> dict:
    """A scheduled reconciliation run ``offset`` from now; its counts."""
    with driver.invoking(Function.RECONCILE):
        bootstrap.adapters().clock = lambda: utc_now() + offset
        return dict(reconcile_handler.handler({"source": "aws.events"}, None))


def settle_later(driver: Driver, offset: timedelta) -> dict:
    """A scheduled settlement run ``offset`` from now; its counts."""
    with driver.invoking(Function.SETTLE):
        bootstrap.adapters().clock = lambda: utc_now() + offset
        return dict(settle_handler.handler({"source": "aws.events"}, None))


def failing_runs(driver: Driver, monkeypatch) -> None:
    """A scheduled run of each scheduled function that fails: Lambda sends its event to the function's dead-letter
    queue, as the function's role."""

    def unavailable():
        raise ConnectionError("the merchants table did not answer")

    for function, handler in ((Function.RECONCILE, reconcile_handler), (Function.CHECKPOINT, checkpoint_handler)):
        monkeypatch.setattr(handler, "tenancy", unavailable)
        with driver.invoking(function, asynchronous=True):
            handler.handler({"source": "aws.events"}, None)
    for function, handler in ((Function.DELIVER, deliver_handler), (Function.SETTLE, settle_handler)):
        monkeypatch.setattr(handler, "adapters", unavailable)
        with driver.invoking(function, asynchronous=True):
            handler.handler({"source": "aws.events"}, None)


@pytest.fixture(scope="module")
def recording(synthesized, sandbox_url, tmp_path_factory) -> tuple[StackModel, list[Recorded]]:
    """The dev stack's resources made in moto under the stack's own names; each function configured from its
    synthesized environment; every use case driven. The recording is written to a JSON file and read back."""
    stack = synthesized["dev"]
    sandbox = Sandbox(sandbox_url)
    sandbox.reset()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name, value in EMULATOR_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        overrides = {}
        kms = boto3.client("kms")
        for name, key in stack.resources("aws_kms_key").items():
            spec = {"KeySpec": key["customer_master_key_spec"], "KeyUsage": key["key_usage"]}
            overrides[f"aws_kms_key.{name}.arn"] = kms.create_key(**spec)["KeyMetadata"]["Arn"]
        refs = References(stack, overrides)
        for name, secret in stack.resources("aws_secretsmanager_secret").items():
            made = boto3.client("secretsmanager").create_secret(
                Name=secret["name"], SecretString=DEFAULT_SECRET_KEY, KmsKeyId=refs(secret["kms_key_id"])
            )
            refs.overrides[f"aws_secretsmanager_secret.{name}.arn"] = made["ARN"]
        tables = {}
        dynamodb = boto3.client("dynamodb")
        for table in stack.resources("aws_dynamodb_table").values():
            (schema,) = [s for s in SCHEMAS if table["name"].endswith(f"-{s.name}")]
            create_table(dynamodb, table["name"], schema)
            tables[table["name"]] = schema
        model = StackModel.read(stack, refs)
        environment = model.functions[Function.CHARGE].environment
        for merchant in stack.environment.merchants:
            rules = merchant.effective_rules(stack.environment.rules).model_dump(mode="json")
            for item in merchant_items(merchant.id, merchant.principals, rules):
                dynamodb.put_item(TableName=environment["MERCHANTS_TABLE"], Item=to_item(item))
        s3 = boto3.client("s3")
        for bucket in stack.resources("aws_s3_bucket").values():
            s3.create_bucket(
                Bucket=bucket["bucket"], ObjectLockEnabledForBucket=bucket.get("object_lock_enabled", False)
            )
        environment |= {"CHECKPOINT_BUCKET": model.functions[Function.CHECKPOINT].environment["CHECKPOINT_BUCKET"]}
        dead_letters = model.functions[Function.DELIVER].environment["WEBHOOK_DEAD_LETTER_QUEUE"]
        environment |= {"WEBHOOK_DEAD_LETTER_QUEUE": dead_letters, "WEBHOOK_RETRY_WAITS": "0"}
        boto3.client("sqs").create_queue(QueueName=dead_letters.rsplit("/", 1)[-1])
        # every delivery fails at the receiver: no request leaves the test
        monkeypatch.setattr(bootstrap.AwsAdapters, "webhook_sender", lambda adapters: FakeSender(Sent(500)))
        for name, value in {**environment, "GATEWAY_BASE_URL": sandbox_url, "GATEWAY_READ_TIMEOUT": "1"}.items():
            monkeypatch.setenv(name, value)
        bootstrap.adapters.cache_clear()
        clear_caches()  # the gateway secret is fetched again, by a client the recorder sees
        recorder = Recorder(tables, REGION)
        try:
            with recorder.installed(monkeypatch):
                driver = Driver(recorder, monkeypatch)
                drive(driver, sandbox)
                failing_runs(driver, monkeypatch)
        finally:
            clear_caches()
    path = tmp_path_factory.mktemp("access-model") / "calls.json"
    recorder.save(path)
    return model, load(path)


def _denied(model: StackModel, recorded: list[Recorded], alone: str | None = None) -> list[str]:
    return [
        f"{j.recorded.function} ({j.recorded.call}): {j.request.action} on {j.request.resource}"
        f" {dict(j.request.context)} -> {j.decision.value}"
        for j in model.judge(recorded, alone)
        if j.decision is not Decision.ALLOWED
    ]


def test_every_function_was_driven_and_its_calls_recorded(recording):
    model, recorded = recording
    by_function = {f: [r for r in recorded if r.function == f.value] for f in Function}
    for function, calls in by_function.items():
        assert any(r.call != "lambda:Invoke" for r in calls), f"{function.value} made no AWS call"
    kinds = {(r.function, r.action, r.context.get("kms:EncryptionContext:purpose")) for r in recorded}
    assert ("tokenize", "kms:GenerateDataKey", "card-vault") in kinds
    assert ("tokenize", "kms:GenerateMac", None) in kinds
    assert ("charge", "kms:Decrypt", "card-vault") in kinds  # opens the vaulted card
    assert ("charge", "kms:Decrypt", "payment-metadata") in kinds  # a replayed answer
    assert ("read", "kms:Decrypt", "payment-metadata") in kinds
    assert not any(
        r.function == "read" and r.context.get("kms:EncryptionContext:purpose") == "card-vault" for r in recorded
    )
    assert {("reconcile", "dynamodb:Scan"), ("reconcile", "dynamodb:ConditionCheckItem")} <= {
        (r.function, r.action) for r in recorded
    }
    assert {
        ("capture", "kms:GenerateDataKey", "payment-metadata"),
        ("capture", "kms:Decrypt", "payment-metadata"),
    } <= kinds
    assert not any(
        r.function == "capture" and r.context.get("kms:EncryptionContext:purpose") == "card-vault" for r in recorded
    )
    # a payment read with its chain's head, to book entries next
    assert {("capture", "dynamodb:BatchGetItem"), ("reconcile", "dynamodb:BatchGetItem")} <= {
        (r.function, r.call) for r in recorded
    }
    capture_reads = [r for r in recorded if (r.function, r.action) == ("capture", "dynamodb:GetItem")]
    assert any(  # a payment re-read by itself, after its booking lost a race to reconciliation
        r.resource.endswith("-ledger") and r.context["dynamodb:LeadingKeys"][0].startswith(Partition.PAYMENT.value)
        for r in capture_reads
    )
    secret_readers = {r.function for r in recorded if r.action.startswith("secretsmanager")}
    assert secret_readers == {"charge", "refund", "capture", "reconcile", "settle"}
    assert {(r.function, r.action) for r in recorded if r.action in ("kms:Sign", "kms:GetPublicKey")} == {
        ("checkpoint", "kms:Sign"),
        ("checkpoint", "kms:GetPublicKey"),  # the newest checkpoint's signature, before building on it
        ("read", "kms:GetPublicKey"),
    }
    assert any(r.call == "lambda:InvokeFailed" for r in recorded)
    assert len(model.judge(recorded)) > len(recorded)  # and the calls AWS makes on the functions' behalf


def test_every_recorded_call_is_allowed_by_the_role_policy_and_the_key_policy(recording):
    model, recorded = recording
    assert _denied(model, recorded) == []


@pytest.mark.parametrize("alone", ["role", "key"])
def test_the_role_policy_and_the_key_policy_each_allow_every_call_on_their_own(recording, alone):
    """Each grant is written twice: in the role's policy, and (for a key) in the key policy naming the role. AWS
    needs only one of them (a key policy that names the role needs no IAM allow; its account-wide statement lets an
    IAM allow through the services), so each side must be complete by itself: that is what the stack promises (the
    role holds what the function uses; the key policy names every user), and what makes each statement's removal
    visible below."""
    model, recorded = recording
    assert _denied(model, recorded, alone) == []


# --- calls that must be refused ------------------------------------------------------------------------------------

ADMIN = f"arn:aws:iam::{ACCOUNT}:role/key-administrator"  # dev's key administrator (stacks/config.py)
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/operator"  # runs `make verify`, puts the gateway secret: no administrator
OUTSIDER = "arn:aws:iam::210987654321:role/intruder"
EVERYTHING = statements_from_json({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _kms_context(purpose: str | None = None, via: str | None = None, **encryption_context) -> dict:
    context = {"kms:CallerAccount": ACCOUNT}
    if purpose:
        encryption_context["purpose"] = purpose
    context |= {f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()}
    if encryption_context:
        context["kms:EncryptionContextKeys"] = tuple(encryption_context)
    if via:
        context["kms:ViaService"] = f"{via}.{REGION}.amazonaws.com"
    return context


@pytest.mark.parametrize("function", [f for f in Function if f is not Function.CHECKPOINT])
def test_only_the_checkpoint_function_signs(recording, function):
    model, _ = recording
    signing = model.keys["signing"]
    raw = _kms_context() | {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}
    checkpoint = model.functions[Function.CHECKPOINT].role_arn
    assert model.decide(Request(checkpoint, "kms:Sign", signing, raw)) is Decision.ALLOWED
    digest = raw | {"kms:MessageType": "DIGEST"}  # a digest of anything the caller likes: not even checkpoint
    assert model.decide(Request(checkpoint, "kms:Sign", signing, digest)) is not Decision.ALLOWED
    role = model.functions[function].role_arn
    assert model.decide(Request(role, "kms:Sign", signing, raw)) is not Decision.ALLOWED


def test_read_cannot_decrypt_a_card(recording):
    model, _ = recording
    read = model.functions[Function.READ].role_arn
    vault = model.keys["vault"]
    assert model.decide(Request(read, "kms:Decrypt", vault, _kms_context("card-vault"))) is not Decision.ALLOWED
    assert model.decide(Request(read, "kms:Decrypt", vault, _kms_context("payment-metadata"))) is Decision.ALLOWED


def test_the_capture_role_moves_payments_and_adds_entries_but_makes_no_payment_and_opens_no_card(recording):
    """It settles an authorisation: the payment's state and its chain's head move, entries are added; nothing else is
    written, no token is read with a head, no card opened, no card fingerprinted, nothing signed."""
    model, _ = recording
    capture = model.functions[Function.CAPTURE].role_arn
    ledger = next(arn for arn in _tables(model) if arn.endswith("-ledger"))

    def decision(action: str, *partitions: Partition) -> Decision:
        keys = {"dynamodb:LeadingKeys": tuple(partition.key("acme", "pay_1") for partition in partitions)}
        return model.decide(Request(capture, action, ledger, keys))

    for action, partitions in (
        ("dynamodb:BatchGetItem", (Partition.PAYMENT, Partition.CHAIN)),
        ("dynamodb:UpdateItem", (Partition.PAYMENT,)),
        ("dynamodb:UpdateItem", (Partition.CHAIN,)),
        ("dynamodb:PutItem", (Partition.LEDGER,)),
    ):
        assert decision(action, *partitions) is Decision.ALLOWED, (action, partitions)
    for action, partitions in (
        ("dynamodb:BatchGetItem", (Partition.TOKEN, Partition.CHAIN)),
        ("dynamodb:PutItem", (Partition.PAYMENT,)),
        ("dynamodb:PutItem", (Partition.TOKEN,)),
        ("dynamodb:UpdateItem", (Partition.LEDGER,)),
        ("dynamodb:PutItem", (Partition.CHECKPOINT,)),
    ):
        assert decision(action, *partitions) is not Decision.ALLOWED, (action, partitions)
    vault = model.keys["vault"]
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert model.decide(Request(capture, action, vault, _kms_context("payment-metadata"))) is Decision.ALLOWED
        assert model.decide(Request(capture, action, vault, _kms_context("card-vault"))) is not Decision.ALLOWED
    fingerprint = Request(capture, "kms:GenerateMac", model.keys["fingerprint"], _kms_context())
    assert model.decide(fingerprint) is not Decision.ALLOWED


@pytest.mark.parametrize("function", list(Function))
def test_only_delivery_opens_a_webhook_secret_and_only_registration_seals_one(recording, function):
    """A webhook secret signs as the service: a role that could open one (or make one) could forge deliveries."""
    model, _ = recording
    role, vault = model.functions[function].role_arn, model.keys["vault"]
    secret = _kms_context("webhook-secret")
    opens = model.decide(Request(role, "kms:Decrypt", vault, secret)) is Decision.ALLOWED
    seals = model.decide(Request(role, "kms:GenerateDataKey", vault, secret)) is Decision.ALLOWED
    assert (opens, seals) == (function is Function.DELIVER, function is Function.WEBHOOKS)


def test_delivery_cannot_write_the_ledger(recording):
    """The delivery function talks to the internet: it keeps its events' delivery state and attempts, and can add
    no entry, make or move no payment, move no chain's head, and open no card."""
    model, _ = recording
    deliver = model.functions[Function.DELIVER].role_arn
    ledger = next(arn for arn in _tables(model) if arn.endswith("-ledger"))

    def decision(action: str, partition: Partition) -> Decision:
        keys = {"dynamodb:LeadingKeys": (partition.key("acme", "pay_1"),)}
        return model.decide(Request(deliver, action, ledger, keys))

    assert decision("dynamodb:UpdateItem", Partition.EVENT) is Decision.ALLOWED
    assert decision("dynamodb:PutItem", Partition.EVENT) is Decision.ALLOWED
    for partition in (Partition.LEDGER, Partition.PAYMENT, Partition.CHAIN, Partition.TOKEN, Partition.CHECKPOINT):
        for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert decision(action, partition) is not Decision.ALLOWED, (action, partition)
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert decision(action, Partition.ENDPOINT) is not Decision.ALLOWED, action  # endpoints are registration's
    card = _kms_context("card-vault")
    assert model.decide(Request(deliver, "kms:Decrypt", model.keys["vault"], card)) is not Decision.ALLOWED


def test_settlement_adds_entries_and_reads_payments_and_refunds_but_never_changes_them(recording):
    """The settlement role books a matched line's entries (moving their chain's head) and keeps its own records
    (shares, expected movements, imports), reads payments and refunds, and changes none: no put, update or delete
    of a ``PAYMENT#`` item (a payment and its refunds), no update or delete of an entry, no update of an event,
    nothing of tokens, checkpoints or endpoints, no card, metadata or webhook secret opened. IAM cannot tell a new
    item from one that exists (no condition key carries a write's ConditionExpression): an entry put over an
    existing one is kept out by the adapters' ``attribute_not_exists`` and shown by its chain (`make verify`), as
    for every function that books entries."""
    model, _ = recording
    settle = model.functions[Function.SETTLE].role_arn
    ledger = next(arn for arn in _tables(model) if arn.endswith("-ledger"))

    def decision(action: str, *partitions: Partition, index: str | None = None) -> Decision:
        keys = {"dynamodb:LeadingKeys": tuple(partition.key("acme", "pay_1") for partition in partitions)}
        return model.decide(Request(settle, action, f"{ledger}/index/{index}" if index else ledger, keys))

    for action, partitions in (
        ("dynamodb:GetItem", (Partition.PAYMENT,)),
        ("dynamodb:Query", (Partition.CHAIN,)),
        ("dynamodb:BatchGetItem", (Partition.SETTLEMENT,)),
        ("dynamodb:PutItem", (Partition.LEDGER,)),
        ("dynamodb:UpdateItem", (Partition.CHAIN,)),
        ("dynamodb:PutItem", (Partition.SETTLEMENT,)),
        ("dynamodb:UpdateItem", (Partition.SETTLEMENT,)),
        ("dynamodb:PutItem", (Partition.GATEWAY,)),
        ("dynamodb:UpdateItem", (Partition.GATEWAY,)),
        ("dynamodb:PutItem", (Partition.EVENT,)),
    ):
        assert decision(action, *partitions) is Decision.ALLOWED, (action, partitions)
    assert decision("dynamodb:Query", Partition.CHAIN, index="by_chain") is Decision.ALLOWED
    for action, partitions in (
        *((action, (Partition.PAYMENT,)) for action in ("dynamodb:PutItem", "dynamodb:UpdateItem")),
        *((action, (Partition.LEDGER,)) for action in ("dynamodb:UpdateItem", "dynamodb:BatchWriteItem")),
        ("dynamodb:UpdateItem", (Partition.EVENT,)),
        ("dynamodb:BatchGetItem", (Partition.PAYMENT, Partition.CHAIN)),
        ("dynamodb:GetItem", (Partition.TOKEN,)),
        ("dynamodb:PutItem", (Partition.TOKEN,)),
        ("dynamodb:PutItem", (Partition.CHECKPOINT,)),
        ("dynamodb:UpdateItem", (Partition.ENDPOINT,)),
        ("dynamodb:Scan", ()),
    ):
        assert decision(action, *partitions) is not Decision.ALLOWED, (action, partitions)
    for partition in Partition:
        assert decision("dynamodb:DeleteItem", partition) is not Decision.ALLOWED, partition
    for index in ("by_merchant", "by_status", "by_due"):
        assert decision("dynamodb:Query", Partition.PAYMENT, index=index) is not Decision.ALLOWED, index
    vault = model.keys["vault"]
    for purpose in ("card-vault", "payment-metadata", "webhook-secret"):
        assert model.decide(Request(settle, "kms:Decrypt", vault, _kms_context(purpose))) is not Decision.ALLOWED


@pytest.mark.parametrize("function", list(Function))
def test_no_role_deletes_or_updates_a_ledger_entry(recording, function):
    model, _ = recording
    role = model.functions[function].role_arn
    ledger = next(arn for arn in _tables(model) if arn.endswith("-ledger"))
    entry = {"dynamodb:LeadingKeys": (Partition.LEDGER.key("acme", "pay_1"),)}
    for action in ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert model.decide(Request(role, action, ledger, entry)) is not Decision.ALLOWED, action
    for partition in Partition:  # nothing in the ledger is ever deleted
        keys = {"dynamodb:LeadingKeys": (partition.key("acme", "x"),)}
        assert model.decide(Request(role, "dynamodb:DeleteItem", ledger, keys)) is not Decision.ALLOWED


def _tables(model: StackModel) -> list[str]:
    return [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}" for name in model.resource_keys if ":" not in name]


def test_a_key_administrator_administers_the_keys_but_cannot_use_them(recording):
    model, _ = recording
    model = model.with_identity(ADMIN, EVERYTHING)
    for name, key in model.keys.items():
        assert model.decide(Request(ADMIN, "kms:ScheduleKeyDeletion", key, _kms_context())) is Decision.ALLOWED
        assert model.decide(Request(ADMIN, "kms:PutKeyPolicy", key, _kms_context())) is Decision.ALLOWED
        for action in (
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "kms:Encrypt",
            "kms:GenerateMac",
            "kms:ReEncryptFrom",
            "kms:Sign",
        ):
            for purpose in ("card-vault", "payment-metadata", None):
                request = Request(ADMIN, action, key, _kms_context(purpose))
                assert model.decide(request) is not Decision.ALLOWED, (name, action, purpose)


def test_a_key_administrator_uses_no_key_through_a_service_nor_grants_its_use(recording):
    """DynamoDB and Secrets Manager use the vault key with their caller's permissions, which the key policy lets the
    account's IAM decide (Terraform and the operators read and write the tables and the secret): not for a key
    administrator, whatever their IAM policy allows. Nor may an administrator grant use (kms:CreateGrant)."""
    assert ADMIN in ENVIRONMENTS["dev"].key_administrators
    model, _ = recording
    model = model.with_identity(ADMIN, EVERYTHING).with_identity(OPERATOR, EVERYTHING)
    vault = model.keys["vault"]
    (table,) = [name for name in model.resource_keys if name.endswith("-ledger")]
    (secret,) = [arn for arn in model.resource_keys if ":secretsmanager:" in arn]
    through_dynamodb = _kms_context(via="dynamodb", **{"aws:dynamodb:tableName": table,
                                                       "aws:dynamodb:subscriberId": ACCOUNT})  # fmt: skip
    through_secrets_manager = _kms_context(via="secretsmanager", SecretARN=secret, SecretVersionId="v1")
    for context in (through_dynamodb, through_secrets_manager):
        # the statement that lets a service use the key for the account's principals is there, and works
        assert model.decide(Request(OPERATOR, "kms:Decrypt", vault, context)) is Decision.ALLOWED
        for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant"):
            decision = model.decide(Request(ADMIN, action, vault, context))
            assert decision is Decision.EXPLICIT_DENY, (action, context["kms:ViaService"])
    for name, key in model.keys.items():
        for action in ("kms:CreateGrant", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"):
            for purpose in ("card-vault", "payment-metadata", None):
                request = Request(ADMIN, action, key, _kms_context(purpose))
                assert model.decide(request) is not Decision.ALLOWED, (name, action, purpose)
        assert model.decide(Request(OPERATOR, "kms:CreateGrant", key, _kms_context())) is not Decision.ALLOWED
    # The administrator configured without a path is the same role at any path (an SSO role's is long): a deny
    # that missed it would fail open.
    at_a_path = ADMIN.replace(":role/", ":role/aws-reserved/sso.amazonaws.com/eu-west-1/")
    model = model.with_identity(at_a_path, EVERYTHING)
    for context in (through_dynamodb, through_secrets_manager):
        assert model.decide(Request(at_a_path, "kms:Decrypt", vault, context)) is Decision.EXPLICIT_DENY


def test_no_principal_outside_the_account_uses_a_key_or_invokes_anything(recording):
    model, _ = recording
    model = model.with_identity(OUTSIDER, EVERYTHING)
    for key in model.keys.values():
        for context in (_kms_context("card-vault"), _kms_context("payment-metadata"), _kms_context()):
            for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateMac", "kms:DescribeKey", "kms:Sign"):
                assert model.decide(Request(OUTSIDER, action, key, context)) is not Decision.ALLOWED
        through = _kms_context(via="dynamodb", **{"aws:dynamodb:tableName": "payments-dev-ledger"})
        assert model.decide(Request(OUTSIDER, "kms:Decrypt", key, through)) is not Decision.ALLOWED
    for function in model.functions.values():
        invoke_it = Request(OUTSIDER, "lambda:InvokeFunction", function.arn)
        assert model.decide(invoke_it) is not Decision.ALLOWED
    (api,) = [arn for arn in model.resource_policies if ":execute-api:" in arn]
    assert model.decide(Request(OUTSIDER, "execute-api:Invoke", f"{api}/v1/POST/tokens")) is not Decision.ALLOWED


def test_the_api_and_the_functions_admit_only_their_configured_callers(recording):
    """The positive side of the two resource policies, so the refusals above are not vacuous."""
    model, _ = recording
    (api,) = [arn for arn in model.resource_policies if ":execute-api:" in arn]
    stranger = f"arn:aws:iam::{ACCOUNT}:user/stranger"
    model = model.with_identity(ACME, EVERYTHING).with_identity(stranger, EVERYTHING)
    assert model.decide(Request(ACME, "execute-api:Invoke", f"{api}/v1/POST/tokens")) is Decision.ALLOWED
    assert model.decide(Request(stranger, "execute-api:Invoke", f"{api}/v1/POST/tokens")) is Decision.EXPLICIT_DENY
    tokenize = model.functions[Function.TOKENIZE].arn
    gateway = f"apigateway.{'amazonaws.com'}"
    from_api = Request(
        gateway, "lambda:InvokeFunction", tokenize, {"aws:SourceArn": f"{api}/v1/POST/tokens"}, principal_type="Service"
    )
    assert model.decide(from_api) is Decision.ALLOWED
    other_route = Request(
        gateway,
        "lambda:InvokeFunction",
        tokenize,
        {"aws:SourceArn": f"{api}/v1/GET/payments/x"},
        principal_type="Service",
    )
    assert model.decide(other_route) is not Decision.ALLOWED


# --- every grant statement is needed ---------------------------------------------------------------------------------

COMMON = ("WriteOwnLogs", "WriteTraces")
ROLE_STATEMENTS = {
    Function.TOKENIZE: (
        *COMMON,
        "TokenizeEncryptVaultKey",
        "TokenizeMacFingerprintKey",
        "LedgerAppendToken",
        "TokenizeWriteThroughLedgerTableVaultKey",
        "MerchantsLookup",
        "TokenizeReadThroughMerchantsTableVaultKey",
        "IdempotencyReadWrite",
        "TokenizeWriteThroughIdempotencyTableVaultKey",
    ),
    Function.CHARGE: (
        *COMMON,
        "ChargeEncryptVaultKey",
        "ChargeDecryptVaultKey",
        "ChargeMacFingerprintKey",
        "LedgerRead",
        "LedgerReadTogetherTokenChain",
        "ChargeReadThroughLedgerTableVaultKey",
        "LedgerAppendPaymentLedgerEvent",
        "ChargeWriteThroughLedgerTableVaultKey",
        "LedgerUpdatePaymentChain",
        "MerchantsLookup",
        "ChargeReadThroughMerchantsTableVaultKey",
        "IdempotencyReadWrite",
        "ChargeWriteThroughIdempotencyTableVaultKey",
        "ReadGatewaySecret",
        "ChargeReadSecretVaultKey",
    ),
    Function.REFUND: (
        *COMMON,
        "LedgerRead",
        "RefundReadThroughLedgerTableVaultKey",
        "LedgerAppendPaymentLedgerEvent",
        "RefundWriteThroughLedgerTableVaultKey",
        "LedgerUpdatePaymentChain",
        "MerchantsLookup",
        "RefundReadThroughMerchantsTableVaultKey",
        "IdempotencyReadWrite",
        "RefundWriteThroughIdempotencyTableVaultKey",
        "ReadGatewaySecret",
        "RefundReadSecretVaultKey",
    ),
    Function.CAPTURE: (
        *COMMON,
        "CaptureEncryptVaultKey",
        "CaptureDecryptVaultKey",
        "LedgerReadPaymentChain",
        "LedgerReadTogetherPaymentChain",
        "CaptureReadThroughLedgerTableVaultKey",
        "LedgerAppendLedgerEvent",
        "CaptureWriteThroughLedgerTableVaultKey",
        "LedgerUpdatePaymentChain",
        "MerchantsLookup",
        "CaptureReadThroughMerchantsTableVaultKey",
        "IdempotencyReadWrite",
        "CaptureWriteThroughIdempotencyTableVaultKey",
        "ReadGatewaySecret",
        "CaptureReadSecretVaultKey",
    ),
    Function.READ: (
        *COMMON,
        "LedgerRead",
        "ReadReadThroughLedgerTableVaultKey",
        "LedgerReadTogetherEventPaymentSettlement",
        "ReadDecryptVaultKey",
        "ReadPublicKeySigningKey",
        "MerchantsLookup",
        "ReadReadThroughMerchantsTableVaultKey",
    ),
    Function.RECONCILE: (
        *COMMON,
        "SendDeadLetters",
        "ReconcileDeadLettersOperationsKey",
        "LedgerRead",
        "LedgerReadTogetherPaymentChain",
        "ReconcileReadThroughLedgerTableVaultKey",
        "LedgerAppendLedgerEvent",
        "ReconcileWriteThroughLedgerTableVaultKey",
        "LedgerUpdatePaymentChain",
        "MerchantsList",
        "ReconcileReadThroughMerchantsTableVaultKey",
        "IdempotencyConditionCheck",
        "ReconcileReadThroughIdempotencyTableVaultKey",
        "ReadGatewaySecret",
        "ReconcileReadSecretVaultKey",
    ),
    Function.CHECKPOINT: (
        *COMMON,
        "SendDeadLetters",
        "CheckpointDeadLettersOperationsKey",
        "LedgerReadChainCheckpoint",
        "CheckpointReadThroughLedgerTableVaultKey",
        "LedgerAppendCheckpoint",
        "CheckpointWriteThroughLedgerTableVaultKey",
        "CheckpointSignSigningKey",
        "CheckpointPublicKeySigningKey",
        "MerchantsList",
        "CheckpointReadThroughMerchantsTableVaultKey",
        "LedgerQueryByChainChain",
        "KeepCheckpoints",
        "CheckpointKeepThroughCheckpointBucketKeyKey",
    ),
    Function.WEBHOOKS: (
        *COMMON,
        "WebhooksEncryptVaultKey",
        "LedgerReadEndpoint",
        "WebhooksReadThroughLedgerTableVaultKey",
        "LedgerAppendEndpoint",
        "WebhooksWriteThroughLedgerTableVaultKey",
        "LedgerUpdateEndpointEvent",
        "MerchantsLookup",
        "WebhooksReadThroughMerchantsTableVaultKey",
        "IdempotencyReadWrite",
        "WebhooksWriteThroughIdempotencyTableVaultKey",
    ),
    Function.DELIVER: (
        *COMMON,
        "SendDeadLetters",
        "DeliverDeadLettersOperationsKey",
        "LedgerRead",
        "DeliverReadThroughLedgerTableVaultKey",
        "DeliverDecryptVaultKey",
        "LedgerUpdateEvent",
        "DeliverWriteThroughLedgerTableVaultKey",
        "LedgerAppendEvent",
        "MerchantsList",
        "DeliverReadThroughMerchantsTableVaultKey",
        "SendWebhookDeadLetters",
        "DeliverWebhookDeadLettersOperationsKey",
    ),
    Function.SETTLE: (
        *COMMON,
        "SendDeadLetters",
        "SettleDeadLettersOperationsKey",
        "LedgerReadPaymentChainSettlementGateway",
        "SettleReadThroughLedgerTableVaultKey",
        "LedgerReadTogetherSettlement",
        "LedgerQueryByChainChain",
        "LedgerAppendLedgerSettlementGatewayEvent",
        "SettleWriteThroughLedgerTableVaultKey",
        "LedgerUpdateChainSettlementGateway",
        "MerchantsList",
        "SettleReadThroughMerchantsTableVaultKey",
        "ReadGatewaySecret",
        "SettleReadSecretVaultKey",
    ),
}
# The key policies' statements that name a function's role (what the keys' grant_* calls add).
KEY_GRANTS = {
    "vault": (
        "TokenizeEncrypt",
        "TokenizeWriteThroughLedgerTable",
        "ChargeEncrypt",
        "ChargeDecrypt",
        "ChargeReadThroughLedgerTable",
        "ChargeWriteThroughLedgerTable",
        "RefundReadThroughLedgerTable",
        "RefundWriteThroughLedgerTable",
        "ReadReadThroughLedgerTable",
        "ReadDecrypt",
        "ReconcileReadThroughLedgerTable",
        "ReconcileWriteThroughLedgerTable",
        "TokenizeReadThroughMerchantsTable",
        "ChargeReadThroughMerchantsTable",
        "RefundReadThroughMerchantsTable",
        "ReadReadThroughMerchantsTable",
        "ReconcileReadThroughMerchantsTable",
        "CheckpointReadThroughLedgerTable",
        "CheckpointWriteThroughLedgerTable",
        "CheckpointReadThroughMerchantsTable",
        "TokenizeWriteThroughIdempotencyTable",
        "ChargeWriteThroughIdempotencyTable",
        "RefundWriteThroughIdempotencyTable",
        "ReconcileReadThroughIdempotencyTable",
        "ChargeReadSecret",
        "RefundReadSecret",
        "ReconcileReadSecret",
        "CaptureEncrypt",
        "CaptureDecrypt",
        "CaptureReadThroughLedgerTable",
        "CaptureWriteThroughLedgerTable",
        "CaptureReadThroughMerchantsTable",
        "CaptureWriteThroughIdempotencyTable",
        "CaptureReadSecret",
        "WebhooksEncrypt",
        "WebhooksReadThroughLedgerTable",
        "WebhooksWriteThroughLedgerTable",
        "WebhooksReadThroughMerchantsTable",
        "WebhooksWriteThroughIdempotencyTable",
        "DeliverReadThroughLedgerTable",
        "DeliverDecrypt",
        "DeliverWriteThroughLedgerTable",
        "DeliverReadThroughMerchantsTable",
        "SettleReadThroughLedgerTable",
        "SettleWriteThroughLedgerTable",
        "SettleReadThroughMerchantsTable",
        "SettleReadSecret",
    ),
    "fingerprint": ("TokenizeMac", "ChargeMac"),
    "operations": (
        "ReconcileDeadLetters",
        "CheckpointDeadLetters",
        "DeliverDeadLetters",
        "DeliverWebhookDeadLetters",
        "SettleDeadLetters",
    ),
    "signing": ("CheckpointSign", "CheckpointPublicKey", "ReadPublicKey"),
    "checkpoints": ("CheckpointKeepThroughCheckpointBucket",),
}


def test_the_mutated_statements_are_every_grant_in_the_stack(recording):
    model, _ = recording
    for function, statements in ROLE_STATEMENTS.items():
        assert sorted(s.sid for s in model.functions[function].policy) == sorted(statements), function.value
    roles = {f.role_arn for f in model.functions.values()}
    for name, statements in KEY_GRANTS.items():
        granted = [s.sid for s in model.key_policies[model.keys[name]] if set(s.principals[0][1]) & roles]
        assert sorted(granted) == sorted(statements), name


def test_removing_a_role_statement_refuses_a_recorded_call(recording):
    model, recorded = recording

    def needed(statement: tuple[Function, str]) -> bool:
        return _denied(model.without_role_statement(*statement), recorded, "role")

    statements = [(function, sid) for function, sids in ROLE_STATEMENTS.items() for sid in sids]
    assert_holds_for_each(statements, needed, "(function, statement) unused by every recorded call")


def test_removing_a_key_policy_grant_refuses_a_recorded_call(recording):
    model, recorded = recording

    def needed(grant: tuple[str, str]) -> bool:
        key, sid = grant
        return _denied(model.without_key_statement(model.keys[key], sid), recorded, "key")

    grants = [(key, sid) for key, sids in KEY_GRANTS.items() for sid in sids]
    assert_holds_for_each(grants, needed, "(key, grant) unused by every recorded call")


def test_the_testing_docs_count_the_grant_statements_removed_here():
    removed = sum(map(len, ROLE_STATEMENTS.values())) + sum(map(len, KEY_GRANTS.values()))
    testing = " ".join((REPO / "docs" / "testing.md").read_text().split())
    assert f"removing any one of the {removed} grant statements refuses a recorded call" in testing
