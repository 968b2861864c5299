"""The domain without mocks: cards, money, rules, payments and their ledger."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.domain.cards import (
    MAX_ECHOED_NAME,
    CardNumber,
    MaskedCard,
    check_cvc,
    check_expiry,
    luhn_valid,
    member_param,
    parse_card,
)
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.money import check_amount, normalize_currency
from lambdas.domain.payments import IllegalTransition, Payment, Status, balance
from lambdas.domain.rules import PaymentAttempt, RuleSet

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
CARD = MaskedCard("visa", "4242", 12, 2030, "fp")


def payment(amount=1999) -> Payment:
    return Payment("pay_1", amount, "USD", CARD, NOW)


# --- cards ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, brand",
    [
        ("4242424242424242", "visa"),
        ("5555 5555 5555 4444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("3782-822463-10005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "other"),
    ],
)
def test_brand_comes_from_the_prefix_after_spaces_and_dashes_are_removed(number, brand):
    assert CardNumber(number).brand == brand


@pytest.mark.parametrize("number", ["4242424242424241", "12345678901", "42424242424242424242", "4242x42424242424", ""])
def test_bad_numbers_are_refused_naming_the_field(number):
    with pytest.raises(InvalidRequest) as refused:
        CardNumber(number, "card.number")
    assert refused.value.param == "card.number"
    assert number.replace(" ", "") not in refused.value.message or not number


@pytest.mark.parametrize("number", ["12345678901", "4242x42424242424", "4242424242424241"])
def test_a_bad_card_number_is_refused_as_an_invalid_number_whatever_is_wrong_with_it(number):
    with pytest.raises(InvalidRequest) as refused:
        CardNumber(number, "card.number")
    assert refused.value.code == "invalid_number"


def test_a_card_number_never_prints_its_digits():
    number = CardNumber("4242424242424242")
    assert "4242424242424242" not in f"{number} {number!r}"
    assert "4242424242424242" not in repr(parse_card("4242424242424242", 12, 2030, TODAY, "card", cvc="123"))


def test_a_member_is_named_unless_its_name_is_too_long_or_holds_a_card_number():
    longest = "m" * MAX_ECHOED_NAME
    assert (member_param("metadata", longest, 2), member_param("", longest, 0)) == (f"metadata.{longest}", longest)
    assert member_param("metadata", longest + "m", 2) == "metadata[2]"
    assert member_param("", "4242-4242-4242-4242", 3) == "[3]"


def test_luhn():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_expiry_in_the_current_month_is_accepted_and_last_month_is_not():
    check_expiry(11, 2026, TODAY)
    with pytest.raises(InvalidRequest, match="expired"):
        check_expiry(10, 2026, TODAY)
    with pytest.raises(InvalidRequest) as refused:
        check_expiry(13, 2030, TODAY, "card")
    assert refused.value.param == "card.exp_month"


@pytest.mark.parametrize(
    "month, year, param, code",
    [
        (13, 2030, "card.exp_month", "invalid_expiry_month"),
        (0, 2030, "card.exp_month", "invalid_expiry_month"),
        (12, 1999, "card.exp_year", "invalid_expiry_year"),
        (1, 2101, "card.exp_year", "invalid_expiry_year"),
        (10, 2026, "card.exp_year", "expired_card"),
    ],
)
def test_a_bad_expiry_is_refused_with_its_documented_code_naming_the_field(month, year, param, code):
    with pytest.raises(InvalidRequest) as refused:
        check_expiry(month, year, TODAY, "card")
    assert (refused.value.param, refused.value.code) == (param, code)


def test_a_card_that_must_carry_a_cvc_and_has_none_is_refused_as_missing_cvc():
    with pytest.raises(InvalidRequest) as refused:
        parse_card("4242424242424242", 12, 2030, TODAY, "source.card", cvc_required=True)
    assert (refused.value.param, refused.value.code) == ("source.card.cvc", "missing_cvc")
    assert parse_card("4242424242424242", 12, 2030, TODAY, "card").cvc is None  # a CVC is optional unless required


def test_cvc_is_three_digits_or_four_for_amex():
    check_cvc("123", "visa")
    check_cvc("1234", "amex")
    for cvc, brand in (("1234", "visa"), ("123", "amex"), ("12a", "visa")):
        with pytest.raises(InvalidRequest):
            check_cvc(cvc, brand)


# --- money ---------------------------------------------------------------------


def test_currencies_are_accepted_in_any_case_and_returned_upper_case():
    assert normalize_currency("usd") == "USD"
    with pytest.raises(InvalidRequest) as refused:
        normalize_currency("XYZ")
    assert (refused.value.param, refused.value.code) == ("currency", "unsupported_currency")


@pytest.mark.parametrize("amount", [0, -1, 100_000_000, 19.99, True, "100"])
def test_amounts_outside_the_contract_are_refused(amount):
    with pytest.raises(InvalidRequest) as refused:
        check_amount(amount)
    assert (refused.value.param, refused.value.code) == ("amount", "invalid_amount")


# --- rules ---------------------------------------------------------------------

RULES_CONFIG = {
    "max_amount": {"usd": 5000},
    "allowed_currencies": ["USD", "EUR"],
    "velocity_per_hour": 3,
    "blocked_fingerprints": ["stolen"],
}


@pytest.mark.parametrize(
    "attempt, rule",
    [
        (PaymentAttempt(100, "USD", "fp"), None),
        (PaymentAttempt(100, "USD", "stolen"), "blocked_fingerprint"),
        (PaymentAttempt(100, "GBP", "fp"), "currency_allow_list"),
        (PaymentAttempt(5001, "USD", "fp"), "max_amount"),
        (PaymentAttempt(5000, "USD", "fp"), None),
        (PaymentAttempt(99_999, "EUR", "fp"), None),
    ],
)
def test_rules_name_the_first_one_broken(attempt, rule):
    assert RuleSet.from_config(RULES_CONFIG).first_violation(attempt) == rule  # read from config in the test


def test_empty_rules_allow_everything():
    assert RuleSet.from_config({}).first_violation(PaymentAttempt(10**8, "JPY", "x")) is None
    assert RuleSet.from_config({}).velocity_per_hour == 0  # no velocity limit unless one is set


# --- payments and the ledger ----------------------------------------------------


def test_success_moves_money_in_balanced_entries():
    settled, entries = payment().succeed("ch_1", NOW)
    assert settled.status is Status.SUCCEEDED and settled.charge_id == "ch_1"
    assert sorted(e.direction.value for e in entries) == ["credit", "debit"]
    assert sum(balance(entries).values()) == 0
    assert all(e.amount == 1999 and e.currency == "USD" for e in entries)


def test_decline_and_failure_move_no_money():
    assert payment().decline("insufficient_funds").status is Status.DECLINED
    assert payment().fail().status is Status.FAILED
    with pytest.raises(IllegalTransition):
        payment().decline("x").succeed("ch", NOW)


def refund(payment: Payment, refund_id: str, amount: int | None):
    """Reserve, then complete: a refund the gateway made."""
    reserved, pending = payment.reserve_refund(refund_id, amount, NOW)
    return reserved.complete_refund(pending, f"rf_{refund_id}", NOW)


def test_refunds_reverse_entries_up_to_the_captured_amount():
    settled, captured = payment(1000).succeed("ch", NOW)
    partly, done, first = refund(settled, "re_1", 400)
    assert partly.display_status is Status.PARTIALLY_REFUNDED and done.amount == 400
    full, _, second = refund(partly, "re_2", None)
    assert full.display_status is Status.REFUNDED and full.amount_refunded == 1000
    assert balance(captured + first + second) == {"gateway_receivable:sparkle": 0, "merchant_balance": 0}
    with pytest.raises(InvalidRequest) as refused:
        full.check_refund(1)
    assert refused.value.param == "amount"


def test_a_pending_refund_holds_its_amount_until_completed_or_cancelled():
    settled, _ = payment(1000).succeed("ch", NOW)
    reserved, pending = settled.reserve_refund("re_1", 700, NOW)
    assert (reserved.refundable_amount, reserved.amount_refunded, reserved.display_status) == (300, 0, Status.SUCCEEDED)
    with pytest.raises(InvalidRequest, match="At most 300"):
        reserved.reserve_refund("re_2", 301, NOW)
    released, failed = reserved.cancel_refund(pending)
    assert released.refundable_amount == 1000 and failed.status.value == "failed"
    with pytest.raises(IllegalTransition):
        released.complete_refund(failed, "rf", NOW)


def test_refunding_more_than_is_left_or_an_unsettled_payment_is_refused():
    settled, _ = payment(1000).succeed("ch", NOW)
    with pytest.raises(InvalidRequest, match="At most 1000"):
        settled.check_refund(1001)
    with pytest.raises(InvalidRequest, match="pending") as refused:
        payment().check_refund(None)
    assert (refused.value.param, refused.value.code) == ("amount", "payment_not_refundable")


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(1, 99_999_999),
    refunds=st.lists(st.one_of(st.none(), st.integers(-5, 10**8)), max_size=12),
    declined=st.booleans(),
)
def test_any_sequence_keeps_debits_equal_credits_and_never_refunds_more_than_captured(amount, refunds, declined):
    current = payment(amount)
    entries = []
    if declined:
        current = current.decline("generic_decline")
    else:
        current, entries = current.succeed("ch", NOW)
    for n, requested in enumerate(refunds):
        try:
            current, _, reversing = refund(current, f"re_{n}", requested)
        except InvalidRequest:
            continue
        entries += reversing
    debits = sum(e.amount for e in entries if e.direction.value == "debit")
    credits = sum(e.amount for e in entries if e.direction.value == "credit")
    assert debits == credits
    assert 0 <= current.amount_refunded <= (0 if declined else amount)
    if declined:
        assert entries == [] and current.amount_refunded == 0
    else:
        assert balance(entries)["merchant_balance"] == -(amount - current.amount_refunded)


def test_only_ids_shaped_as_the_service_makes_them_are_looked_up():
    from lambdas.domain.ids import is_id, new_id

    made = new_id("pay")
    assert is_id("pay", made) and not is_id("tok", made)
    for text in (
        "pay_",
        "pay_" + "0" * 23,
        "pay_" + "0" * 25,
        "pay_" + "0" * 3000,
        "PAY_" + "0" * 24,
        "pay_" + "g" * 24,
    ):
        assert not is_id("pay", text), text
