"""GET /settlements and GET /settlements/{id} on the in-memory fakes: each merchant sees its own complete shares only,
newest first, paged as payments are, in the contract's shape; a settlement's event shows the share as GET does and
is filtered by type; a matched line's entries show in the payment's ledger and in balances that still sum to zero."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdas.domain.errors import InvalidRequest, NotFound
from lambdas.domain.events import EventType
from lambdas.domain.ids import new_id
from lambdas.domain.settlements import (
    BANK,
    GATEWAY_FEES,
    Mismatch,
    MismatchReason,
    Settlement,
    SettlementLine,
    ShareLine,
    compare,
    expected_of,
    is_settlement_id,
    settlement_entries,
)
from lambdas.domain.timestamps import iso
from lambdas.response_models import (
    EventResponse,
    LedgerResponse,
    SettlementDetailResponse,
    SettlementListResponse,
)
from lambdas.service import PaymentService
from lambdas.use_cases import Dependencies
from lambdas.use_cases.settlements import complete_share, import_settlements
from tests.support.fakes import FakeWorld
from tests.support.fakes_settlements import FakeSettlementImports
from tests.support.payments import captured

FEE = 59  # the sandbox's fee of a 1000 capture: 2.9 % rounded half up, plus 30


def settlement(world: FakeWorld, minutes_ago: int = 0, currency: str = "USD") -> Settlement:
    """A gateway settlement made ``minutes_ago`` (its totals are the gateway's, not what a share shows)."""
    created = int((world.clock() - timedelta(minutes=minutes_ago)).timestamp())
    return Settlement(new_id("st"), currency, created, 0, 0, 0, 0)


def line(amount: int = 1000, fee: int = FEE, mismatch: Mismatch | None = None) -> ShareLine:
    return ShareLine(new_id("sl"), new_id("pay"), amount, fee, mismatch)


def differs(share_line: ShareLine, ledger_amount: int) -> ShareLine:
    """``share_line`` as a mismatch: its amount differs from what the ledger expects."""
    mismatch = Mismatch(
        share_line.reference,
        share_line.line_id,
        MismatchReason.AMOUNT_DIFFERS,
        ledger_amount,
        share_line.amount,
        "USD",
        "USD",
    )
    return replace(share_line, mismatch=mismatch)


def recorded(deps: Dependencies, made: Settlement, *lines: ShareLine, complete: bool = True) -> Settlement:
    """``lines`` recorded in the merchant's share of ``made`` (none booked), then the share completed with its event,
    as the import does."""
    for share_line in lines:
        uow = deps.store.unit_of_work()
        deps.store.add_share_line(uow, made, share_line, None, [])
        uow.commit()
    if complete:
        complete_share(deps, made)
    return made


def merchant_b(world: FakeWorld) -> tuple[Dependencies, PaymentService]:
    service = world.other()
    return service.deps, service


def shown(service: PaymentService, settlement_id: str) -> dict[str, Any]:
    answer = service.get_settlement(settlement_id)
    assert answer.status == 200
    SettlementDetailResponse.model_validate(answer.body)
    return answer.body


def listed(service: PaymentService, limit: str | None = "100", starting_after: str | None = None) -> dict[str, Any]:
    body = service.list_settlements(limit, starting_after).body
    SettlementListResponse.model_validate(body)
    return body


# -- the contract's shape -------------------------------------------------------------------------------------------


def test_a_share_shows_its_totals_and_each_mismatch_as_the_contract_says(world):
    """Breaks if a total, the net, the status, or a mismatch's sides were rendered other than the contract's shape."""
    matched, adjusted = line(1000, FEE), differs(line(1005, 59), ledger_amount=1000)
    refunded = line(-300, 0)
    made = recorded(world.deps, settlement(world), matched, adjusted, refunded)
    assert shown(world.service, made.id) == {
        "id": made.id,
        "currency": "USD",
        "gross": 1000 + 1005 - 300,
        "fees": FEE + 59,
        "net": 1000 + 1005 - 300 - FEE - 59,
        "lines": 3,
        "status": "mismatched",
        "created_at": iso(datetime.fromtimestamp(made.created, UTC)),  # the settlement's, not the import's
        "mismatches": [
            {
                "reference": adjusted.reference,
                "gateway_line": adjusted.line_id,
                "reason": "amount_differs",
                "ledger_amount": 1000,
                "gateway_amount": 1005,
            }
        ],
    }


def test_a_listing_shows_each_share_without_its_mismatches(world):
    made = recorded(world.deps, settlement(world), line(), differs(line(990), ledger_amount=1000))
    (item,) = listed(world.service)["data"]
    assert "mismatches" not in item
    assert item == {k: v for k, v in shown(world.service, made.id).items() if k != "mismatches"}
    assert item["status"] == "mismatched"


def test_a_share_whose_lines_all_match_is_reconciled_with_no_mismatches(world):
    made = recorded(world.deps, settlement(world), line(), line(2000, 88))
    body = shown(world.service, made.id)
    assert (body["status"], body["mismatches"], body["lines"]) == ("reconciled", [], 2)


def test_a_not_settled_movement_is_listed_with_no_gateway_line_and_no_gateway_amount(world):
    """Breaks if a mismatch no line brought lost its reference or showed a side the gateway never gave."""
    made = settlement(world)
    share_line = line()
    recorded(world.deps, made, share_line, complete=False)
    payment_id = captured(world)
    (expected,) = [e for e in map(expected_of, world.deps.store.entries(payment_id)) if e]
    world.deps.store.add_expected([expected])
    missing = Mismatch(payment_id, None, MismatchReason.NOT_SETTLED, 1000, None, "USD", None)
    uow = world.deps.store.unit_of_work()
    world.deps.store.add_not_settled(uow, made, expected, missing)
    uow.commit()
    complete_share(world.deps, made)
    (mismatch,) = shown(world.service, made.id)["mismatches"]
    assert mismatch == {
        "reference": payment_id,
        "gateway_line": None,
        "reason": "not_settled",
        "ledger_amount": 1000,
        "gateway_amount": None,
    }


# -- what a merchant may see ----------------------------------------------------------------------------------------


def test_a_share_not_imported_in_full_is_as_unknown_as_none(world):
    """Breaks if a share was shown (or accepted as a cursor) before every line of its settlement was imported."""
    made = recorded(world.deps, settlement(world), line(), complete=False)
    with pytest.raises(NotFound):
        world.service.get_settlement(made.id)
    assert listed(world.service)["data"] == []
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_settlements(None, made.id)
    assert refused.value.param == "starting_after"


def test_another_merchants_share_is_neither_shown_nor_listed_nor_a_cursor(world):
    """Breaks if a merchant saw a settlement's lines of another merchant's payments."""
    deps_b, service_b = merchant_b(world)
    theirs = recorded(deps_b, settlement(world), line(5000, 175))
    ours = recorded(world.deps, settlement(world, minutes_ago=1), line())
    with pytest.raises(NotFound):
        world.service.get_settlement(theirs.id)
    assert [s["id"] for s in listed(world.service)["data"]] == [ours.id]
    assert [s["id"] for s in listed(service_b)["data"]] == [theirs.id]
    with pytest.raises(InvalidRequest):
        world.service.list_settlements(None, theirs.id)


def test_each_merchant_sees_only_its_own_lines_of_one_settlement(world):
    deps_b, service_b = merchant_b(world)
    made = settlement(world)
    recorded(world.deps, made, line(1000, FEE))
    recorded(deps_b, made, line(5000, 175), differs(line(10), ledger_amount=0))
    ours, theirs = shown(world.service, made.id), shown(service_b, made.id)
    assert (ours["gross"], ours["lines"], ours["status"], ours["mismatches"]) == (1000, 1, "reconciled", [])
    assert (theirs["gross"], theirs["lines"], theirs["status"]) == (5010, 2, "mismatched")


@pytest.mark.parametrize("settlement_id", ["st_1", "st_" + "aZ9" * 21 + "x"])
def test_a_settlement_id_of_any_shape_the_gateway_client_accepts_is_read(world, settlement_id):
    """Breaks if the read path refused an id the client imports (the two check it with one function)."""
    assert is_settlement_id(settlement_id)
    made = recorded(world.deps, replace(settlement(world), id=settlement_id), line())
    assert shown(world.service, made.id)["id"] == settlement_id


@pytest.mark.parametrize("settlement_id", ["st_", "st_nope!", "4242424242424242", "pay_" + "0" * 24, "st_" + "a" * 65])
def test_an_id_that_is_no_settlement_id_is_a_404_that_does_not_repeat_it(world, settlement_id):
    with pytest.raises(NotFound) as refused:
        world.service.get_settlement(settlement_id)
    assert settlement_id not in refused.value.message


# -- paging ---------------------------------------------------------------------------------------------------------


def test_settlements_page_newest_first_as_payments_do(world):
    """Breaks if a page skipped or repeated a share, was in the wrong order, or said more follow when none do."""
    made = [recorded(world.deps, settlement(world, minutes_ago=m), line()) for m in (30, 20, 10)]
    newest_first = [s.id for s in reversed(made)]
    first = listed(world.service, "2")
    assert ([s["id"] for s in first["data"]], first["has_more"]) == (newest_first[:2], True)
    rest = listed(world.service, "2", first["data"][-1]["id"])
    assert ([s["id"] for s in rest["data"]], rest["has_more"]) == (newest_first[2:], False)
    assert [s["id"] for s in listed(world.service, None)["data"]] == newest_first


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "²", ""])
def test_a_limit_out_of_bounds_is_refused_naming_it(world, limit):
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_settlements(limit, None)
    assert refused.value.param == "limit"


def test_starting_after_an_unknown_id_is_refused_without_repeating_it(world):
    for cursor in ("st_" + "0" * 24, "4242424242424242"):
        with pytest.raises(InvalidRequest) as refused:
            world.service.list_settlements(None, cursor)
        assert refused.value.param == "starting_after"
        assert cursor not in refused.value.message


# -- events ---------------------------------------------------------------------------------------------------------


def test_a_completed_share_writes_its_event_showing_the_share_as_get_does(world):
    """Breaks if a settlement's event showed anything other than GET /settlements/{id}, or was of the wrong type."""
    reconciled = recorded(world.deps, settlement(world, minutes_ago=1), line())
    mismatched = recorded(world.deps, settlement(world), differs(line(1001), ledger_amount=1000))
    for made, event_type in (
        (reconciled, EventType.SETTLEMENT_RECONCILED),
        (mismatched, EventType.SETTLEMENT_MISMATCH),
    ):
        page = world.service.list_events("100", None, event_type.value).body
        (event,) = page["data"]
        EventResponse.model_validate(event)
        assert event["data"]["object"] == shown(world.service, made.id)
        assert world.service.get_event(event["id"]).body == event


def test_settlement_events_list_beside_payment_events_and_filter_by_type(world):
    """Breaks if a payment-less event broke a listing, or the type filter let other types through."""
    captured(world)
    made = recorded(world.deps, settlement(world), differs(line(1), ledger_amount=0))
    every = world.service.list_events("100", None, None).body["data"]
    assert {e["type"] for e in every} == {"payment.succeeded", "settlement.mismatch"}
    only = world.service.list_events("100", None, "settlement.mismatch").body["data"]
    assert [e["data"]["object"]["id"] for e in only] == [made.id]
    assert world.service.list_events("100", None, "settlement.reconciled").body["data"] == []
    for event in every:
        EventResponse.model_validate(event)


def test_another_merchants_settlement_event_is_not_theirs_to_read(world):
    deps_b, service_b = merchant_b(world)
    recorded(deps_b, settlement(world), line())
    (event,) = service_b.list_events("100", None, None).body["data"]
    with pytest.raises(NotFound):
        world.service.get_event(event["id"])
    assert world.service.list_events("100", None, None).body["data"] == []


# -- the ledger and the balances ------------------------------------------------------------------------------------


def booked(world: FakeWorld, payment_id: str, made: Settlement, amount: int, fee: int) -> None:
    """A line of ``made`` for the payment's capture, booked as the import books a match."""
    (expected,) = [e for e in map(expected_of, world.deps.store.entries(payment_id)) if e]
    world.deps.store.add_expected([expected])
    gateway_line = SettlementLine(new_id("sl"), "charge", None, None, payment_id, amount, fee, expected.currency)
    assert compare(made, gateway_line, expected) is None
    entries = settlement_entries(made.id, gateway_line, expected, world.clock())
    uow = world.deps.store.unit_of_work()
    share_line = ShareLine(gateway_line.id, payment_id, amount, fee)
    world.deps.store.add_share_line(uow, made, share_line, expected, entries)
    uow.commit()
    complete_share(world.deps, made)


def balances(service: PaymentService) -> dict[tuple[str, str], int]:
    body = service.balances().body
    return {(b["account"], b["currency"]): b["amount"] for b in body["balances"]}


def test_balances_show_bank_and_gateway_fees_once_booked_and_still_sum_to_zero(world):
    """Breaks if a settlement's entries were left out of the heads' balances, or unbalanced them."""
    payment_id = captured(world, 1000)
    assert {account for account, _ in balances(world.service)}.isdisjoint({BANK, GATEWAY_FEES})
    booked(world, payment_id, settlement(world), 1000, FEE)
    after = balances(world.service)
    assert after[(BANK, "USD")] == 1000 - FEE
    assert after[(GATEWAY_FEES, "USD")] == FEE
    assert after[("gateway_receivable:sparkle", "USD")] == 0
    for currency in {c for _, c in after}:
        assert sum(amount for (_, c), amount in after.items() if c == currency) == 0


def test_a_payments_ledger_shows_its_settlement_entries_like_the_others(world):
    payment_id = captured(world, 1000)
    before = world.service.ledger(payment_id).body["entries"]
    booked(world, payment_id, settlement(world), 1000, FEE)
    body = world.service.ledger(payment_id).body
    LedgerResponse.model_validate(body)
    added = body["entries"][len(before) :]
    assert {(e["account"], e["direction"], e["amount"]) for e in added} == {
        (GATEWAY_FEES, "debit", FEE),
        ("gateway_receivable:sparkle", "credit", FEE),
        (BANK, "debit", 1000 - FEE),
        ("gateway_receivable:sparkle", "credit", 1000 - FEE),
    }
    assert all(e["chain"] is not None and e["sequence"] and e["hash"] for e in added)


def test_the_share_a_booked_line_makes_is_reconciled(world):
    payment_id = captured(world, 1000)
    made = settlement(world)
    booked(world, payment_id, made, 1000, FEE)
    body = shown(world.service, made.id)
    assert (body["gross"], body["fees"], body["net"], body["status"]) == (1000, FEE, 1000 - FEE, "reconciled")


# -- what the import makes, as the API shows it ---------------------------------------------------------------------


def test_an_imported_settlement_shows_the_sandboxs_fees_and_its_adjusted_line(world, gateway):
    """Breaks if what the import recorded reached the API other than as the gateway settled it: the fee rule, the
    adjusted line's two sides, the event of its type."""
    kept, adjusted = captured(world, 1000), captured(world, 2000)
    (made,) = gateway.settle(adjust={adjusted: 5})
    counts = import_settlements(gateway, FakeSettlementImports(world.db), [world.deps], world.clock)
    assert (counts["settlements"], counts["matched"], counts["mismatched"]) == (1, 1, 1)
    body = shown(world.service, made.id)
    assert (body["gross"], body["fees"], body["lines"], body["status"]) == (3005, FEE + 88, 2, "mismatched")
    assert body["mismatches"] == [
        {"reference": adjusted, "gateway_line": body["mismatches"][0]["gateway_line"], "reason": "amount_differs",
         "ledger_amount": 2000, "gateway_amount": 2005}
    ]  # fmt: skip
    (event,) = world.service.list_events("10", None, "settlement.mismatch").body["data"]
    assert event["data"]["object"] == body
    assert balances(world.service)[(BANK, "USD")] == 1000 - FEE
    assert kept not in {m["reference"] for m in body["mismatches"]}
