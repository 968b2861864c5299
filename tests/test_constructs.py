"""Construct-level guarantees: misuse fails at synth, naming the construct."""

import pytest
import cdktf
from cdktf import TerraformStack

from stacks.iam import Statement
from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps, ServicePrincipalUse
from stacks.iam import Condition


class _Grantee:
    grant_name = "Test"
    role_arn = "arn:aws:iam::123456789012:role/test"

    def __init__(self):
        self.statements = []

    def add_to_policy(self, statement):
        self.statements.append(statement)


def _key(spec=KeySpec.SYMMETRIC, **props):
    stack = TerraformStack(cdktf.Testing.app(), "keys")
    return PaymentKey(stack, "fingerprint", PaymentKeyProps(alias="a", description="d", account_id="123456789012",
                                                            spec=spec, **props))  # fmt: skip


@pytest.mark.parametrize("action", ["*", "dynamodb:*", "kms:*"])
def test_wildcard_actions_are_refused(action):
    with pytest.raises(ValueError, match="wildcard"):
        Statement("Sid", (action,), ("*",))


def test_an_hmac_key_cannot_be_granted_encryption_and_the_error_names_the_construct():
    key = _key(KeySpec.HMAC_256)
    with pytest.raises(ValueError, match="keys/fingerprint"):
        key.grant_encrypt(_Grantee())


def test_a_grant_names_the_grantee_in_the_key_policy_and_its_role_policy():
    key = _key()
    grantee = _Grantee()
    key.grant_decrypt(grantee)
    (role_statement,) = grantee.statements
    assert role_statement.actions == ("kms:Decrypt",)
    key_statement = key.key_policy[-1]
    assert key_statement.principals == (("AWS", (grantee.role_arn,)),)
    assert key_statement.actions == ("kms:Decrypt",)


def test_granting_the_same_thing_twice_is_refused():
    key = _key()
    grantee = _Grantee()
    key.grant_decrypt(grantee)
    with pytest.raises(ValueError, match="twice"):
        key.grant_decrypt(grantee)


def test_a_service_principal_must_be_bound_to_the_account():
    unbound = ServicePrincipalUse("logs.us-east-1.amazonaws.com", ("kms:Encrypt*",), (Condition("StringEquals", "x", ("y",)),))
    with pytest.raises(ValueError, match="condition on the account"):
        _key(service_principals=(unbound,))
