"""Card numbers in text: free text refuses them in every usual spelling, error
bodies and logs mask them, the tests' scanner finds them, identifiers stay whole.
The spellings come from tests/support/leaks.py, so the code and the scanner are held to one list."""

import json
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdas.domain.cards import (
    contains_card_number,
    luhn_valid,
    mask_card_numbers,
    member_param,
    refuse_card_numbers,
)
from lambdas.domain.errors import InvalidRequest
from lambdas.domain.money import normalize_currency
from lambdas.logs import mask_card_data
from tests.support.cases import assert_holds_for_each
from tests.support.leaks import TEST_PANS, card_data_in, spellings

EVERY_SPELLING = sorted({spelling for pan in TEST_PANS for spelling in spellings(pan)})


def test_the_spellings_cover_each_separator_and_the_amex_grouping():
    amex = spellings("378282246310005")
    assert {
        "378282246310005",
        "3782 822463 10005",
        "3782-822463-10005",
        "3782.8224.6310.005",
        "3782/822463/10005",
    } <= amex
    assert "4242.4242.4242.4242" in spellings("4242424242424242")


def _refused_as_card_number_in_text(text: str) -> bool:
    try:
        refuse_card_numbers(text, "metadata.note")
    except InvalidRequest as refused:
        return refused.code == "card_number_in_text"
    return False


def test_free_text_holding_a_card_number_in_any_usual_spelling_is_refused():
    assert_holds_for_each(
        EVERY_SPELLING, lambda spelling: contains_card_number(f"order for card {spelling}, thanks"), "not refused"
    )


def test_free_text_holding_a_card_number_is_refused_as_card_number_in_text_naming_the_field():
    with pytest.raises(InvalidRequest) as refused:
        refuse_card_numbers(f"order for card {TEST_PANS[0]}", "metadata.note")
    assert (refused.value.param, refused.value.code) == ("metadata.note", "card_number_in_text")


def test_an_error_body_masks_a_card_number_in_any_usual_spelling():
    def masked(spelling: str) -> bool:
        body = mask_card_numbers(f"No such payment: {spelling}.")
        return body == "No such payment: [masked]." and card_data_in(body) == []

    assert_holds_for_each(EVERY_SPELLING, masked, "not masked in an error body")


def test_a_log_line_masks_a_card_number_in_any_usual_spelling():
    def masked(spelling: str) -> bool:
        line = mask_card_data(f'{{"message": "charging {spelling}"}}')
        return line == '{"message": "charging [masked]"}' and card_data_in(line) == []

    assert_holds_for_each(EVERY_SPELLING, masked, "not masked in a log line")


def test_the_scanner_finds_every_usual_spelling():
    assert_holds_for_each(EVERY_SPELLING, lambda spelling: card_data_in(f"x {spelling} x"), "not found by the scanner")


# Spellings written out one by one, some beyond what spellings() makes (mixed separators, other groupings, other
# digits): the service refuses each in free text, and the scanner finds each, as written and as JSON carries it.
WRITTEN_OUT = [
    "4242\t4242\t4242\t4242",
    "4242\n4242\n4242\n4242",
    "4242\r\n4242\r\n4242\r\n4242",
    "4242   4242   4242   4242",  # three spaces
    "4242\u00a0\u00a04242\u00a0\u00a04242\u00a0\u00a04242",  # no-break spaces
    "4242\u20104242\u20104242\u20104242",  # hyphen
    "4242\u20134242\u20134242\u20134242",  # en dash
    "4242 \u2014 4242 \u2014 4242 \u2014 4242",  # em dash, spaced
    "4242\u22124242\u22124242\u22124242",  # minus sign
    "5555.5555.5555.4444",
    "5555 / 5555 / 5555 / 4444",
    "3782 822463 10005",  # Amex 4-6-5
    "3782\u2013822463\u201310005",
    "3782\t822463\t10005",
    "3782 . 822463 . 10005",
    "4242 4242-4242\u20134242",  # separators mixed
    "42424242 42424242",  # other groupings
    "4 2 4 2 4 2 4 2 4 2 4 2 4 2 4 2",
    "\uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12",  # fullwidth
]


def test_each_written_out_spelling_is_refused_by_the_service_and_found_by_the_scanner():
    def refused_and_found(spelling: str) -> bool:
        text = f"order for card {spelling}, thanks"
        escaped = json.dumps({"note": text})  # a body or a log line
        return _refused_as_card_number_in_text(text) and bool(card_data_in(text)) and bool(card_data_in(escaped))

    assert_holds_for_each(WRITTEN_OUT, refused_and_found, "not refused, or not found as written or escaped")


def test_every_character_the_service_parts_a_card_numbers_groups_with_the_scanner_reads_too():
    """Every assigned character but a letter or a digit (a digit would make other digits), in every plane."""
    others = (chr(code) for code in range(sys.maxunicode + 1))
    others = (c for c in others if not c.isalnum() and unicodedata.category(c) not in ("Cn", "Co", "Cs"))
    parting = [c for c in others if contains_card_number(f"4242{c}4242{c}4242{c}4242")]
    assert {" ", "\t", "\n", "\u2013", "\u2212", ".", "/"} < set(parting)
    assert [f"U+{ord(c):04X}" for c in parting if not card_data_in(f"4242{c}4242{c}4242{c}4242")] == []


def test_a_card_number_next_to_other_digit_groups_is_found():
    texts = [
        "ref 12 4242 4242 4242 4242",  # a number before the card does not hide it
        "4242 4242 4242 4242 0001",  # nor one after it
        "A-1/4242/4242/4242/4242",
    ]
    assert_holds_for_each(
        texts, lambda text: contains_card_number(text) and "4242" not in mask_card_numbers(text), "not found and masked"
    )


def test_every_card_number_in_a_text_is_masked_and_the_text_between_kept():
    text = "paid 4242 4242 4242 4242, refunded 4000-0000-0000-0002, done"
    assert mask_card_numbers(text, "*") == "paid *, refunded *, done"


def test_text_without_a_card_number_is_accepted():
    texts = [
        "order 2024-05-06 12:30",
        "call 555-0100 or 555-0199",
        "4242424242424241",
        "42424242424242424242",
        "v1.2.3.4",
        "amount 1.000.000",
        "batch 1234 5678",
    ]
    assert_holds_for_each(
        texts, lambda text: not contains_card_number(text) and mask_card_numbers(text) == text, "taken for a card"
    )


@given(
    st.sampled_from(TEST_PANS),
    st.sampled_from(" -./"),
    st.text(alphabet="abc ,:;xyz", max_size=8),
    st.text(alphabet="abc ,:;xyz", max_size=8),
)
def test_any_test_card_in_fours_between_any_words_is_found_and_masked(pan, separator, before, after):
    spelled = separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    text = f"{before}{spelled}{after}"
    assert contains_card_number(text)
    assert card_data_in(mask_card_numbers(text)) == []


@given(st.text(alphabet="0123456789 -./", max_size=40))
def test_masking_leaves_no_card_number_behind(text):
    assert not contains_card_number(mask_card_numbers(text))


@given(st.from_regex(r"[0-9]{12,19}", fullmatch=True))
def test_a_digit_run_is_a_card_number_exactly_when_it_passes_luhn(digits):
    assert contains_card_number(digits) == luhn_valid(digits)


def test_the_log_mask_keeps_identifiers_whole():
    identifiers = [
        "299846f3-7dc7-488a-a123-456789012345",
        "7817c716-c275-487d-1234-567890123456",
        "pay_4242424242424242abcdef01",
        "Root=1-5759e988-123456789012345678901234",
    ]

    def kept_whole(identifier: str) -> bool:
        line = f'{{"id": "{identifier}"}}'
        return mask_card_data(line) == line

    assert_holds_for_each(identifiers, kept_whole, "masked in part")


def test_the_log_mask_keeps_short_numbers_and_timestamps():
    line = '{"timestamp": "2024-05-06 12:34:56,789+0000", "duration_ms": 12.5, "status": 201}'
    assert mask_card_data(line) == line


def test_a_member_named_by_a_card_number_is_named_by_its_position():
    assert member_param("metadata", "4242 4242 4242 4242", 2) == "metadata[2]"
    assert member_param("", "4242424242424242", 0) == "[0]"
    assert member_param("metadata", "order", 1) == "metadata.order"
    assert member_param("", "amount", 0) == "amount"
    assert member_param("", "1 " * 10_000, 3) == "[3]"  # too long to echo, or to scan at every request


def test_a_currency_is_matched_in_ascii_only():
    def refused_naming_currency(raw: str) -> bool:
        try:
            normalize_currency(raw)
        except InvalidRequest as refused:
            return refused.param == "currency"
        return False

    # "ınr".upper() == "INR", "uſd".upper() == "USD"
    assert_holds_for_each(["ınr", "uſd"], refused_naming_currency, "not refused as a currency")


def test_a_currency_in_ascii_is_matched_in_any_case():
    assert normalize_currency("inr") == "INR" and normalize_currency("uSd") == "USD"
