"""Construct-level guarantees: misuse fails at synth, naming the construct."""

import json

import pytest

from lambdas.domain.merchants import principal_key
from lambdas.encryption_context import CONDITION_KEY, Purpose
from lambdas.storage_schema import IDEMPOTENCY, LEDGER, MERCHANTS, MerchantRecord


class _Grantee:
    grant_name = "Test"
    role_arn = "arn:aws:iam::123456789012:role/test"

    def __init__(self):
        self.statements = []

    def add_to_policy(self, statement):
        self.statements.append(statement)


def _key(spec=None, **props):
    """A PaymentKey of ``spec`` (symmetric by default) in a stack of its own."""
    from cdktf import TerraformStack, Testing

    from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps

    stack = TerraformStack(Testing.app(), "keys")
    spec = spec or KeySpec.SYMMETRIC
    return PaymentKey(
        stack,
        "fingerprint",
        PaymentKeyProps(alias="alias/a", description="d", account_id="123456789012", spec=spec, **props),
    )


@pytest.mark.parametrize("action", ["*", "dynamodb:*", "kms:*"])
def test_wildcard_actions_are_refused(action):
    from stacks.iam import Statement

    with pytest.raises(ValueError, match="wildcard"):
        Statement("Sid", (action,), ("*",))


def test_an_hmac_key_cannot_be_granted_encryption_and_the_error_names_the_construct():
    from stacks.payment_key import KeySpec

    key = _key(KeySpec.HMAC_256)
    with pytest.raises(ValueError, match="keys/fingerprint"):
        key.grant_encrypt(_Grantee(), (Purpose.CARD,))


def test_a_grant_names_the_grantee_in_the_key_policy_and_its_role_policy_for_its_purposes_only():
    from stacks.iam import Condition

    key = _key()
    grantee = _Grantee()
    key.grant_decrypt(grantee, (Purpose.METADATA,))
    (role_statement,) = grantee.statements
    key_statement = key.key_policy[-1]
    assert key_statement.principals == (("AWS", (grantee.role_arn,)),)
    for statement in (role_statement, key_statement):
        assert statement.actions == ("kms:Decrypt",)
        assert statement.conditions == (Condition("StringEquals", CONDITION_KEY, ("payment-metadata",)),)


@pytest.mark.parametrize("grant", ["grant_encrypt", "grant_decrypt"])
@pytest.mark.parametrize("purposes", [(), []])
def test_a_vault_key_grant_for_no_purpose_is_refused_naming_the_construct(grant, purposes):
    key = _key()
    grantee = _Grantee()
    with pytest.raises(ValueError, match=r"keys/fingerprint: the (En|De)crypt grant to Test names no purpose"):
        getattr(key, grant)(grantee, purposes)
    assert grantee.statements == []


def test_a_grant_for_an_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="'card' is not a valid Purpose"):
        _key().grant_decrypt(_Grantee(), ("card",))


def test_granting_the_same_thing_twice_is_refused():
    key = _key()
    grantee = _Grantee()
    key.grant_decrypt(grantee, (Purpose.CARD,))
    with pytest.raises(ValueError, match="twice"):
        key.grant_decrypt(grantee, (Purpose.METADATA,))


def test_a_service_principal_must_be_bound_to_the_account():
    from stacks.iam import Condition
    from stacks.payment_key import ServicePrincipalUse

    unbound = ServicePrincipalUse(
        "logs.us-east-1.amazonaws.com", ("kms:Encrypt*",), (Condition("StringEquals", "x", ("y",)),)
    )
    with pytest.raises(ValueError, match="condition on the account"):
        _key(service_principals=(unbound,))


def test_only_events_and_idempotency_keys_expire(stack):
    """The ledger table expires items by ``expires_at``, which only events and their delivery attempts carry (every
    test on moto checks the items it leaves: tests/service_fixtures.py); the merchants table expires nothing."""
    tables = {
        table["name"].removeprefix(f"{stack.environment.prefix}-"): table
        for table in stack.resources("aws_dynamodb_table").values()
    }
    assert set(tables) == {"ledger", "idempotency", "merchants"}
    assert "ttl" not in tables["merchants"]
    assert tables["ledger"]["ttl"] == {"attribute_name": LEDGER.ttl_attribute, "enabled": True}
    assert tables["idempotency"]["ttl"] == {"attribute_name": IDEMPOTENCY.ttl_attribute, "enabled": True}


def test_terraform_writes_every_merchants_rules_and_principals_as_items(stack):
    (items,) = stack.resources("aws_dynamodb_table_item").values()
    written = {key: json.loads(item) for key, item in items["for_each"].items()}
    config = stack.environment
    for merchant in config.merchants:
        rules = json.loads(written[MerchantRecord.MERCHANT.key(merchant.id)]["rules"]["S"])
        assert rules == merchant.effective_rules(config.rules).model_dump(mode="json")
        for principal in merchant.principals:
            mapped = written[MerchantRecord.PRINCIPAL.key(principal_key(principal))]
            assert mapped["merchant"] == {"S": merchant.id}
    assert len(written) == sum(1 + len(m.principals) for m in config.merchants)
    assert items["hash_key"] == MERCHANTS.partition_key  # the item: each.value with its API key id written in


def test_a_signing_key_signs_and_serves_its_public_key_only_and_no_other_key_signs():
    from stacks.iam import Condition
    from stacks.payment_key import KeySpec

    signing = _key(KeySpec.ECC_NIST_P256)
    for grant in ("grant_mac", "grant_encrypt", "grant_decrypt"):
        with pytest.raises(ValueError, match="keys/fingerprint"):
            getattr(signing, grant)(_Grantee(), *((Purpose.CARD,),) if grant != "grant_mac" else ())
    for spec in (KeySpec.SYMMETRIC, KeySpec.HMAC_256):
        with pytest.raises(ValueError, match="cannot be granted ECC_NIST_P256 use"):
            _key(spec).grant_sign(_Grantee())
    grantee = _Grantee()
    signing.grant_sign(grantee)
    (statement,) = grantee.statements
    assert statement.actions == ("kms:Sign",)
    assert statement.conditions == (
        Condition("StringEquals", "kms:SigningAlgorithm", ("ECDSA_SHA_256",)),
        Condition("StringEquals", "kms:MessageType", ("RAW",)),
    )
