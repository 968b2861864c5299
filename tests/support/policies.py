"""Readers for the IAM statements in a synthesized stack."""

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase

from tests.conftest import SynthesizedStack


@dataclass(frozen=True)
class FoundStatement:
    source: str  # construct path of the policy
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (test, variable, values)
    principals: tuple[tuple[str, tuple[str, ...]], ...]
    effect: str = "Allow"

    def matches(self, action: str, context: dict[str, str | tuple[str, ...]]) -> bool:
        """Whether this statement applies to ``action`` in a request whose condition keys are ``context``."""
        if not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions):
            return False
        return all(_condition_holds(test, variable, values, context) for test, variable, values in self.conditions)


def _condition_holds(test: str, variable: str, values: tuple[str, ...], context: dict) -> bool:
    """IAM's condition operators, for those the stack writes on KMS statements; any other fails loudly."""
    present = context.get(variable)
    if test == "Null":
        return (present is None) == (values == ("true",))
    if test == "StringEquals":  # single-valued keys: a missing key never matches
        return present is not None and any(value in values for value in _as_tuple(present))
    if test == "ArnLike":  # the key administrators' deny: a request without the key is not theirs
        return present is not None and any(fnmatchcase(v, pattern) for v in _as_tuple(present) for pattern in values)
    raise NotImplementedError(f"condition operator {test} on {variable}")


def allowed(statements: list["FoundStatement"], action: str, context: dict) -> bool:
    """IAM's decision over ``statements``: an explicit deny wins, then any allow; otherwise denied."""
    matching = [s for s in statements if s.matches(action, context)]
    return not any(s.effect == "Deny" for s in matching) and any(s.effect == "Allow" for s in matching)


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
            effect=s.get("effect", "Allow"),
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
            effect=s["Effect"],
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


def role_arn(stack: SynthesizedStack, function_name: str) -> str:
    """The role ARN reference (``${aws_iam_role.x_ABC.arn}``) of the Lambda function named ``function_name``."""
    functions = stack.resources("aws_lambda_function").values()
    return next(f["role"] for f in functions if f["function_name"] == function_name)


def role_statements(stack: SynthesizedStack, function_name: str) -> list[FoundStatement]:
    """Statements of the role of the Lambda function named ``function_name``."""
    role_name = role_arn(stack, function_name).removeprefix("${aws_iam_role.").removesuffix(".arn}")
    statements = []
    for policy in stack.resources("aws_iam_role_policy").values():
        if policy["role"] == f"${{aws_iam_role.{role_name}.id}}":
            statements += policy_document_statements(stack, data_reference_name(policy["policy"]))
    return statements
