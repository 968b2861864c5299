"""Readers for the IAM statements in a synthesized stack."""

import json
from dataclasses import dataclass

from tests.conftest import SynthesizedStack


@dataclass(frozen=True)
class FoundStatement:
    source: str  # construct path of the policy
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (test, variable, values)
    principals: tuple[tuple[str, tuple[str, ...]], ...]


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, list) else (value,)


def policy_document_statements(stack: SynthesizedStack, name: str) -> list[FoundStatement]:
    document = stack.data("aws_iam_policy_document")[name]
    return [
        FoundStatement(
            source=document["//"]["metadata"]["path"],
            actions=tuple(s.get("actions", ())),
            resources=tuple(s.get("resources", ())),
            conditions=tuple((c["test"], c["variable"], tuple(c["values"])) for c in s.get("condition", ())),
            principals=tuple((p["type"], tuple(p["identifiers"])) for p in s.get("principals", ())),
        )
        for s in document.get("statement", ())
    ]


def key_policy_statements(stack: SynthesizedStack, key_name: str) -> list[FoundStatement]:
    key = stack.resources("aws_kms_key")[key_name]
    policy = json.loads(key["policy"])
    return [
        FoundStatement(
            source=key["//"]["metadata"]["path"],
            actions=_as_tuple(s["Action"]),
            resources=_as_tuple(s["Resource"]),
            conditions=tuple(
                (test, variable, _as_tuple(values))
                for test, by_variable in s.get("Condition", {}).items()
                for variable, values in by_variable.items()
            ),
            principals=tuple((kind, _as_tuple(ids)) for kind, ids in s.get("Principal", {}).items()),
        )
        for s in policy["Statement"]
    ]


def all_statements(stack: SynthesizedStack) -> list[FoundStatement]:
    found = []
    for name in stack.data("aws_iam_policy_document"):
        found += policy_document_statements(stack, name)
    for name in stack.resources("aws_kms_key"):
        found += key_policy_statements(stack, name)
    return found


def data_reference_name(reference: str) -> str:
    """``${data.aws_iam_policy_document.x_ABC.json}`` -> ``x_ABC``."""
    return reference.removeprefix("${data.aws_iam_policy_document.").removesuffix(".json}")


def role_statements(stack: SynthesizedStack, function_name: str) -> list[FoundStatement]:
    """Statements of the role of the Lambda function named ``function_name``."""
    function = next(f for f in stack.resources("aws_lambda_function").values() if f["function_name"] == function_name)
    role_name = function["role"].removeprefix("${aws_iam_role.").removesuffix(".arn}")
    statements = []
    for policy in stack.resources("aws_iam_role_policy").values():
        if policy["role"] == f"${{aws_iam_role.{role_name}.id}}":
            statements += policy_document_statements(stack, data_reference_name(policy["policy"]))
    return statements
