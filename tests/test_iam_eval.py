"""The IAM evaluator (tests/support/iam_eval.py) against the cases of AWS's documented policy evaluation logic
(IAM User Guide: "Policy evaluation logic", "Condition operators", "Single-valued vs multivalued context keys",
"Cross-account policy evaluation logic", and the KMS Developer Guide's "Key policies")."""

import pytest

from tests.support.iam_eval import (
    Condition,
    Decision,
    Request,
    UnknownOperator,
    decide,
    glob_matches,
    statements_from_document,
    statements_from_json,
)

ALICE = "arn:aws:iam::111122223333:role/alice"
BOB_ELSEWHERE = "arn:aws:iam::444455556666:role/bob"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy(*statements: dict) -> list:
    return statements_from_json({"Version": "2012-10-17", "Statement": list(statements)})


def identity_decision(statements: list, action: str, resource: str = "*", **context) -> Decision:
    return decide(Request(ALICE, action, resource, context), statements, resource_account="111122223333")


def test_no_statement_is_an_implicit_deny():
    assert identity_decision([], "s3:GetObject", BUCKET) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_beats_any_allow():
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": BUCKET},
    )
    assert identity_decision(statements, "s3:ListBucket", BUCKET) is Decision.ALLOWED
    assert identity_decision(statements, "s3:DeleteBucket", BUCKET) is Decision.EXPLICIT_DENY


def test_actions_match_without_case_and_with_wildcards_resources_with_case():
    statements = policy({"Effect": "Allow", "Action": "S3:Get*", "Resource": f"{BUCKET}/home/?/*"})
    assert identity_decision(statements, "s3:getobject", f"{BUCKET}/home/a/notes.txt") is Decision.ALLOWED
    assert identity_decision(statements, "s3:GetObject", f"{BUCKET}/home/ab/notes.txt") is Decision.IMPLICIT_DENY
    assert identity_decision(statements, "s3:GetObject", f"{BUCKET}/HOME/a/notes.txt") is Decision.IMPLICIT_DENY
    assert identity_decision(statements, "s3:PutObject", f"{BUCKET}/home/a/notes.txt") is Decision.IMPLICIT_DENY


def test_brackets_are_not_wildcards_in_iam():
    assert glob_matches("table/[ab]", "table/[ab]") and not glob_matches("table/[ab]", "table/a")


def test_not_action_with_allow_allows_everything_but_the_named_actions():
    # The User Guide's "NotAction with Allow": every action except IAM's.
    statements = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert identity_decision(statements, "s3:GetObject", BUCKET) is Decision.ALLOWED
    assert identity_decision(statements, "iam:CreateUser") is Decision.IMPLICIT_DENY


def test_not_action_with_deny_and_bool_if_exists_requires_mfa_for_everything_but_iam():
    # The User Guide's "Deny all services except IAM when MFA is absent" (BoolIfExists: a missing key matches).
    statements = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "NotAction": "iam:*",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    )
    assert identity_decision(statements, "s3:GetObject", BUCKET) is Decision.EXPLICIT_DENY
    assert identity_decision(statements, "s3:GetObject", BUCKET, **{"aws:MultiFactorAuthPresent": "false"}) is (
        Decision.EXPLICIT_DENY
    )
    assert identity_decision(statements, "s3:GetObject", BUCKET, **{"aws:MultiFactorAuthPresent": "true"}) is (
        Decision.ALLOWED
    )
    assert identity_decision(statements, "iam:ListUsers") is Decision.ALLOWED


def test_not_resource_with_deny_denies_every_other_resource():
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]},
    )
    assert identity_decision(statements, "s3:GetObject", f"{BUCKET}/a") is Decision.ALLOWED
    assert identity_decision(statements, "s3:GetObject", "arn:aws:s3:::other/a") is Decision.EXPLICIT_DENY


def test_not_resource_with_allow():
    statements = policy({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET}/private/*"})
    assert identity_decision(statements, "s3:GetObject", f"{BUCKET}/public/a") is Decision.ALLOWED
    assert identity_decision(statements, "s3:GetObject", f"{BUCKET}/private/a") is Decision.IMPLICIT_DENY


TAG_KEYS = ("environment", "cost-center")


@pytest.mark.parametrize(
    "operator, request_tags, expected",
    [
        # "ForAllValues ... returns true if ... there are no keys in the request" (multivalued context keys).
        ("ForAllValues:StringEquals", None, True),
        ("ForAllValues:StringEquals", ("environment",), True),
        ("ForAllValues:StringEquals", ("environment", "owner"), False),
        # "ForAnyValue ... returns false if the key is not present".
        ("ForAnyValue:StringEquals", None, False),
        ("ForAnyValue:StringEquals", ("owner", "cost-center"), True),
        ("ForAnyValue:StringEquals", ("owner",), False),
        ("ForAllValues:StringLike", ("env*",), False),  # the request's values are data, not patterns
    ],
)
def test_set_operators_on_multivalued_keys(operator, request_tags, expected):
    condition = Condition(operator, "aws:TagKeys", TAG_KEYS)
    context = {} if request_tags is None else {"aws:TagKeys": request_tags}
    assert condition.holds(context) is expected


def test_for_all_values_string_like_on_leading_keys():
    condition = Condition("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("PAYMENT#*", "LEDGER#*"))
    assert condition.holds({"dynamodb:LeadingKeys": ("PAYMENT#m#1",)})
    assert not condition.holds({"dynamodb:LeadingKeys": ("TOKEN#m#1",)})
    assert condition.holds({})  # no partition key in the request (a Scan): the set is empty


def test_string_like_wildcards():
    condition = Condition("StringLike", "s3:prefix", ("home/*", "secret-??????"))
    assert condition.holds({"s3:prefix": "home/alice/docs"})
    assert condition.holds({"s3:prefix": "secret-AbC123"})
    assert not condition.holds({"s3:prefix": "secret-AbC12"})
    assert not condition.holds({"s3:prefix": "Home/alice"})
    assert not condition.holds({})


def test_string_equals_is_exact_and_a_missing_key_does_not_match():
    condition = Condition("StringEquals", "kms:EncryptionContext:purpose", ("card-vault", "payment-metadata"))
    assert condition.holds({"kms:EncryptionContext:purpose": "payment-metadata"})
    assert not condition.holds({"kms:EncryptionContext:purpose": "card-vault*"})
    assert not condition.holds({"kms:EncryptionContext:purpose": "Card-Vault"})
    assert not condition.holds({})


def test_condition_keys_are_case_insensitive_their_values_are_not():
    condition = Condition("StringEquals", "kms:ViaService", ("dynamodb.us-east-1.amazonaws.com",))
    assert condition.holds({"KMS:viaservice": "dynamodb.us-east-1.amazonaws.com"})
    assert not condition.holds({"kms:ViaService": "DynamoDB.us-east-1.amazonaws.com"})


def test_negated_operators_match_a_missing_key_and_every_value_must_differ():
    condition = Condition("StringNotEquals", "aws:PrincipalAccount", ("111122223333", "444455556666"))
    assert condition.holds({})
    assert condition.holds({"aws:PrincipalAccount": "999999999999"})
    assert not condition.holds({"aws:PrincipalAccount": "444455556666"})


def test_if_exists_matches_a_missing_key_and_checks_a_present_one():
    condition = Condition("StringLikeIfExists", "ec2:InstanceType", ("t1.*", "t2.*"))
    assert condition.holds({})
    assert condition.holds({"ec2:InstanceType": "t2.micro"})
    assert not condition.holds({"ec2:InstanceType": "m5.large"})


def test_null_checks_presence():
    assert Condition("Null", "aws:TokenIssueTime", ("true",)).holds({})
    assert not Condition("Null", "aws:TokenIssueTime", ("true",)).holds({"aws:TokenIssueTime": "2026-01-01"})
    assert Condition("Null", "aws:TokenIssueTime", ("false",)).holds({"aws:TokenIssueTime": "2026-01-01"})


def test_arn_like_matches_each_of_the_six_parts_apart():
    condition = Condition(
        "ArnLike", "aws:SourceArn", ("arn:aws:execute-api:us-east-1:111122223333:api1/*/POST/tokens",)
    )
    assert condition.holds({"aws:SourceArn": "arn:aws:execute-api:us-east-1:111122223333:api1/v1/POST/tokens"})
    assert not condition.holds({"aws:SourceArn": "arn:aws:execute-api:us-east-1:444455556666:api1/v1/POST/tokens"})
    wide = Condition("ArnLike", "aws:PrincipalArn", ("arn:aws:iam::111122223333:*",))
    assert wide.holds({"aws:PrincipalArn": ALICE})
    assert not wide.holds({"aws:PrincipalArn": "not-an-arn"})
    assert Condition("ArnNotLike", "aws:PrincipalArn", ("arn:aws:iam::*:role/bob",)).holds({"aws:PrincipalArn": ALICE})


@pytest.mark.parametrize(
    "operator", ["NumericLessThan", "DateGreaterThan", "ForSomeValues:StringEquals", "StrinEquals"]
)
def test_an_operator_the_evaluator_does_not_know_fails_loudly(operator):
    with pytest.raises(UnknownOperator):
        policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {operator: {"aws:x": "1"}}})


def test_same_account_resource_policy_naming_the_principal_allows_without_an_identity_policy():
    bucket_policy = policy({"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "s3:GetObject", "Resource": "*"})
    request = Request(ALICE, "s3:GetObject", f"{BUCKET}/a")
    assert decide(request, [], bucket_policy, resource_account="111122223333") is Decision.ALLOWED


def test_cross_account_needs_both_the_identity_policy_and_the_resource_policy():
    resource = policy(
        {"Effect": "Allow", "Principal": {"AWS": BOB_ELSEWHERE}, "Action": "s3:GetObject", "Resource": "*"}
    )
    identity = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    request = Request(BOB_ELSEWHERE, "s3:GetObject", f"{BUCKET}/a")
    assert decide(request, identity, resource, resource_account="111122223333") is Decision.ALLOWED
    assert decide(request, [], resource, resource_account="111122223333") is Decision.IMPLICIT_DENY
    assert decide(request, identity, [], resource_account="111122223333") is Decision.IMPLICIT_DENY


def test_a_key_policy_must_allow_and_naming_the_account_delegates_to_iam():
    delegating = policy(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}
    )
    naming_alice = policy({"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "kms:Decrypt", "Resource": "*"})
    identity = policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY})
    request = Request(ALICE, "kms:Decrypt", KEY)

    def kms(identity_statements, key_policy) -> Decision:
        return decide(request, identity_statements, key_policy, "111122223333", resource_policy_required=True)

    assert kms(identity, delegating) is Decision.ALLOWED
    assert kms([], delegating) is Decision.IMPLICIT_DENY  # the account's principals still need IAM's allow
    assert kms([], naming_alice) is Decision.ALLOWED  # the key policy alone
    assert kms(identity, []) is Decision.IMPLICIT_DENY  # IAM alone never opens a key
    denying = policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}},
        }
    )
    assert kms(identity, naming_alice + denying) is Decision.EXPLICIT_DENY


def test_a_service_principal_is_allowed_by_the_resource_policy_alone():
    permission = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:111122223333:function:f",
            "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:us-east-1:111122223333:a/*"}},
        }
    )
    function = "arn:aws:lambda:us-east-1:111122223333:function:f"
    source = {"aws:SourceArn": "arn:aws:execute-api:us-east-1:111122223333:a/v1/GET/x"}
    service = Request("apigateway.amazonaws.com", "lambda:InvokeFunction", function, source, principal_type="Service")
    assert decide(service, [], permission, "111122223333") is Decision.ALLOWED
    elsewhere = Request(
        service.principal,
        service.action,
        function,
        {"aws:SourceArn": "arn:aws:execute-api:us-east-1:444455556666:a/v1/GET/x"},
        principal_type="Service",
    )
    assert decide(elsewhere, [], permission, "111122223333") is Decision.IMPLICIT_DENY


def test_terraform_policy_documents_read_like_iam_json():
    (statement,) = statements_from_document(
        {
            "statement": [
                {
                    "sid": "LedgerAppendToken",
                    "actions": ["dynamodb:PutItem"],
                    "resources": ["arn:aws:dynamodb:us-east-1:111122223333:table/ledger"],
                    "condition": [
                        {"test": "ForAllValues:StringLike", "variable": "dynamodb:LeadingKeys", "values": ["TOKEN#*"]}
                    ],
                }
            ]
        }
    )
    assert (statement.effect, statement.sid) == ("Allow", "LedgerAppendToken")
    table = "arn:aws:dynamodb:us-east-1:111122223333:table/ledger"
    put = Request(ALICE, "dynamodb:PutItem", table, {"dynamodb:LeadingKeys": ("TOKEN#m#1",)})
    assert decide(put, [statement], resource_account="111122223333") is Decision.ALLOWED
    entry = Request(ALICE, "dynamodb:PutItem", table, {"dynamodb:LeadingKeys": ("LEDGER#m#1",)})
    assert decide(entry, [statement], resource_account="111122223333") is Decision.IMPLICIT_DENY
