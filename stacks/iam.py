"""IAM statements as plain values, rendered into ``aws_iam_policy_document`` data
sources (which scanners read), and the grantee interface resources grant to.

A construct that owns a resource also owns the permissions on it: it builds the
statement and hands it to ``grantee.add_to_policy`` (CDK's ``grant*`` pattern),
so no policy is assembled by hand in a stack.
"""

from dataclasses import dataclass, field
from typing import Protocol

from cdktf import TerraformStack
from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
)
from cdktf_cdktf_provider_aws.data_aws_service_principal import DataAwsServicePrincipal
from constructs import Construct


@dataclass(frozen=True)
class Condition:
    test: str
    variable: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    principals: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (type, identifiers)
    effect: str = "Allow"

    def __post_init__(self) -> None:
        if not self.sid.isalnum():
            raise ValueError(f"statement id {self.sid!r} must be alphanumeric")
        for action in self.actions:  # a Deny of a whole service denies more, which is what it is for
            if self.effect == "Allow" and (action == "*" or action.endswith(":*")):
                raise ValueError(f"statement {self.sid}: a wildcard action ({action}) grants more than is used")

    def render(self) -> dict:
        """The statement in the Terraform JSON shape of ``aws_iam_policy_document``."""
        rendered: dict = {
            "sid": self.sid,
            "effect": self.effect,
            "actions": sorted(self.actions),
            "resources": list(self.resources),
        }
        if self.principals:
            rendered["principals"] = [{"type": kind, "identifiers": list(ids)} for kind, ids in self.principals]
        if self.conditions:
            rendered["condition"] = [
                {"test": c.test, "variable": c.variable, "values": list(c.values)} for c in self.conditions
            ]
        return rendered

    def render_json(self) -> dict:
        """The statement in IAM's own JSON grammar (for policies that are not data sources)."""
        rendered: dict = {"Sid": self.sid, "Effect": self.effect}
        if self.principals:
            rendered["Principal"] = {kind: list(ids) for kind, ids in self.principals}
        rendered |= {"Action": sorted(self.actions), "Resource": list(self.resources)}
        if self.conditions:
            grouped: dict = {}
            for c in self.conditions:
                grouped.setdefault(c.test, {})[c.variable] = list(c.values)
            rendered["Condition"] = grouped
        return rendered


class Grantable(Protocol):
    """Anything with an IAM identity that a resource can grant permissions to."""

    @property
    def grant_name(self) -> str:
        """Alphanumeric name that makes the statements granted to it unique."""
        ...

    @property
    def role_arn(self) -> str: ...

    def add_to_policy(self, statement: Statement) -> None: ...


@dataclass
class PolicyDocument:
    """A policy document that grows as statements are granted.

    Grants arrive one by one after the document exists, so the statement list is
    written as an override each time it changes; the synthesized data source then
    holds all of them in the provider's own schema.
    """

    scope: Construct
    id: str
    statements: list[Statement] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data = DataAwsIamPolicyDocument(self.scope, self.id)

    @property
    def json(self) -> str:
        return self.data.json

    def add(self, statement: Statement) -> None:
        if any(existing.sid == statement.sid for existing in self.statements):
            raise ValueError(f"{self.scope.node.path}: statement {statement.sid} is granted twice")
        self.statements.append(statement)
        self.data.add_override("statement", [s.render() for s in self.statements])


def service_principal(scope: Construct, service: str) -> str:
    """The service principal of ``service`` (e.g. ``lambda``) in the stack's partition and region, from the
    provider (one data source per service and stack): no literal host name in the stacks."""
    stack = TerraformStack.of(scope)
    found = stack.node.try_find_child(f"service-principal-{service}")
    principal = found if isinstance(found, DataAwsServicePrincipal) else None
    if principal is None:
        principal = DataAwsServicePrincipal(stack, f"service-principal-{service}", service_name=service)
    return principal.name


def service_trust_policy(scope: Construct, id: str, service: str, conditions: tuple[Condition, ...] = ()) -> str:
    """The assume-role policy of a role that ``service`` (e.g. ``lambda``) takes on, under ``conditions``."""
    document = DataAwsIamPolicyDocument(
        scope,
        id,
        statement=[
            DataAwsIamPolicyDocumentStatement(
                actions=["sts:AssumeRole"],
                principals=[
                    DataAwsIamPolicyDocumentStatementPrincipals(
                        type="Service", identifiers=[service_principal(scope, service)]
                    )
                ],
                condition=[
                    DataAwsIamPolicyDocumentStatementCondition(test=c.test, variable=c.variable, values=list(c.values))
                    for c in conditions
                ]
                or None,
            )
        ],
    )
    return document.json
