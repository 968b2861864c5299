"""Least privilege, read off the synthesized IAM: no wildcards, ledger entries
append-only, and each role holding exactly the actions its function calls."""

import pytest

from lambdas.routes import Function
from lambdas.storage_schema import Partition
from tests.policies import all_statements, data_reference_name, role_statements

COMMON = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
IDEMPOTENCY = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
EXPECTED_ACTIONS = {
    Function.TOKENIZE: COMMON
    | IDEMPOTENCY
    | {"kms:GenerateDataKey", "kms:GenerateMac", "dynamodb:ConditionCheckItem"},
    Function.CHARGE: COMMON
    | IDEMPOTENCY
    | {"kms:GenerateDataKey", "kms:Decrypt", "kms:GenerateMac", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    | {"secretsmanager:GetSecretValue"},
    Function.REFUND: COMMON | IDEMPOTENCY | {"kms:Decrypt", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    | {"secretsmanager:GetSecretValue"},
    Function.READ: COMMON | {"dynamodb:GetItem", "dynamodb:Query", "kms:Decrypt"},
    Function.RECONCILE: COMMON
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"}
    | {"secretsmanager:GetSecretValue", "kms:Decrypt", "sqs:SendMessage", "kms:GenerateDataKey"},
}


def test_no_statement_grants_a_wildcard_action(stack):
    statements = all_statements(stack)
    assert len(statements) > 30
    for statement in statements:
        for action in statement.actions:
            assert action != "*" and not action.endswith(":*"), f"{statement.source}: {action}"


@pytest.mark.parametrize("function", list(Function))
def test_each_role_holds_exactly_the_actions_its_function_uses(stack, function):
    statements = role_statements(stack, f"{stack.environment.prefix}-{function.value}")
    granted = {action for statement in statements for action in statement.actions}
    assert granted == EXPECTED_ACTIONS[function]


def _ledger_table_arn(stack) -> str:
    (name,) = [n for n, t in stack.resources("aws_dynamodb_table").items() if t["name"].endswith("-ledger")]
    return f"${{aws_dynamodb_table.{name}.arn}}"


def test_no_role_can_update_or_delete_ledger_entries(stack):
    ledger_arn = _ledger_table_arn(stack)
    ledger_statements = [s for s in all_statements(stack) if any(r.startswith(ledger_arn) for r in s.resources)]
    assert ledger_statements
    for statement in ledger_statements:
        assert "dynamodb:DeleteItem" not in statement.actions, statement.source
        assert "dynamodb:BatchWriteItem" not in statement.actions, statement.source
        if "dynamodb:UpdateItem" in statement.actions:
            (leading_keys,) = [c for c in statement.conditions if c[1] == "dynamodb:LeadingKeys"]
            assert leading_keys[0] == "ForAllValues:StringLike"
            assert leading_keys[2] == (f"{Partition.PAYMENT.value}*",), statement.source


def test_writers_are_limited_to_their_partitions(dev):
    tokenize = role_statements(dev, "payments-dev-tokenize")
    (put,) = [s for s in tokenize if "dynamodb:PutItem" in s.actions and s.resources[0].startswith(_ledger_table_arn(dev))]
    assert put.conditions == (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("TOKEN#*",)),)


def test_vault_key_use_requires_an_encryption_context(dev):
    statements = role_statements(dev, "payments-dev-charge")
    vault = [s for s in statements if any("vault_key" in resource for resource in s.resources)]
    direct = [s for s in vault if not any(variable == "kms:ViaService" for _, variable, _ in s.conditions)]
    assert {action for s in direct for action in s.actions} == {"kms:GenerateDataKey", "kms:Decrypt"}
    for statement in direct:
        assert ("Null", "kms:EncryptionContextKeys", ("false",)) in statement.conditions


def test_role_policies_are_policy_document_data_sources(stack):
    for policy in stack.resources("aws_iam_role_policy").values():
        assert policy["policy"].startswith("${data.aws_iam_policy_document.")
        assert data_reference_name(policy["policy"]) in stack.data("aws_iam_policy_document")


def test_functions_have_distinct_roles_assumable_only_by_lambda_of_this_account(stack):
    functions = stack.resources("aws_lambda_function").values()
    roles = {function["role"] for function in functions}
    assert len(roles) == len(functions) == len(Function)
    for role_ref in roles:
        role = stack.resources("aws_iam_role")[role_ref.split(".")[1]]
        (trust,) = [
            s
            for name, doc in stack.data("aws_iam_policy_document").items()
            if role["assume_role_policy"] == f"${{data.aws_iam_policy_document.{name}.json}}"
            for s in doc["statement"]
        ]
        assert trust["principals"] == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]
        assert trust["condition"][0]["variable"] == "aws:SourceAccount"
