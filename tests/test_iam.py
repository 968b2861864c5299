"""Least privilege, read off the synthesized IAM: no wildcards, ledger entries
append-only, and each role holding exactly the actions its function calls."""

import pytest

from lambdas.encryption_context import CONDITION_KEY, CONTEXT_KEY, Purpose
from lambdas.routes import Function
from lambdas.storage_schema import Partition
from tests.support.policies import (
    all_statements,
    allowed,
    data_reference_name,
    key_policy_statements,
    role_arn,
    role_statements,
)

COMMON = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
IDEMPOTENCY = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# The table key's use that DynamoDB (and SQS, Secrets Manager) make on a role's behalf: reads, and writes.
KEY_READ = {"kms:Decrypt", "kms:DescribeKey"}
KEY_WRITE = KEY_READ | {"kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}
EXPECTED_ACTIONS = {
    Function.TOKENIZE: COMMON
    | IDEMPOTENCY
    | KEY_WRITE
    | {"kms:GenerateDataKey", "kms:GenerateMac", "dynamodb:ConditionCheckItem"},
    Function.CHARGE: COMMON
    | IDEMPOTENCY
    | KEY_WRITE
    | {"kms:GenerateDataKey", "kms:Decrypt", "kms:GenerateMac", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    | {"dynamodb:BatchGetItem", "secretsmanager:GetSecretValue"},
    Function.REFUND: COMMON
    | IDEMPOTENCY
    | KEY_WRITE
    | {"kms:Decrypt", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    | {"secretsmanager:GetSecretValue"},
    Function.CAPTURE: COMMON
    | IDEMPOTENCY
    | KEY_WRITE
    | {"kms:GenerateDataKey", "kms:Decrypt", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    | {"dynamodb:BatchGetItem", "secretsmanager:GetSecretValue"},
    Function.READ: COMMON
    | KEY_READ
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem", "kms:Decrypt", "kms:GetPublicKey"},
    Function.RECONCILE: COMMON
    | KEY_WRITE
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"}
    | {"dynamodb:Scan"}  # every merchant, from the merchants table only
    | {"dynamodb:BatchGetItem"}  # a payment with its chain's head
    | {"secretsmanager:GetSecretValue", "kms:Decrypt", "sqs:SendMessage"},
    Function.CHECKPOINT: COMMON
    | KEY_WRITE
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:Scan"}
    | {"kms:Sign", "kms:GetPublicKey", "sqs:SendMessage"}
    | {"s3:PutObject", "s3:GetObject", "kms:GenerateDataKey"},  # the checkpoints' write-once copy, through S3
    Function.WEBHOOKS: COMMON
    | IDEMPOTENCY
    | KEY_WRITE
    | {"kms:GenerateDataKey", "dynamodb:Query", "dynamodb:ConditionCheckItem"},  # seals secrets, opens none
    Function.DELIVER: COMMON
    | KEY_WRITE
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    | {"dynamodb:ConditionCheckItem", "dynamodb:Scan", "kms:Decrypt", "sqs:SendMessage"},
    Function.SETTLE: COMMON
    | KEY_WRITE
    | {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"}
    | {"dynamodb:Scan"}  # every merchant, from the merchants table only
    | {"dynamodb:BatchGetItem"}  # the expected movements of a page of lines
    | {"secretsmanager:GetSecretValue", "kms:Decrypt", "sqs:SendMessage"},
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
            # payments move through their states; chain heads advance with each entry; events are leased and made
            # due; endpoints are marked deleted; settlements' shares and imports advance; entries are never updated
            allowed_prefixes = {f"{p.value}*" for p in (Partition.PAYMENT, Partition.CHAIN, Partition.EVENT)}
            allowed_prefixes |= {f"{p.value}*" for p in (Partition.ENDPOINT, Partition.SETTLEMENT, Partition.GATEWAY)}
            assert set(leading_keys[2]) <= allowed_prefixes, statement.source
            assert f"{Partition.LEDGER.value}*" not in leading_keys[2], statement.source


def test_writers_are_limited_to_their_partitions(dev):
    tokenize = role_statements(dev, "payments-dev-tokenize")
    (put,) = [
        s for s in tokenize if "dynamodb:PutItem" in s.actions and s.resources[0].startswith(_ledger_table_arn(dev))
    ]
    assert put.conditions == (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("TOKEN#*",)),)


def test_the_checkpoint_role_reads_only_heads_and_checkpoints_and_only_adds_checkpoints(dev):
    on_ledger = [
        s
        for s in role_statements(dev, "payments-dev-checkpoint")
        if s.resources and s.resources[0].startswith(_ledger_table_arn(dev))
    ]
    assert {(s.actions, s.resources, s.conditions) for s in on_ledger} == {
        (("dynamodb:GetItem", "dynamodb:Query"), (_ledger_table_arn(dev),),
         (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("CHAIN#*", "CHECKPOINT#*")),)),
        (("dynamodb:Query",), (f"{_ledger_table_arn(dev)}/index/by_chain",),  # the entry where a checkpoint signed
         (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("CHAIN#*",)),)),
        (("dynamodb:ConditionCheckItem", "dynamodb:PutItem"), (_ledger_table_arn(dev),),
         (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("CHECKPOINT#*",)),)),
    }  # fmt: skip


def test_only_the_checkpoint_role_signs_and_only_checkpoints_the_way_the_contract_says(dev):
    (key,) = [name for name in dev.resources("aws_kms_key") if name.startswith("signing_key")]
    signers = {
        function
        for function in Function
        for s in role_statements(dev, f"payments-dev-{function.value}")
        if "kms:Sign" in s.actions
    }
    assert signers == {Function.CHECKPOINT}
    (sign,) = [s for s in key_policy_statements(dev, key) if "kms:Sign" in s.actions and s.effect == "Allow"]
    assert sign.principals == (("AWS", (role_arn(dev, "payments-dev-checkpoint"),)),)
    raw = {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}
    assert allowed([sign], "kms:Sign", raw)
    assert not allowed([sign], "kms:Sign", raw | {"kms:MessageType": "DIGEST"})  # a digest the caller chose
    assert not allowed([sign], "kms:Sign", raw | {"kms:SigningAlgorithm": "ECDSA_SHA_384"})
    public = [s for s in key_policy_statements(dev, key) if "kms:GetPublicKey" in s.actions]  # not kms:Get*
    readers = {role_arn(dev, f"payments-dev-{name}") for name in ("checkpoint", "read")}  # checkpoint: the newest's
    assert {arn for s in public for _, arns in s.principals for arn in arns} == readers  # signature, before a run


# What each function's code does with the vault key, by purpose (lambdas/bootstrap.py builds one cipher per purpose).
VAULT_USE = {
    Function.TOKENIZE: {("kms:GenerateDataKey", Purpose.CARD)},  # vaults a card
    Function.CHARGE: {
        ("kms:GenerateDataKey", Purpose.METADATA),
        ("kms:Decrypt", Purpose.METADATA),
        ("kms:Decrypt", Purpose.CARD),
    },  # seals metadata and answers, opens them and vaulted cards
    Function.REFUND: set(),
    Function.CAPTURE: {("kms:GenerateDataKey", Purpose.METADATA), ("kms:Decrypt", Purpose.METADATA)},  # answers
    Function.READ: {("kms:Decrypt", Purpose.METADATA)},  # returns payments with their metadata
    Function.RECONCILE: set(),
    Function.CHECKPOINT: set(),
    Function.WEBHOOKS: {("kms:GenerateDataKey", Purpose.WEBHOOK_SECRET)},  # seals an endpoint's secret, never opens one
    # opens the secrets that sign deliveries, and the metadata of the payment an event shows
    Function.DELIVER: {("kms:Decrypt", Purpose.WEBHOOK_SECRET), ("kms:Decrypt", Purpose.METADATA)},
    Function.SETTLE: set(),  # reads payments without their metadata
}
ENVELOPE_OPERATIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def _direct_request(purpose: str | None) -> dict:
    """The condition keys of EnvelopeCipher's own KMS call (no AWS service in between) for ``purpose``."""
    return {CONDITION_KEY: purpose, "kms:EncryptionContextKeys": (CONTEXT_KEY,)} if purpose else {}


def _vault_key_permissions(stack, function: Function) -> tuple[list, list]:
    """The role's statements on the vault key, and the vault key policy's statements that can apply to the
    role (naming it, or the account, whose principals the key policy leaves to IAM)."""
    (key,) = [name for name in stack.resources("aws_kms_key") if name.startswith("vault_key")]
    function_name = f"{stack.environment.prefix}-{function.value}"
    on_key = [s for s in role_statements(stack, function_name) if f"${{aws_kms_key.{key}.arn}}" in s.resources]
    principal = role_arn(stack, function_name)
    for_role = [
        s
        for s in key_policy_statements(stack, key)
        for kind, identifiers in s.principals
        if kind == "AWS" and any(i == principal or i.endswith(":root") for i in identifiers)
    ]
    return on_key, for_role


@pytest.mark.parametrize("function", list(Function))
def test_each_role_uses_the_vault_key_only_for_the_purposes_its_code_has(stack, function):
    role_policy, key_policy = _vault_key_permissions(stack, function)
    for action in ENVELOPE_OPERATIONS:
        for purpose in Purpose:
            expected = (action, purpose) in VAULT_USE[function]
            request = _direct_request(purpose)
            assert allowed(role_policy, action, request) is expected, f"role policy: {action} {purpose}"
            assert allowed(key_policy, action, request) is expected, f"key policy: {action} {purpose}"


def test_the_read_role_cannot_decrypt_a_vaulted_card_and_the_charge_role_can(dev):
    card = _direct_request(Purpose.CARD)
    for policy in _vault_key_permissions(dev, Function.READ):
        assert not allowed(policy, "kms:Decrypt", card)
        assert allowed(policy, "kms:Decrypt", _direct_request(Purpose.METADATA))
    for policy in _vault_key_permissions(dev, Function.CHARGE):
        assert allowed(policy, "kms:Decrypt", card)


def test_vault_key_use_without_a_purpose_is_denied(dev):
    for policy in _vault_key_permissions(dev, Function.CHARGE):
        for action in ENVELOPE_OPERATIONS:
            assert not allowed(policy, action, _direct_request(None))
            assert not allowed(policy, action, _direct_request("another-purpose"))


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
        (lambda_,) = [n for n, d in stack.data("aws_service_principal").items() if d["service_name"] == "lambda"]
        lambda_principal = f"${{data.aws_service_principal.{lambda_}.name}}"
        assert trust["principals"] == [{"type": "Service", "identifiers": [lambda_principal]}]
        assert trust["condition"][0]["variable"] == "aws:SourceAccount"


def test_only_the_scheduled_functions_scan_and_only_the_merchants_table(stack):
    (merchants,) = [n for n, t in stack.resources("aws_dynamodb_table").items() if t["name"].endswith("-merchants")]
    scans = [s for s in all_statements(stack) if "dynamodb:Scan" in s.actions]
    scheduled = (Function.RECONCILE, Function.CHECKPOINT, Function.DELIVER, Function.SETTLE)
    assert [s.resources for s in scans] == [(f"${{aws_dynamodb_table.{merchants}.arn}}",)] * len(scheduled)
    for function in scheduled:
        assert any(scan in role_statements(stack, f"{stack.environment.prefix}-{function.value}") for scan in scans)


def _table_names(stack) -> dict[str, str]:
    """Each table's name by its ARN reference."""
    return {f"${{aws_dynamodb_table.{n}.arn}}": t["name"] for n, t in stack.resources("aws_dynamodb_table").items()}


@pytest.mark.parametrize("function", list(Function))
def test_every_table_a_role_uses_comes_with_its_keys_use_through_dynamodb_for_that_table_only(stack, function):
    """DynamoDB encrypts a CMK table with the caller's permissions: without the key's use through DynamoDB the
    first read or write is AccessDenied on AWS (moto checks nothing of it)."""
    statements = role_statements(stack, f"{stack.environment.prefix}-{function.value}")
    tables = _table_names(stack)
    through: dict[str, set[str]] = {}
    for statement in statements:
        conditions = {c[1]: c for c in statement.conditions}
        if "kms:ViaService" in conditions and conditions["kms:ViaService"][2][0].startswith("dynamodb."):
            (table,) = conditions["kms:EncryptionContext:aws:dynamodb:tableName"][2]
            assert conditions["kms:ViaService"][0] == "StringEquals" and table in tables.values()
            through.setdefault(table, set()).update(statement.actions)
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    for statement in statements:
        for resource in statement.resources:
            if resource.startswith("${aws_dynamodb_table."):
                name = tables[resource.split("/index/")[0]]  # an index is read with its table's key
                needed = KEY_WRITE if writes & set(statement.actions) else KEY_READ
                granted = through.get(name, set())
                assert needed <= granted, f"{statement.source}: {sorted(needed - granted)} missing on the table key"


def test_the_secret_and_the_dead_letters_keys_are_used_only_through_their_service_for_that_resource(dev):
    def through(function: str, service: str) -> dict[str, tuple]:
        for statement in role_statements(dev, f"payments-dev-{function}"):
            conditions = {c[1]: c[2] for c in statement.conditions}
            if conditions.get("kms:ViaService", ("",))[0].startswith(f"{service}."):
                return conditions
        raise AssertionError(f"{function} may not use a key through {service}")

    (secret,) = dev.resources("aws_secretsmanager_secret").values()
    (secret_arn,) = through("charge", "secretsmanager")["kms:EncryptionContext:SecretARN"]
    assert secret_arn.endswith(f":secretsmanager:us-east-1:${{data.aws_caller_identity.caller.account_id}}:secret:"
                               f"{secret['name']}-??????")  # fmt: skip
    for function in ("reconcile", "checkpoint", "deliver", "settle"):
        (queue,) = [
            q for q in dev.resources("aws_sqs_queue").values() if q["name"] == f"payments-dev-{function}-dead-letters"
        ]
        (queue_arn,) = through(function, "sqs")["kms:EncryptionContext:aws:sqs:arn"]
        assert queue_arn.endswith(f":sqs:us-east-1:${{data.aws_caller_identity.caller.account_id}}:{queue['name']}")


def test_only_the_delivery_role_opens_webhook_secrets_and_only_registration_seals_them(dev):
    """Breaks if any other role could read an endpoint's secret (and so sign as the service), or delivery could
    make one."""
    secret = _direct_request(Purpose.WEBHOOK_SECRET)
    for function in Function:
        for policy in _vault_key_permissions(dev, function):
            assert allowed(policy, "kms:Decrypt", secret) is (function is Function.DELIVER), function
            assert allowed(policy, "kms:GenerateDataKey", secret) is (function is Function.WEBHOOKS), function


def _ledger_writes(stack, function: Function) -> dict[str, set[str]]:
    """Each write action the role holds on the ledger table, and the partition prefixes it is limited to."""
    ledger_arn = _ledger_table_arn(stack)
    writes: dict[str, set[str]] = {}
    for statement in role_statements(stack, f"{stack.environment.prefix}-{function.value}"):
        if not any(r.startswith(ledger_arn) for r in statement.resources):
            continue
        (leading_keys,) = [c[2] for c in statement.conditions if c[1] == "dynamodb:LeadingKeys"] or [("*",)]
        for action in set(statement.actions) & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}:
            writes.setdefault(action, set()).update(leading_keys)
    return writes


def test_delivery_cannot_write_the_ledger_only_its_events(dev):
    """Breaks if the delivery role (which talks to the internet) could add an entry, move a payment or a chain."""
    event = {f"{Partition.EVENT.value}*"}
    assert _ledger_writes(dev, Function.DELIVER) == {"dynamodb:PutItem": event, "dynamodb:UpdateItem": event}
    webhooks = _ledger_writes(dev, Function.WEBHOOKS)
    assert webhooks["dynamodb:PutItem"] == {f"{Partition.ENDPOINT.value}*"}
    assert webhooks["dynamodb:UpdateItem"] == {f"{Partition.ENDPOINT.value}*", f"{Partition.EVENT.value}*"}


def test_settlement_reads_payments_but_only_adds_entries_and_moves_heads_shares_and_imports(dev):
    """Breaks if the settlement role could change a payment or a refund, or write outside its partitions."""
    prefixes = {f"{p.value}*" for p in (Partition.CHAIN, Partition.SETTLEMENT, Partition.GATEWAY)}
    assert _ledger_writes(dev, Function.SETTLE) == {
        "dynamodb:PutItem": prefixes - {f"{Partition.CHAIN.value}*"}
        | {f"{p.value}*" for p in (Partition.LEDGER, Partition.EVENT)},
        "dynamodb:UpdateItem": prefixes,
    }
