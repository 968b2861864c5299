"""A stateful model test: random sequences of tokenize, pay, same-key retry,
refund (partial, concurrent) and reconcile, with the gateway dropping,
failing, delaying and garbling answers at random.

After every step: at most one gateway charge per payment, the gateway's
refunds never exceed the capture, and the ledger never books more than the
gateway did. After a final reconcile with the faults off: every payment's
ledger equals the gateway's capture less its refunds, and debits equal credits.

It runs on the in-memory fakes (hundreds of examples). ``test_model_on_moto``
runs the same machine on the DynamoDB adapters (moto in process), with fewer."""

import os
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import MERCHANT, RECEIVABLE, Direction, RefundStatus, Status, balance
from lambdas.domain.rules import RuleSet
from lambdas.gateway import Charge, GatewayRejected
from lambdas.service import PaymentService
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from sparkle_sandbox.server import DECLINES, DEFAULT_SECRET_KEY, PROCESSING_ERROR_CARD, SLOW_CARD
from tests.support.fakes import FakeClock, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tools.function_resources import provision

CARDS = ("4242424242424242", "5555555555554444", next(iter(DECLINES)), PROCESSING_ERROR_CARD, SLOW_CARD)
FAULTS = st.one_of(st.none(), st.sampled_from(list(Fault)))
AMOUNTS = st.integers(1, 5000)
# Examples of the machine on the fakes; `make mutate` runs it once per mutant, so it asks for fewer.
MODEL_EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "200"))
CONTRACT_ERRORS = (GatewayFailed, InvalidRequest, IdempotencyConflict)  # 502/504, 400, 409/422: never a 500


class PaymentMachine(RuleBasedStateMachine):
    tokens = Bundle("tokens")
    requests = Bundle("requests")  # (key, command) of payments sent
    refunds = Bundle("refunds")  # (key, payment id, amount) of refunds sent

    def make_world(self, gateway: FakeGateway):
        return fake_world(gateway)

    @initialize()
    def start(self) -> None:
        self.gateway = self.make_gateway()
        self.world = self.make_world(self.gateway)
        self.keys = 0
        self.payment_of: dict[str, str] = {}  # key -> the payment its request made
        self.refund_ids: set[tuple[str, str]] = set()  # (payment id, refund id) of every refund recorded

    def make_gateway(self):
        return FakeGateway()

    @property
    def store(self):
        return self.world.deps.store

    def payments(self):
        return [self.store.get_payment(payment_id, with_metadata=False) for payment_id in set(self.payment_of.values())]

    def _key(self) -> str:
        self.keys += 1
        return f"key-{self.keys}"

    def _call(self, call):
        """The answer, or the contract error raised; the faults scripted for this step end with it."""
        try:
            return call()
        except CONTRACT_ERRORS as error:
            return error
        finally:
            self.gateway.clear_faults()

    # -- steps -------------------------------------------------------------------------------

    @rule(target=tokens, number=st.sampled_from(CARDS))
    def tokenize(self, number: str) -> str:
        return self.world.service.tokenize(CardInput(number, 12, 2030), None).body["token"]

    @rule(target=requests, token=tokens, amount=AMOUNTS, fault=FAULTS)
    def pay_with_token(self, token: str, amount: int, fault: Fault | None):
        return self._pay(PaymentCommand(amount, "usd", token=token), fault)

    @rule(target=requests, number=st.sampled_from(CARDS), amount=AMOUNTS, fault=FAULTS)
    def pay_with_card(self, number: str, amount: int, fault: Fault | None):
        return self._pay(PaymentCommand(amount, "eur", card=CardInput(number, 12, 2030, "737")), fault)

    def _pay(self, command: PaymentCommand, fault: Fault | None):
        key = self._key()
        if fault:
            self.gateway.fail_next("charge", fault)
        self._note_payment(key, self._call(lambda: self.world.service.create_payment(command, "req", key)))
        return key, command

    def _note_payment(self, key: str, outcome) -> None:
        body = getattr(outcome, "body", {})
        payment_id = body.get("id") or body.get("error", {}).get("payment_id") or getattr(outcome, "payment_id", None)
        if payment_id:
            self.payment_of[key] = payment_id

    def _note_refund(self, payment_id: str, outcome) -> None:
        refund_id = getattr(outcome, "body", {}).get("id") or getattr(outcome, "refund_id", None)
        if refund_id:
            self.refund_ids.add((payment_id, refund_id))

    @rule(request=requests, lookup_fault=FAULTS, charge_fault=FAULTS)
    def retry_payment(self, request, lookup_fault: Fault | None, charge_fault: Fault | None) -> None:
        key, command = request
        if lookup_fault:
            self.gateway.fail_next("find_charge", lookup_fault)
        if charge_fault:
            self.gateway.fail_next("charge", charge_fault)
        answer = self._call(lambda: self.world.service.create_payment(command, "req", key))
        assert not isinstance(answer, InvalidRequest), answer  # a retry of an accepted request is never a 400
        self._note_payment(key, answer)

    @rule(target=refunds, request=requests, amount=st.one_of(st.none(), AMOUNTS), fault=FAULTS)
    def refund(self, request, amount: int | None, fault: Fault | None):
        payment_id = self._payment_of(request)
        key = self._key()
        if fault:
            self.gateway.fail_next("refund", fault)
        self._note_refund(payment_id, self._call(lambda: self.world.service.refund(payment_id, amount, key)))
        return key, payment_id, amount

    @rule(refund=refunds, lookup_fault=FAULTS)
    def retry_refund(self, refund, lookup_fault: Fault | None) -> None:
        key, payment_id, amount = refund
        if lookup_fault:
            self.gateway.fail_next("find_refund", lookup_fault)
        self._note_refund(payment_id, self._call(lambda: self.world.service.refund(payment_id, amount, key)))

    @rule(request=requests, amounts=st.lists(AMOUNTS, min_size=2, max_size=5))
    def concurrent_refunds(self, request, amounts: list[int]) -> None:
        payment_id = self._payment_of(request)
        keys = [self._key() for _ in amounts]
        barrier, answers = threading.Barrier(len(amounts)), []

        def refund(key: str, amount: int) -> None:
            barrier.wait()
            try:  # no faults here: each refund is a 201 or a 400
                answers.append(self.world.service.refund(payment_id, amount, key))
            except CONTRACT_ERRORS as error:
                answers.append(error)

        threads = [threading.Thread(target=refund, args=pair) for pair in zip(keys, amounts, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(isinstance(a, InvalidRequest) or getattr(a, "status", None) == 201 for a in answers), answers
        for answer in answers:
            self._note_refund(payment_id, answer)

    @rule(minutes=st.sampled_from([0, 2, 90]))
    def reconcile(self, minutes: int) -> None:
        self.world.clock.advance(timedelta(minutes=minutes))
        self.world.service.reconcile()

    @rule()
    def slow_answers_arrive(self) -> None:
        self.gateway.complete_slow_calls()

    def _payment_of(self, request) -> str:
        key, _ = request
        return self.payment_of.get(key, "pay_unknown")

    # -- what must always hold -----------------------------------------------------------

    @invariant()
    def at_most_one_charge_per_payment(self) -> None:
        for payment_id in set(self.payment_of.values()):
            assert len(self.gateway.charges_for(payment_id)) <= 1

    @invariant()
    def the_gateway_is_never_asked_to_refund_more_than_is_left(self) -> None:
        assert self.gateway.refused_amounts == 0

    @invariant()
    def refunds_never_exceed_the_capture_and_the_ledger_never_books_more_than_the_gateway(self) -> None:
        for payment in self.payments():
            charged = self.gateway.charges_for(payment.id)
            refunded = self.gateway.refunded_total(charged[0].id) if charged else 0
            assert refunded <= (charged[0].amount if charged else 0)
            assert payment.amount_refunded <= refunded
            assert payment.amount_refunded + payment.amount_reserved <= payment.amount

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        self.gateway.complete_slow_calls()
        for _ in range(2):  # faults off: everything pending settles or is given up
            self.world.clock.advance(timedelta(hours=2))
            self.world.service.reconcile()
        for payment in self.payments():
            entries = self.store.entries(payment.id)
            debits = sum(e.amount for e in entries if e.direction is Direction.DEBIT)
            assert debits == sum(e.amount for e in entries if e.direction is Direction.CREDIT)
            charged = [c for c in self.gateway.charges_for(payment.id) if c.status == "succeeded"]
            net = charged[0].amount - self.gateway.refunded_total(charged[0].id) if charged else 0
            assert balance(entries).get(MERCHANT, 0) == -net
            assert balance(entries).get(RECEIVABLE, 0) == net
            assert payment.status is not Status.PENDING
            assert (payment.status is Status.SUCCEEDED) == bool(charged)
        for payment_id, refund_id in self.refund_ids:
            assert self.store.get_refund(payment_id, refund_id).status is not RefundStatus.PENDING


PaymentMachine.TestCase.settings = settings(
    max_examples=MODEL_EXAMPLES, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_model_on_fakes = PaymentMachine.TestCase


class SandboxGateway:
    """The Sparkle client against the sandbox process, with the fake's fault script: a fault scripted for an
    operation is switched on in the sandbox for that operation's next call only. The sandbox delays, drops
    and garbles POST answers only, so lookups meet only ``UNAVAILABLE``."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.client = SparkleClient(
            sandbox.url,
            lambda: DEFAULT_SECRET_KEY,
            read_timeout=0.5,
            retry=RetryPolicy(attempts=2, backoff_seconds=0.01),
        )
        self.script: dict[str, Fault] = {}
        self.refused_amounts = 0

    def fail_next(self, operation: str, fault: Fault) -> None:
        self.script[operation] = fault

    def clear_faults(self) -> None:
        self.script.clear()

    def complete_slow_calls(self) -> None:
        """The sandbox made every slow charge and refund at once; only their answers were late."""

    def _faulted(self, operation: str, call):
        fault = self.script.pop(operation, None)
        if fault is None or (operation not in ("charge", "refund") and fault is not Fault.UNAVAILABLE):
            return call()
        with self.sandbox.failing(fault):
            return call()

    def charge(self, *args, **kwargs):
        return self._faulted("charge", lambda: self.client.charge(*args, **kwargs))

    def find_charge(self, reference: str):
        return self._faulted("find_charge", lambda: self.client.find_charge(reference))

    def refund(self, *args, **kwargs):
        try:
            return self._faulted("refund", lambda: self.client.refund(*args, **kwargs))
        except GatewayRejected as rejected:
            self.refused_amounts += rejected.amount_refused
            raise

    def find_refund(self, reference: str):
        return self._faulted("find_refund", lambda: self.client.find_refund(reference))

    def charges_for(self, reference: str) -> list[Charge]:
        return [
            Charge(c["id"], c["status"], c.get("decline_code"), c["amount"], c["currency"], c["reference"])
            for c in self.sandbox.charges()
            if c["reference"] == reference
        ]

    def refunded_total(self, charge_id: str) -> int:
        return next(c["amount_refunded"] for c in self.sandbox.charges() if c["id"] == charge_id)


def test_model_on_moto_and_the_sandbox(aws_env, sandbox, atomic_requests):
    """The same machine with DynamoDB and KMS in moto and the Sparkle sandbox as a process: fewer examples."""

    class OnMoto(PaymentMachine):
        def make_gateway(self):
            sandbox.reset()
            return SandboxGateway(sandbox)

        def make_world(self, gateway):
            clock = FakeClock()
            env = provision(sandbox.url, suffix=uuid.uuid4().hex[:6], merchants={})
            deps = AwsAdapters(env, gateway, clock, clock.epoch).dependencies(Merchant("merchant-a", RuleSet()))
            return SimpleNamespace(deps=deps, clock=clock, service=PaymentService(deps))

    run_state_machine_as_test(
        OnMoto,
        settings=settings(
            max_examples=8, stateful_step_count=10, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
