"""An in-memory Sparkle (implements ``lambdas.gateway.Gateway``) with the sandbox's semantics: test cards decide
outcomes, idempotency keys replay, authorisations are captured (in part or in full) or voided once and expire by a
clock the test moves (``advance``), refunds never exceed what was captured, lookups by reference, and settlements
of the succeeded captures and refunds made by ``settle`` (the sandbox's own bookkeeping, with its fee rule and
faults). Faults are scripted per call. ``tests/test_gateway_contract.py`` holds it to the behaviour of
``SparkleClient`` against the sandbox process, so a test that passes against the fake says something about the real
client."""

import hashlib
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from enum import Enum

from lambdas.adapters.sparkle import CHARGE_ID, MAX_LINES_PER_PAGE, SETTLEMENT_LINE_ID, preferred_charge
from lambdas.domain.cards import Card
from lambdas.domain.settlements import is_settlement_id
from lambdas.gateway import (
    Charge,
    GatewayInvalidAnswer,
    GatewayOutcomeUnknown,
    GatewayRefund,
    GatewayRejected,
    GatewayUnavailable,
    Settlement,
    SettlementLine,
)
from sparkle_sandbox.server import AUTHORIZATION_SECONDS, DECLINES, PROCESSING_ERROR_CARD, SLOW_CARD, SLOW_REFUND_AMOUNT
from sparkle_sandbox.settlements import Faults as SettleFaults
from sparkle_sandbox.settlements import Settleable, Settlements

OPERATIONS = ("charge", "capture", "void", "find_charge", "refund", "find_refund", "settlements", "settlement_lines")


class Fault(Enum):
    UNAVAILABLE = "unavailable"  # fails before anything is processed (the client's retries all met a 503)
    LOST = "lost"  # processed (or replayed), the answer lost
    GARBAGE = "garbage"  # processed (or replayed), answered with something that is not an answer
    SLOW = "slow"  # processed, answered too late; its key stays in flight until complete_slow_calls()


class _Keyed:
    """One idempotency key: the request's digest and, once answered, the outcome to replay (a result or a
    GatewayRejected)."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.in_flight = True
        self.outcome: object = None


class FakeGateway:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._charges: dict[str, Charge] = {}
        self._refunded: dict[str, int] = {}
        self._refunds: dict[str, GatewayRefund] = {}
        self._keys: dict[tuple[str, str], _Keyed] = {}
        self._slow: list[tuple[_Keyed, object]] = []
        self._script: dict[str, deque[Fault]] = {operation: deque() for operation in OPERATIONS}
        self.refused_amounts = 0  # refunds asked for more than was left
        self.requests: Counter[str] = Counter()  # calls that reached the gateway, by operation
        self._clock_offset = 0.0  # seconds the gateway's clock is ahead of this machine's
        self._settlements = Settlements()

    # -- scripting and assertions ---------------------------------------------

    def fail_next(self, operation: str, *faults: Fault) -> None:
        """The next calls of ``operation`` meet ``faults``, one each, in order."""
        with self._lock:
            self._script[operation].extend(faults)

    def clear_faults(self) -> None:
        """Forget the faults scripted for calls that never came."""
        with self._lock:
            for script in self._script.values():
                script.clear()

    def complete_slow_calls(self) -> None:
        """Time passes: every slow call's answer is finally given, so its key replays from now on."""
        with self._lock:
            for record, outcome in self._slow:
                record.in_flight, record.outcome = False, outcome
            self._slow.clear()

    def advance(self, seconds: float) -> None:
        """Move the gateway's clock forward (authorisations expire by it)."""
        with self._lock:
            self._clock_offset += seconds

    def now(self) -> float:
        """The gateway's clock, unix seconds."""
        return time.time() + self._clock_offset

    def charges(self) -> list[Charge]:
        with self._lock:
            return [self._current(charge) for charge in list(self._charges.values())]

    def charge_by_id(self, charge_id: str) -> Charge | None:
        with self._lock:
            charge = self._charges.get(charge_id)
            return None if charge is None else self._current(charge)

    def charges_for(self, reference: str) -> list[Charge]:
        return [charge for charge in self.charges() if charge.reference == reference]

    def refunds(self) -> list[GatewayRefund]:
        with self._lock:
            return list(self._refunds.values())

    def refunds_for(self, charge_id: str) -> list[GatewayRefund]:
        return [refund for refund in self.refunds() if refund.charge_id == charge_id]

    def refunded_total(self, charge_id: str) -> int:
        with self._lock:
            return self._refunded.get(charge_id, 0)

    def settle(
        self, drop: tuple[str, ...] = (), adjust: dict[str, int] | None = None, unknown: int = 0
    ) -> list[Settlement]:
        """As ``POST /_sandbox/settle``: settle everything not yet settled, one settlement per currency; ``drop``
        leaves those references unsettled, ``adjust`` adds minor units to their lines, ``unknown`` adds that many
        lines nobody knows. The settlements made (none when nothing was unsettled)."""
        faults = SettleFaults(frozenset(drop), dict(adjust or {}), unknown)
        with self._lock:
            made = self._settlements.settle(self._settleable(), faults, int(self.now()))
        return [_settlement(settlement) for settlement in made]

    def _settleable(self) -> list[Settleable]:
        """Every succeeded capture, then every refund, each in the order it was made. Locked."""
        items = [
            Settleable("charge", c.id, c.id, None, c.reference, c.amount_captured, c.currency)
            for c in map(self._current, list(self._charges.values()))
            if c.status == "succeeded" and c.amount_captured > 0
        ]
        for refund in self._refunds.values():
            currency = self._charges[refund.charge_id].currency
            items.append(Settleable("refund", refund.id, refund.charge_id, refund.id, refund.reference,
                                    -refund.amount, currency))  # fmt: skip
        return items

    # -- the Gateway protocol ---------------------------------------------------

    def charge(
        self, reference: str, amount: int, currency: str, card: Card, idempotency_key: str, capture: bool = True
    ) -> Charge:
        number = card.number.digits
        request = (reference, amount, currency.upper(), number, card.exp_month, card.exp_year, card.cvc, capture)
        return self._post(
            "charge",
            idempotency_key,
            request,
            lambda: self._new_charge(reference, amount, currency, number, capture),
        )

    def capture(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> Charge:
        self._refuse_unless_charge_id(charge_id)
        captured = self._post(
            "capture",
            idempotency_key,
            (charge_id, amount),
            lambda: self._capture(charge_id, amount),
            scope=charge_id,
        )
        return self._for_reference(captured, reference)

    def void(self, charge_id: str, reference: str, idempotency_key: str) -> Charge:
        self._refuse_unless_charge_id(charge_id)
        voided = self._post("void", idempotency_key, (charge_id,), lambda: self._void(charge_id), scope=charge_id)
        return self._for_reference(voided, reference)

    def find_charge(self, reference: str) -> Charge | None:
        with self._lock:
            self._fail_lookup("find_charge")
            return preferred_charge(self.charges_for(reference))

    def refund(self, charge_id: str, amount: int, reference: str, idempotency_key: str) -> GatewayRefund:
        request = ("refund", charge_id, amount, reference)
        return self._post("refund", idempotency_key, request, lambda: self._new_refund(charge_id, amount, reference))

    def find_refund(self, reference: str) -> GatewayRefund | None:
        with self._lock:
            self._fail_lookup("find_refund")
            return next((refund for refund in self._refunds.values() if refund.reference == reference), None)

    def settlements(self, created_after: int) -> list[Settlement]:
        with self._lock:
            self._fail_lookup("settlements")
            return [_settlement(settlement) for settlement in self._settlements.listed(created_after)]

    def settlement_lines(
        self, settlement_id: str, starting_after: str | None = None, limit: int = MAX_LINES_PER_PAGE
    ) -> tuple[list[SettlementLine], bool]:
        if not is_settlement_id(settlement_id):
            raise GatewayInvalidAnswer("fake: the settlement id is not one, nothing was sent")
        if starting_after is not None and not SETTLEMENT_LINE_ID.fullmatch(starting_after):
            raise GatewayInvalidAnswer("fake: the line id to start after is not one, nothing was sent")
        if not 1 <= limit <= MAX_LINES_PER_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_LINES_PER_PAGE}")
        with self._lock:
            self._fail_lookup("settlement_lines")
            try:
                page = self._settlements.page(settlement_id, starting_after, limit)
            except KeyError:
                raise GatewayRejected(400, "invalid_request", "starting_after is no line of this settlement") from None
        if page is None:  # the client meets a 404: configuration, not chance
            raise GatewayUnavailable("fake: no such settlement (404)")
        lines, has_more = page
        return [_settlement_line(line) for line in lines], has_more

    # -- the gateway's side -----------------------------------------------------

    def _post(
        self, operation: str, key: str, request: tuple, process: Callable[[], tuple[object, bool]], scope: str = ""
    ):
        """Run ``process`` once per key (per ``operation`` and ``scope``: the sandbox scopes a key to the path),
        then answer as the scripted fault says."""
        digest = hashlib.sha256(repr(request).encode()).hexdigest()
        with self._lock:
            self.requests[operation] += 1
            fault = self._script[operation].popleft() if self._script[operation] else None
            if fault is Fault.UNAVAILABLE:
                raise GatewayUnavailable(f"fake: {operation} unavailable")
            record = self._keys.get((f"{operation} {scope}", key))
            if record is not None and record.digest != digest:
                raise GatewayOutcomeUnknown(f"fake: {operation} key used with another body (422)")
            if record is not None and record.in_flight:
                raise GatewayOutcomeUnknown(f"fake: {operation} with this key in flight (409)")
            if record is None:
                try:
                    outcome, slow = process()
                except GatewayRejected as rejected:
                    outcome, slow = rejected, False
                record = self._keys[(f"{operation} {scope}", key)] = _Keyed(digest)
                if slow or fault is Fault.SLOW:
                    self._slow.append((record, outcome))
                    raise GatewayOutcomeUnknown(f"fake: {operation} answered too late")
                record.in_flight, record.outcome = False, outcome
            if fault in (Fault.LOST, Fault.SLOW):
                raise GatewayOutcomeUnknown(f"fake: {operation} answer lost")
            if fault is Fault.GARBAGE:
                raise GatewayInvalidAnswer(f"fake: {operation} answered garbage")
            if isinstance(record.outcome, GatewayRejected):
                raise record.outcome
            return record.outcome

    def _fail_lookup(self, operation: str) -> None:
        self.requests[operation] += 1
        fault = self._script[operation].popleft() if self._script[operation] else None
        if fault is Fault.UNAVAILABLE:
            raise GatewayUnavailable(f"fake: {operation} unavailable")
        if fault in (Fault.LOST, Fault.SLOW):
            raise GatewayOutcomeUnknown(f"fake: {operation} answer lost")
        if fault is Fault.GARBAGE:
            raise GatewayInvalidAnswer(f"fake: {operation} answered garbage")

    def _new_charge(
        self, reference: str, amount: int, currency: str, number: str, capture: bool
    ) -> tuple[Charge, bool]:
        if not isinstance(amount, int) or amount <= 0 or len(currency) != 3 or not reference:
            raise GatewayRejected(400, "invalid_request", "amount, currency or reference invalid")
        if number == PROCESSING_ERROR_CARD:  # a 500 on every attempt, nothing charged, the key not kept
            raise GatewayUnavailable("fake: processing error")
        decline = DECLINES.get(number)
        status = "declined" if decline else "succeeded" if capture else "authorized"
        charge = Charge(
            f"ch_{secrets.token_hex(12)}",
            status,
            decline,
            amount,
            currency.upper(),
            reference,
            amount_captured=amount if status == "succeeded" else 0,
            amount_capturable=amount if status == "authorized" else 0,
            expires=int(self.now()) + AUTHORIZATION_SECONDS if status == "authorized" else None,
        )
        self._charges[charge.id] = charge
        return charge, number == SLOW_CARD

    def _capture(self, charge_id: str, amount: int) -> tuple[Charge, bool]:
        if not isinstance(amount, int) or amount <= 0:
            raise GatewayRejected(400, "invalid_request", "amount must be a positive integer")
        charge = self._still_authorized(charge_id, "charge_not_capturable")
        if amount > charge.amount_capturable:
            raise GatewayRejected(400, "amount_too_large", f"At most {charge.amount_capturable} can be captured.")
        captured = self._charges[charge_id] = replace(
            charge, status="succeeded", amount_captured=amount, amount_capturable=0
        )
        return captured, False

    def _void(self, charge_id: str) -> tuple[Charge, bool]:
        charge = self._still_authorized(charge_id, "charge_not_voidable")
        voided = self._charges[charge_id] = replace(charge, status="voided", amount_capturable=0)
        return voided, False

    def _still_authorized(self, charge_id: str, code: str) -> Charge:
        charge = self._charges.get(charge_id)
        if charge is None:
            raise GatewayRejected(400, "invalid_request", "No such charge.")
        charge = self._current(charge)
        if charge.status == "expired":
            raise GatewayRejected(400, "charge_expired", "The authorisation has expired.")
        if charge.status != "authorized":
            raise GatewayRejected(400, code, f"The charge is {charge.status}, not authorized.")
        return charge

    def _current(self, charge: Charge) -> Charge:
        """``charge`` as it is now: an authorisation whose time has come is expired."""
        if charge.status == "authorized" and charge.expires is not None and charge.expires <= self.now():
            charge = self._charges[charge.id] = replace(charge, status="expired", amount_capturable=0)
        return charge

    @staticmethod
    def _refuse_unless_charge_id(charge_id: str) -> None:
        """As the client does: an id that could steer the request's path is not sent."""
        if not CHARGE_ID.fullmatch(charge_id):
            raise GatewayInvalidAnswer("fake: the charge id is not one, nothing was sent")

    @staticmethod
    def _for_reference(charge: Charge, reference: str) -> Charge:
        """As the client does: an answer about another reference's charge is not believed."""
        if charge.reference != reference:
            raise GatewayInvalidAnswer(f"fake: charge {charge.id} is not for {reference}")
        return charge

    def _new_refund(self, charge_id: str, amount: int, reference: str) -> tuple[GatewayRefund, bool]:
        if not isinstance(amount, int) or amount <= 0 or not reference:
            raise GatewayRejected(400, "invalid_request", "amount or reference invalid")
        charge = self._charges.get(charge_id)
        if charge is None or charge.status != "succeeded":
            raise GatewayRejected(400, "invalid_request", "No succeeded charge with that id.")
        left = charge.amount_captured - self._refunded.get(charge_id, 0)
        if amount > left:
            self.refused_amounts += 1
            raise GatewayRejected(400, "amount_too_large", f"At most {left} can be refunded.")
        self._refunded[charge_id] = self._refunded.get(charge_id, 0) + amount
        refund = GatewayRefund(f"rf_{secrets.token_hex(12)}", charge_id, amount, "succeeded", reference)
        self._refunds[refund.id] = refund
        return refund, amount == SLOW_REFUND_AMOUNT


def _settlement(settlement: dict) -> Settlement:
    return Settlement(**settlement)


def _settlement_line(line: dict) -> SettlementLine:
    fields = {name: value for name, value in line.items() if name not in ("charge", "refund")}
    return SettlementLine(**fields, charge_id=line["charge"], refund_id=line["refund"])
