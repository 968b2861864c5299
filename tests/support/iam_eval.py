"""A small offline evaluator of AWS IAM policies: identity policies, resource policies (KMS key policies included)
and the same-account and cross-account rules that combine them.

No maintained Python library does this (moto's access control ignores conditions; the maintained simulators are
Node packages), so it is written here after AWS's documented evaluation logic
(IAM User Guide, "Policy evaluation logic" and "Condition operators"):

- a statement applies when its action, resource, principal (resource policies) and every condition match;
  ``NotAction``/``NotResource``/``NotPrincipal`` match what they do not name;
- actions match case-insensitively, resources and string conditions case-sensitively, with ``*`` and ``?``;
- an applicable explicit ``Deny`` anywhere wins;
- same account: an identity-policy allow or a resource-policy allow naming the principal is enough, except for
  KMS, where the key policy must allow: directly, or by naming the account (root), which then needs the identity
  policy too;
- across accounts both sides must allow.

Condition operators: the ``String*``, ``Arn*``, ``Bool`` and ``Null`` families, with ``IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` qualifiers. Any other operator raises, so a policy that starts using one fails
loudly instead of being half-evaluated."""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache

Values = tuple[str, ...]
ContextValue = str | tuple[str, ...]


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character; nothing else is special."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_matches(glob: str, value: str, ignore_case: bool = False) -> bool:
    return _pattern(glob, ignore_case).match(value) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: each of the six colon-separated parts is matched on its own (the last may hold colons)."""
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(glob_matches(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


# Base operators: (matches one request value against one policy value, negated).
_BASE_OPERATORS = {
    "StringEquals": (lambda policy, value: policy == value, False),
    "StringNotEquals": (lambda policy, value: policy == value, True),
    "StringEqualsIgnoreCase": (lambda policy, value: policy.lower() == value.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda policy, value: policy.lower() == value.lower(), True),
    "StringLike": (glob_matches, False),
    "StringNotLike": (glob_matches, True),
    "ArnEquals": (_arn_like, False),  # ArnEquals and ArnLike behave alike (the IAM User Guide)
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda policy, value: policy.lower() == value.lower(), False),
}


class UnknownOperator(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    operator: str  # e.g. "StringEquals", "ForAllValues:StringLike", "ArnLikeIfExists"
    key: str
    values: Values

    def holds(self, context: Mapping[str, ContextValue]) -> bool:
        operator, qualifier = self.operator, None
        if ":" in operator:
            qualifier, operator = operator.split(":", 1)
            if qualifier not in ("ForAnyValue", "ForAllValues"):
                raise UnknownOperator(self.operator)
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        operator = operator.removesuffix("IfExists") if if_exists else operator
        present = _lookup(context, self.key)
        if operator == "Null":
            if qualifier or if_exists:
                raise UnknownOperator(self.operator)
            return (present is None) == (self.values[0].lower() == "true")
        if operator not in _BASE_OPERATORS:
            raise UnknownOperator(self.operator)
        match, negated = _BASE_OPERATORS[operator]

        def one(value: str) -> bool:
            matched = any(match(policy, value) for policy in self.values)
            return not matched if negated else matched

        values = () if present is None else (present if isinstance(present, tuple) else (present,))
        if qualifier == "ForAllValues":  # every request value matches; vacuously true when there is none
            return all(one(value) for value in values)
        if qualifier == "ForAnyValue":  # at least one request value matches; false when there is none
            return any(one(value) for value in values)
        if present is None:  # a missing key: only IfExists, or a negated operator, is satisfied
            return if_exists or negated
        return all(one(value) for value in values) if negated else any(one(value) for value in values)


def _lookup(context: Mapping[str, ContextValue], key: str) -> ContextValue | None:
    """Condition keys are case-insensitive; their values are not."""
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return value
    return None


Principals = tuple[tuple[str, Values], ...]  # (type, identifiers): ("AWS", (arn, ...)), ("Service", (...)), ("*", ...)


@dataclass(frozen=True)
class Statement:
    effect: str = "Allow"
    actions: Values = ()
    not_actions: Values = ()
    resources: Values = ()
    not_resources: Values = ()
    principals: Principals = ()
    not_principals: Principals = ()
    conditions: tuple[Condition, ...] = ()
    sid: str = ""

    def __post_init__(self) -> None:
        if self.effect not in ("Allow", "Deny"):
            raise ValueError(f"effect {self.effect!r}")
        for condition in self.conditions:  # every operator is known before any request is evaluated
            condition.holds({})

    def matches_action(self, action: str) -> bool:
        if self.not_actions:
            return not any(glob_matches(a, action, ignore_case=True) for a in self.not_actions)
        return any(glob_matches(a, action, ignore_case=True) for a in self.actions)

    def matches_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(glob_matches(r, resource) for r in self.not_resources)
        return any(glob_matches(r, resource) for r in self.resources)

    def applies(self, request: "Request") -> bool:
        """Whether the statement's action, resource and conditions match (principals are matched apart)."""
        return (
            self.matches_action(request.action)
            and self.matches_resource(request.resource)
            and all(condition.holds(request.context) for condition in self.conditions)
        )


@dataclass(frozen=True)
class Request:
    principal: str  # an IAM role or user ARN, or a service principal's name
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal_type: str = "AWS"  # or "Service"

    @property
    def account(self) -> str:
        return _account(self.principal) if self.principal_type == "AWS" else ""

    def with_context(self) -> "Request":
        """The request with the global keys IAM always sets for an IAM principal."""
        if self.principal_type != "AWS":
            return self
        extra = {"aws:PrincipalArn": self.principal, "aws:PrincipalAccount": self.account}
        return Request(self.principal, self.action, self.resource, {**extra, **self.context}, self.principal_type)


def _account(arn: str) -> str:
    if arn.isdigit():
        return arn
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


class PrincipalMatch(Enum):
    NONE = "none"
    DIRECT = "direct"  # the statement names the principal itself (or "*")
    ACCOUNT = "account"  # the statement names the principal's account: its identity policy must allow too


def principal_match(statement: Statement, request: Request) -> PrincipalMatch:
    if statement.not_principals:
        named = _names(statement.not_principals, request)
        return PrincipalMatch.NONE if named is not PrincipalMatch.NONE else PrincipalMatch.DIRECT
    return _names(statement.principals, request)


def _names(principals: Principals, request: Request) -> PrincipalMatch:
    best = PrincipalMatch.NONE
    for kind, identifiers in principals:
        for identifier in identifiers:
            if kind == "*" or identifier == "*":
                return PrincipalMatch.DIRECT
            if kind != request.principal_type:
                continue
            if identifier == request.principal:
                return PrincipalMatch.DIRECT
            if kind == "AWS" and _is_account(identifier) and _account(identifier) == request.account:
                best = PrincipalMatch.ACCOUNT
    return best


def _is_account(identifier: str) -> bool:
    return identifier.isdigit() or (identifier.startswith("arn:") and identifier.endswith(":root"))


class Decision(Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


def _allows(statements: Iterable[Statement], request: Request) -> bool:
    return any(s.effect == "Allow" and s.applies(request) for s in statements)


def _denies(statements: Iterable[Statement], request: Request) -> bool:
    return any(s.effect == "Deny" and s.applies(request) for s in statements)


def decide(
    request: Request,
    identity: Iterable[Statement] = (),
    resource_policy: Iterable[Statement] | None = None,
    resource_account: str = "",
    resource_policy_required: bool = False,
) -> Decision:
    """IAM's decision on ``request`` given the principal's identity policies and the resource's policy (None: the
    resource has none). ``resource_policy_required`` is KMS's rule: without a key-policy allow nothing is allowed."""
    request = request.with_context()
    identity = list(identity) if request.principal_type == "AWS" else []  # a service principal has no IAM policy
    applicable: dict[PrincipalMatch, list[Statement]] = {PrincipalMatch.DIRECT: [], PrincipalMatch.ACCOUNT: []}
    for statement in resource_policy or ():
        matched = principal_match(statement, request)
        if matched is not PrincipalMatch.NONE:
            applicable[matched].append(statement)
    resource_statements = applicable[PrincipalMatch.DIRECT] + applicable[PrincipalMatch.ACCOUNT]
    if _denies(identity, request) or _denies(resource_statements, request):
        return Decision.EXPLICIT_DENY
    identity_allows = _allows(identity, request)
    resource_allows_directly = _allows(applicable[PrincipalMatch.DIRECT], request)
    resource_allows_account = _allows(applicable[PrincipalMatch.ACCOUNT], request)
    same_account = request.principal_type == "Service" or request.account == resource_account
    if resource_policy_required:
        allowed = resource_allows_directly or (resource_allows_account and identity_allows)
        if not same_account:
            allowed = (resource_allows_directly or resource_allows_account) and identity_allows
    elif same_account:
        allowed = identity_allows or resource_allows_directly or (resource_allows_account and identity_allows)
    else:
        allowed = identity_allows and (resource_allows_directly or resource_allows_account)
    return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY


# --- policy grammars ---------------------------------------------------------------------------------------------


def _tuple(value) -> Values:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _principals_json(value) -> Principals:
    if value is None:
        return ()
    if value == "*":
        return (("*", ("*",)),)
    return tuple((kind, _tuple(ids)) for kind, ids in value.items())


def statements_from_json(policy: Mapping) -> list[Statement]:
    """A policy in IAM's JSON grammar (``{"Statement": [{"Effect": ..., "Action": ...}]}``)."""
    statements = policy["Statement"]
    return [
        Statement(
            effect=s["Effect"],
            actions=_tuple(s.get("Action")),
            not_actions=_tuple(s.get("NotAction")),
            resources=_tuple(s.get("Resource")),
            not_resources=_tuple(s.get("NotResource")),
            principals=_principals_json(s.get("Principal")),
            not_principals=_principals_json(s.get("NotPrincipal")),
            conditions=tuple(
                Condition(operator, key, _tuple(values))
                for operator, by_key in s.get("Condition", {}).items()
                for key, values in by_key.items()
            ),
            sid=s.get("Sid", ""),
        )
        for s in (statements if isinstance(statements, list) else [statements])
    ]


def _principals_document(blocks) -> Principals:
    return tuple((b["type"], _tuple(b["identifiers"])) for b in blocks or ())


def statements_from_document(document: Mapping) -> list[Statement]:
    """The statements of an ``aws_iam_policy_document`` data source, as Terraform JSON writes them."""
    return [
        Statement(
            effect=s.get("effect", "Allow"),
            actions=_tuple(s.get("actions")),
            not_actions=_tuple(s.get("not_actions")),
            resources=_tuple(s.get("resources")),
            not_resources=_tuple(s.get("not_resources")),
            principals=_principals_document(s.get("principals")),
            not_principals=_principals_document(s.get("not_principals")),
            conditions=tuple(Condition(c["test"], c["variable"], _tuple(c["values"])) for c in s.get("condition", ())),
            sid=s.get("sid", ""),
        )
        for s in document.get("statement", ())
    ]
