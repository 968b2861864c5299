"""The ledger proves itself (lambdas/domain/chains.py): each entry's hash follows from its chain, every head holds
its chain's sequence, hash and balances, and any edit, deletion or insertion is found by recomputing the chain."""

import hashlib
import threading
from collections import Counter
from dataclasses import replace

import pytest

from lambdas.domain.chains import (
    CHAINS,
    GENESIS,
    Head,
    books_break,
    canonical,
    chain_of,
    check_chain,
    fold_balances,
    link,
    merkle_root,
    total_balances,
)
from lambdas.domain.payments import Entry
from tests.support.chains import PAY, build_chain, payment_entries
from tests.support.fakes import fake_world
from tests.support.fakes_gateway import FakeGateway
from tests.support.payments import pay

CREDIT_1 = f"le_{PAY[1]}_c"  # the fourth entry of a chain of payments PAY[0], PAY[1], ...


def test_extending_a_head_numbers_links_and_sums_the_entries():
    entries, head = build_chain(3)
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5, 6] and {e.chain for e in entries} == {0}
    assert entries[0].hash == hashlib.sha256(GENESIS.encode() + b"\n" + canonical(
        {"merchant": "acme", "chain": 0, "sequence": 1, "id": f"le_{PAY[0]}_d", "payment_id": PAY[0], "refund_id": None,
         "account": "gateway_receivable:sparkle", "direction": "debit", "amount": 100, "currency": "USD",
         "created_at": "2026-11-28T12:00:00.123Z"})).hexdigest()  # fmt: skip
    assert all(entries[i].hash == link(entries[i - 1].hash, "acme", entries[i]) for i in range(1, 6))
    assert (head.sequence, head.hash) == (6, entries[-1].hash)
    assert head.balances == {("gateway_receivable:sparkle", "USD"): 303, ("merchant_balance", "USD"): -303}


def test_an_untouched_chain_checks():
    entries, head = build_chain(4)
    assert check_chain("acme", 0, entries, head) is None
    assert check_chain("acme", 0, [], None) is None


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            lambda es: [*es[:3], replace(es[3], amount=1), *es[4:]],
            f"chain 0, sequence 4, entry le_{PAY[1]}_c: an edited",
        ),
        (
            lambda es: [*es[:3], replace(es[3], account="refunds"), *es[4:]],
            f"sequence 4, entry le_{PAY[1]}_c: an edited",
        ),
        (lambda es: es[:3] + es[4:], "chain 0, sequence 4: a deleted entry: the chain goes from 3 to 5"),
        (lambda es: [*es[:4], replace(es[4], id="le_forged"), *es[4:]], "sequence 5, entry le_forged: an edited"),
        (lambda es: [*es[:4], es[3], *es[4:]], f"sequence 4, entry le_{PAY[1]}_c: an inserted entry: this sequence"),
        (lambda es: es[:-1], "chain 0, sequence 8: entries missing at the end: the head says 8, the chain 7"),
        (lambda es: [*es, replace(es[-1], sequence=9)], f"sequence 9, entry le_{PAY[3]}_c: an edited entry"),
    ],
)
def test_any_edit_deletion_or_insertion_is_named_at_its_first_place(tamper, expected):
    entries, head = build_chain(4)
    found = check_chain("acme", 0, tamper(entries), head)
    assert found is not None and expected in str(found), found


def test_an_entry_forged_past_the_head_with_a_valid_hash_is_found_by_the_head():
    entries, head = build_chain(2)
    forged, _ = head.extend("acme", payment_entries(PAY[5], 1))
    found = check_chain("acme", 0, entries + forged, head)
    assert str(found) == "chain 0, sequence 6: an inserted entry past the head: the head says 4, the chain 6"


def test_a_head_whose_balances_or_hash_disagree_with_its_entries_is_found():
    entries, head = build_chain(2)
    wrong = dict(head.balances) | {("merchant_balance", "USD"): 0}
    assert "balances are not the sum" in str(check_chain("acme", 0, entries, replace(head, balances=wrong)))
    assert "hash is not the last entry's" in str(check_chain("acme", 0, entries, replace(head, hash=GENESIS)))


def test_an_entry_moved_to_another_chain_is_named():
    entries, head = build_chain(2)
    other = next(p for p in (f"pay_{i}" for i in range(100)) if chain_of(p) != 0)
    moved = [entries[0], replace(entries[1], payment_id=other), *entries[2:]]
    found = check_chain("acme", 0, moved, head)
    assert f"an entry of chain {chain_of(other)} moved here" in str(found)
    assert (found.sequence, found.entry_id) == (moved[1].sequence, moved[1].id)  # the entry is named


def test_an_entry_of_another_chain_is_named_even_where_its_payment_belongs_there():
    """Chains swapped wholesale: each entry still names the chain of its payment, and the head agrees, but the
    chain was read from another."""
    entries, head = build_chain(2)
    found = check_chain("acme", 5, entries, replace(head, chain=5))
    assert str(found) == f"chain 5, sequence 1, entry le_{PAY[0]}_d: an entry of chain 0, read from chain 5"


def _booked(*movements: list[Entry]) -> list[Entry]:
    entries: list[Entry] = []
    head = Head(0)
    for movement in movements:
        placed, head = head.extend("acme", movement)
        entries += placed
    return entries


@pytest.mark.parametrize(
    ("movement", "expected"),
    [
        (payment_entries(PAY[1], 100)[1:],
         f"sequence 3, entry le_{PAY[1]}_c: payment {PAY[1]} does not balance: debits 0, credits 100"),
        ([payment_entries(PAY[1], 100)[0], payment_entries(PAY[1], 90)[1]],
         f"sequence 3, entry le_{PAY[1]}_d: payment {PAY[1]} does not balance: debits 100, credits 90"),
        (payment_entries(PAY[1], -100),
         f"sequence 3, entry le_{PAY[1]}_d: an amount of -100: every amount is a whole number"),
        (payment_entries(PAY[1], 0), f"sequence 3, entry le_{PAY[1]}_d: an amount of 0"),
        ([payment_entries(PAY[1], 100)[0], replace(payment_entries(PAY[1], 100)[1], currency="EUR")],
         f"sequence 3, entry le_{PAY[1]}_d: payment {PAY[1]} is booked in EUR and USD"),
        ([replace(e, refund_id="re_1") for e in payment_entries(PAY[0], 30)][:1],
         f"sequence 3, entry le_{PAY[0]}_d: refund re_1 of payment {PAY[0]} does not balance: debits 30, credits 0"),
    ],
)  # fmt: skip
def test_books_that_do_not_balance_are_named_at_their_first_entry(movement, expected):
    entries = _booked(payment_entries(PAY[0], 100), movement, payment_entries(PAY[2], 100))
    assert check_chain("acme", 0, entries, _booked_head(entries)) is None  # the chain checks by itself
    found = books_break(0, entries)
    assert found is not None and str(found).startswith(f"chain 0, {expected}"), found


def _booked_head(entries: list[Entry]) -> Head:
    return Head(0, entries[-1].sequence or 0, entries[-1].hash or GENESIS, fold_balances(entries))


def test_balanced_payments_and_refunds_in_one_currency_each_keep_the_books():
    refund = [replace(e, refund_id="re_1") for e in reversed(payment_entries(PAY[0], 30))]
    entries = _booked(payment_entries(PAY[0], 100), payment_entries(PAY[1], 7, "JPY"), refund)
    assert books_break(0, entries) is None and books_break(0, []) is None


def test_another_merchants_chain_does_not_check_as_this_ones():
    entries, head = build_chain(1)
    assert "an edited entry" in str(check_chain("globex", 0, entries, head))


def test_the_merkle_root_commits_to_every_head_and_follows_rfc_6962():
    def leaf(chain: int, sequence: int, digest: str) -> bytes:
        return hashlib.sha256(b"\x00" + canonical({"chain": chain, "sequence": sequence, "hash": digest})).digest()

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    leaves = [leaf(c, 0, GENESIS) for c in range(CHAINS)]
    while len(leaves) > 1:  # CHAINS is a power of two: no odd node
        leaves = [node(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
    assert merkle_root([]) == leaves[0].hex()
    _, head = build_chain(1)
    moved = {merkle_root([replace(head, chain=c)]) for c in range(CHAINS)}
    assert len(moved) == CHAINS and merkle_root([]) not in moved
    assert merkle_root([head]) != merkle_root([replace(head, sequence=1)])


def test_a_payment_always_lands_in_one_chain_and_payments_spread_over_all():
    counts = Counter(chain_of(f"pay_{n:024d}") for n in range(20_000))
    assert set(counts) == set(range(CHAINS)) and min(counts.values()) > 20_000 / CHAINS * 0.8


def test_concurrent_payments_and_refunds_of_one_merchant_leave_gapless_chains_and_exact_balances():
    """Eight writers on one merchant, through the use cases and the fake store (which places entries atomically at
    commit, as the DynamoDB store does by retrying on a moved head); checked after every step of one writer too."""
    world = fake_world(FakeGateway())
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(12):
                answer = pay(world, key=f"w{n}-{i}", amount=100 + i)
                if i % 3 == 0:
                    world.service.refund(answer.body["id"], 50, f"r{n}-{i}")
                if n == 0:
                    _assert_intact(world)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    entries = _assert_intact(world)
    assert len(entries) == 8 * 12 * 2 + 8 * 4 * 2


def _assert_intact(world) -> list[Entry]:
    """At one moment (no write in between): every chain checks, and the balances answer the fold of the entries."""
    with world.db.lock:
        heads = {head.chain: head for head in world.ledger.heads.values()}
        entries = [e for es in world.ledger.entries.values() for e in es]
        answer = world.service.balances()
    for chain in range(CHAINS):
        in_chain = sorted((e for e in entries if e.chain == chain), key=lambda e: e.sequence or 0)
        assert check_chain(world.deps.store.merchant, chain, in_chain, heads.get(chain)) is None
    assert total_balances(heads.values()) == fold_balances(entries)
    by_key = {(b["account"], b["currency"]): b["amount"] for b in answer.body["balances"]}
    assert by_key == fold_balances(entries)
    return entries


def test_balances_per_merchant_sum_to_zero_per_currency_and_show_only_the_callers():
    world = fake_world(FakeGateway())
    paid = pay(world, amount=1999)
    world.service.refund(paid.body["id"], 500, "r")
    balances = world.service.balances().body["balances"]
    assert balances == [
        {"account": "gateway_receivable:sparkle", "currency": "USD", "amount": 1499},
        {"account": "merchant_balance", "currency": "USD", "amount": -1499},
    ]
    assert world.other().balances().body == {"balances": []}
