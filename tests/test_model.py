"""A stateful model test: random sequences of tokenize, pay, authorise, capture
(in full or in part), cancel, same-key retry, refund (partial, concurrent),
expiry and reconcile, with the gateway dropping, failing, delaying and garbling
answers at random.

After every step: at most one gateway charge per payment, the gateway's
refunds never exceed the capture, the ledger never books more than the
gateway did, a capture booked is the gateway's capture, a hold is held exactly
while the payment requires capture, and debits equal credits. After a final
reconcile with the faults off and every authorisation expired: every payment's
ledger equals the gateway's capture less its refunds, no hold is left, and a
cancelled payment's charge is voided or expired.

It runs on the in-memory fakes (hundreds of examples). ``test_model_on_moto``
runs the same machine on the DynamoDB adapters (moto in process), with fewer."""

import os
import threading
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import requests as http
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.bootstrap import AwsAdapters
from lambdas.domain.errors import GatewayFailed, IdempotencyConflict, InvalidRequest
from lambdas.domain.events import REFUND_EVENTS, EventType
from lambdas.domain.merchants import Merchant
from lambdas.domain.payments import (
    AUTHORIZATION_VALIDITY,
    HOLD,
    MERCHANT,
    RECEIVABLE,
    Direction,
    RefundStatus,
    Status,
    balance,
)
from lambdas.domain.rules import RuleSet
from lambdas.gateway import Charge, GatewayRejected
from lambdas.service import PaymentService
from lambdas.use_cases.payments import PaymentCommand
from lambdas.use_cases.tokens import CardInput
from sparkle_sandbox.server import (
    AUTHORIZATION_SECONDS,
    DECLINES,
    DEFAULT_SECRET_KEY,
    PROCESSING_ERROR_CARD,
    SLOW_CARD,
)
from tests.support.fakes import FakeClock, fake_world
from tests.support.fakes_gateway import FakeGateway, Fault
from tools.function_resources import provision

CARDS = ("4242424242424242", "5555555555554444", next(iter(DECLINES)), PROCESSING_ERROR_CARD, SLOW_CARD)
AUTHORIZATION_CARDS = (*CARDS[:2] * 3, *CARDS[2:])  # mostly authorised, so that most captures and cancels act
FAULTS = st.one_of(st.none(), st.sampled_from(list(Fault)))
AMOUNTS = st.integers(1, 5000)
# A capture's amount as what it leaves of the authorisation: None captures all of it, below 0 asks too much, and
# all of it or more asks for nothing (an invalid amount).
LEFT_UNCAPTURED = st.one_of(st.none(), st.integers(-2, 5000))
# Examples of the machine on the fakes; `make mutate` runs it once per mutant, so it asks for fewer.
MODEL_EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "200"))
CONTRACT_ERRORS = (GatewayFailed, InvalidRequest, IdempotencyConflict)  # 502/504, 400, 409/422: never a 500
POSTED = ("charge", "capture", "void", "refund")  # the gateway's operations the sandbox can delay, drop or garble


class PaymentMachine(RuleBasedStateMachine):
    tokens = Bundle("tokens")
    requests = Bundle("requests")  # (key, command) of payments sent
    refunds = Bundle("refunds")  # (key, payment id, amount) of refunds sent
    authorizations = Bundle("authorizations")  # (key, command) of authorisations sent (in ``requests`` too)
    actions = Bundle("actions")  # (key, payment id, amount or None for a cancel) of captures and cancels sent

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

    @rule(targets=(requests, authorizations), number=st.sampled_from(AUTHORIZATION_CARDS), amount=AMOUNTS, fault=FAULTS)
    def authorize(self, number: str, amount: int, fault: Fault | None):
        return self._pay(PaymentCommand(amount, "usd", card=CardInput(number, 12, 2030, "737"), capture=False), fault)

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

    @rule(target=actions, request=authorizations, left=LEFT_UNCAPTURED, fault=FAULTS)
    def capture(self, request, left: int | None, fault: Fault | None):
        _, command = request
        return self._act(self._payment_of(request), None if left is None else command.amount - left, fault)

    @rule(target=actions, request=requests, amount=AMOUNTS, fault=FAULTS)
    def capture_any(self, request, amount: int, fault: Fault | None):
        return self._act(self._payment_of(request), amount, fault)

    @rule(target=actions, request=authorizations, fault=FAULTS)
    def cancel(self, request, fault: Fault | None):
        return self._act(self._payment_of(request), None, fault, cancel=True)

    def _act(self, payment_id: str, amount: int | None, fault: Fault | None, cancel: bool = False):
        key = self._key()
        action = (key, payment_id, amount, cancel)
        if fault:
            self.gateway.fail_next("void" if cancel else "capture", fault)
        self._call(lambda: self._send_action(action))
        return action

    def _send_action(self, action):
        key, payment_id, amount, cancel = action
        if cancel:
            return self.world.service.cancel(payment_id, key)
        return self.world.service.capture(payment_id, amount, key)

    @rule(action=actions, lookup_fault=FAULTS, fault=FAULTS)
    def retry_action(self, action, lookup_fault: Fault | None, fault: Fault | None) -> None:
        if lookup_fault:
            self.gateway.fail_next("find_charge", lookup_fault)
        if fault:
            self.gateway.fail_next("void" if action[3] else "capture", fault)
        self._call(lambda: self._send_action(action))

    @rule(request=authorizations, left=LEFT_UNCAPTURED)
    def capture_and_cancel_race(self, request, left: int | None) -> None:
        """No faults: exactly one wins, the other is refused."""
        payment_id, amount = self._payment_of(request), None if left is None else request[1].amount - left
        before = self.store.get_payment(payment_id, with_metadata=False)
        actions = [(self._key(), payment_id, amount, False), (self._key(), payment_id, None, True)]
        barrier, answers = threading.Barrier(2), []

        def act(action) -> None:
            barrier.wait()
            answers.append(self._call(lambda: self._send_action(action)))

        threads = [threading.Thread(target=act, args=(action,)) for action in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(isinstance(a, InvalidRequest) or getattr(a, "status", None) == 200 for a in answers), answers
        live = [c for c in self.gateway.charges_for(payment_id) if c.status == "authorized"]
        fits = amount is None or (before is not None and 0 < amount <= before.amount)
        if before is not None and before.status is Status.REQUIRES_CAPTURE and not before.action and live and fits:
            assert sorted(getattr(a, "status", 400) for a in answers) == [200, 400], answers

    @rule(gateway_only=st.booleans())
    def authorisations_expire(self, gateway_only: bool) -> None:
        """Past every authorisation's expiry at the gateway, and (unless ``gateway_only``) in the service too."""
        self.gateway.advance(AUTHORIZATION_SECONDS + 60)
        if not gateway_only:
            self.world.clock.advance(AUTHORIZATION_VALIDITY + timedelta(minutes=1))
            self.world.service.reconcile()

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
            assert refunded <= (charged[0].amount_captured if charged else 0)
            assert payment.amount_refunded <= refunded
            assert payment.amount_refunded + payment.amount_reserved <= payment.amount_captured

    @invariant()
    def a_booked_capture_is_the_gateways_and_a_hold_is_held_while_capture_is_required(self) -> None:
        for payment in self.payments():
            entries = self.store.entries(payment.id)
            assert sum(balance(entries).values()) == 0
            assert balance(entries).get(HOLD, 0) == (payment.amount if payment.status is Status.REQUIRES_CAPTURE else 0)
            if payment.status is Status.SUCCEEDED:
                (charge,) = self.gateway.charges_for(payment.id)
                assert (charge.status, charge.amount_captured) == ("succeeded", payment.amount_captured)

    @invariant()
    def an_event_exists_exactly_when_its_state_change_exists(self) -> None:
        """Each payment has one event per state it reached past pending (an authorisation may have expired before
        its answer was booked: then canceled only), each refund one for the state it settled in; every event shows
        its object in the state its type names, and none tells of a change that was not made."""
        listed, cursor = [], None
        while True:
            page, has_more = self.store.list_events(100, cursor, None)
            listed += page
            if not has_more:
                break
            cursor = page[-1]
        assert len({event.id for event in listed}) == len(listed)
        told: dict[tuple[str, str | None], Counter] = {}
        for event in listed:
            changed = event.refund.status.value if event.refund else event.payment.status.value
            assert event.type.value.endswith(f".{changed}"), event
            shown = event.payment  # as it stood: never more refunded and reserved than captured
            assert shown.amount_reserved >= 0 and shown.amount_refunded + shown.amount_reserved <= shown.amount_captured
            told.setdefault((event.payment.id, event.refund.id if event.refund else None), Counter())[event.type] += 1
        payments = {payment.id: payment for payment in self.payments()}
        for payment_id, _ in told:  # a payment made under a key reused after its record expired, say
            payments[payment_id] = payments.get(payment_id) or self.store.get_payment(payment_id, with_metadata=False)
        for (payment_id, refund_id), types in told.items():
            assert payments[payment_id] is not None, f"an event of {payment_id}, which was never made"
            if refund_id is None:
                assert types in _payment_histories(payments[payment_id]), (payments[payment_id], types)
            else:
                refund = self.store.get_refund(payment_id, refund_id)
                assert types == Counter({REFUND_EVENTS[refund.status]: 1}), (refund, types)
        for payment in payments.values():
            assert told.get((payment.id, None), Counter()) in _payment_histories(payment), payment
        for payment_id, refund_id in self.refund_ids:
            refund = self.store.get_refund(payment_id, refund_id)
            expected = Counter({REFUND_EVENTS[refund.status]: 1}) if refund.status in REFUND_EVENTS else Counter()
            assert told.get((payment_id, refund_id), Counter()) == expected, refund

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        self.gateway.complete_slow_calls()
        for _ in range(2):  # faults off: everything pending settles or is given up
            self.world.clock.advance(timedelta(hours=2))
            self.world.service.reconcile()
        self.world.clock.advance(AUTHORIZATION_VALIDITY)  # every authorisation expires
        self.world.service.reconcile()
        for payment in self.payments():
            entries = self.store.entries(payment.id)
            debits = sum(e.amount for e in entries if e.direction is Direction.DEBIT)
            assert debits == sum(e.amount for e in entries if e.direction is Direction.CREDIT)
            charged = [c for c in self.gateway.charges_for(payment.id) if c.status == "succeeded"]
            net = charged[0].amount_captured - self.gateway.refunded_total(charged[0].id) if charged else 0
            assert balance(entries).get(MERCHANT, 0) == -net
            assert balance(entries).get(RECEIVABLE, 0) == net
            assert balance(entries).get(HOLD, 0) == 0
            assert payment.status not in (Status.PENDING, Status.REQUIRES_CAPTURE) and payment.action is None
            assert (payment.status is Status.SUCCEEDED) == bool(charged)
            if payment.status is Status.CANCELED:
                assert {c.status for c in self.gateway.charges_for(payment.id)} <= {"voided", "expired"}
        for payment_id, refund_id in self.refund_ids:
            assert self.store.get_refund(payment_id, refund_id).status is not RefundStatus.PENDING
        self.an_event_exists_exactly_when_its_state_change_exists()


def _payment_histories(payment) -> list[Counter]:
    """The events a payment in its state may have had, as counts of their types."""
    reached = {
        Status.PENDING: [[]],
        Status.REQUIRES_CAPTURE: [[EventType.PAYMENT_REQUIRES_CAPTURE]],
        Status.DECLINED: [[EventType.PAYMENT_DECLINED]],
        Status.FAILED: [[EventType.PAYMENT_FAILED]],
        Status.SUCCEEDED: [[EventType.PAYMENT_SUCCEEDED] + ([] if payment.capture
                                                            else [EventType.PAYMENT_REQUIRES_CAPTURE])],
        Status.CANCELED: [[EventType.PAYMENT_CANCELED], [EventType.PAYMENT_REQUIRES_CAPTURE,
                                                         EventType.PAYMENT_CANCELED]],
    }[payment.status]  # fmt: skip
    return [Counter(types) for types in reached]


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

    def advance(self, seconds: float) -> None:
        http.post(f"{self.sandbox.url}/_sandbox/clock", json={"advance": seconds}, timeout=5)

    def _faulted(self, operation: str, call):
        fault = self.script.pop(operation, None)
        if fault is None or (operation not in POSTED and fault is not Fault.UNAVAILABLE):
            return call()
        with self.sandbox.failing(fault):
            return call()

    def charge(self, *args, **kwargs):
        return self._faulted("charge", lambda: self.client.charge(*args, **kwargs))

    def capture(self, *args, **kwargs):
        return self._faulted("capture", lambda: self.client.capture(*args, **kwargs))

    def void(self, *args, **kwargs):
        return self._faulted("void", lambda: self.client.void(*args, **kwargs))

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
            Charge(
                c["id"],
                c["status"],
                c.get("decline_code"),
                c["amount"],
                c["currency"],
                c["reference"],
                amount_captured=c["amount_captured"],
            )
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
