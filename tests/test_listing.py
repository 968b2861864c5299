"""GET /payments: newest first, per merchant, `limit` 1-100, `starting_after` the previous page's last id (an unknown
or another merchant's id is a 400 naming it); paging covers each payment exactly once while payments arrive. On
the fakes through the service, and on the emulator's DynamoDB through the store and its by_merchant index."""

from datetime import timedelta

import boto3
import pytest

from lambdas.adapters.ledger_store import DynamoLedgerStore
from lambdas.domain.errors import InvalidRequest
from lambdas.presenters import error_body
from lambdas.storage_schema import LEDGER
from tests.support.payments import pay
from tools.emulator import EMULATOR_CREDENTIALS, free_port, moto_server
from tools.function_resources import create_table


def _walk(service, limit: int, during=lambda page: None) -> list[str]:
    seen, cursor = [], None
    while True:
        body = service.list_payments(str(limit), cursor).body
        seen += [payment["id"] for payment in body["data"]]
        during(len(seen))
        if not body["has_more"]:
            return seen
        cursor = body["data"][-1]["id"]


def test_pages_cover_each_payment_once_newest_first_while_payments_arrive(world):
    made = []
    for n in range(7):
        made.append(pay(world, key=f"k{n}", amount=100 + n).body["id"])
        world.clock.advance(timedelta(seconds=1))
    arriving = []

    def add_one(_: int) -> None:
        arriving.append(pay(world, key=f"new{len(arriving)}").body["id"])
        world.clock.advance(timedelta(seconds=1))

    assert _walk(world.service, 3, during=add_one) == made[::-1]  # those made during the walk are newer
    assert _walk(world.service, 100) == (made + arriving)[::-1]


def test_the_default_page_is_ten_and_has_more_says_when_another_follows(world):
    for n in range(11):
        pay(world, key=f"k{n}")
    first = world.service.list_payments(None, None)
    assert (first.status, len(first.body["data"]), first.body["has_more"]) == (200, 10, True)
    rest = world.service.list_payments(None, first.body["data"][-1]["id"]).body
    assert len(rest["data"]) == 1 and rest["has_more"] is False


@pytest.mark.parametrize(("limit", "has_more"), [("1", True), ("3", False), ("100", False)])
def test_a_page_holds_up_to_limit_and_a_full_last_page_says_nothing_more(world, limit, has_more):
    for n in range(3):
        pay(world, key=f"k{n}")
    page = world.service.list_payments(limit, None).body
    assert (len(page["data"]), page["has_more"]) == (min(int(limit), 3), has_more)


# "²", "①" and "1²" are digits to str.isdigit() but not to int()
@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", "", "²", "①", "1²"])
def test_a_limit_outside_1_to_100_is_refused_naming_it(world, limit):
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_payments(limit, None)
    assert refused.value.param == "limit"


@pytest.mark.parametrize("cursor", ["pay_000000000000000000000000", "4242424242424242", "tok_x", "pay_" + "0" * 3000])
def test_an_unknown_cursor_is_refused_naming_the_parameter_not_echoing_it(world, cursor):
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_payments(None, cursor)
    assert refused.value.param == "starting_after" and cursor not in refused.value.message


@pytest.mark.parametrize(
    ("limit", "cursor", "param"), [("0", None, "limit"), (None, "pay_000000000000000000000000", "starting_after")]
)
def test_a_refused_limit_or_cursor_is_an_invalid_request_whose_body_says_why(world, limit, cursor, param):
    with pytest.raises(InvalidRequest) as refused:
        world.service.list_payments(limit, cursor)
    error = refused.value
    shown = error_body("invalid_request_error", error.code, error.message, "req", param=error.param)["error"]
    assert (shown["code"], shown["param"]) == ("invalid_request", param) and shown["message"]


def test_another_merchants_payments_are_neither_listed_nor_a_cursor(world):
    mine = pay(world).body["id"]
    assert world.other().list_payments(None, None).body == {"data": [], "has_more": False}
    with pytest.raises(InvalidRequest):
        world.other().list_payments(None, mine)


def test_the_dynamodb_index_pages_newest_first_from_the_cursors_own_place(world):
    """The store's query on the emulator (a moto server over HTTP): ties in time are ordered by id."""
    with moto_server(free_port()) as endpoint:
        credentials = {k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()}
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **credentials)
        create_table(client, "ledger-listing", LEDGER)
        store = DynamoLedgerStore(client, "ledger-listing", metadata_cipher=None, merchant="acme")  # type: ignore[arg-type]
        other = DynamoLedgerStore(client, "ledger-listing", metadata_cipher=None, merchant="globex")  # type: ignore[arg-type]
        payments = []
        for n in range(5):
            payment = pay(world, key=f"k{n}").body["id"]
            world.clock.advance(timedelta(seconds=n % 2))  # pairs share a creation time
            payments.append(world.ledger.payments[payment])
        for payment in payments:
            uow = store.unit_of_work()
            store.add_payment(uow, payment)
            uow.commit()
        newest_first = sorted(payments, key=lambda p: (p.created_at, p.id), reverse=True)
        page, more = store.list_payments(2, None)
        assert [p.id for p in page] == [p.id for p in newest_first[:2]] and more
        page, more = store.list_payments(2, page[-1])
        assert [p.id for p in page] == [p.id for p in newest_first[2:4]] and more
        page, more = store.list_payments(2, page[-1])
        assert [p.id for p in page] == [newest_first[4].id] and not more
        page, more = store.list_payments(5, None)  # a full page with nothing after it
        assert [p.id for p in page] == [p.id for p in newest_first] and not more
        assert other.list_payments(10, None) == ([], False)
        # Payments that arrive during a walk are newer than its cursor: the walk still sees each old one once.
        walked, cursor = [], None
        while True:
            page, more = store.list_payments(2, cursor)
            walked += [p.id for p in page]
            world.clock.advance(timedelta(seconds=1))
            arriving = world.ledger.payments[pay(world, key=f"new{len(walked)}").body["id"]]
            uow = store.unit_of_work()
            store.add_payment(uow, arriving)
            uow.commit()
            if not more:
                break
            cursor = page[-1]
        assert walked == [p.id for p in newest_first]
