"""Merchants: the tenants. Every token, payment, refund, ledger entry and
idempotency record belongs to one, and each request acts for the merchant its
signer is configured for (``stacks.config.MerchantConfig``).

A caller is known by the principal that signed the request and its account. A
principal is looked up first as itself (an assumed-role session as its role, so
every session of one role is one caller; a role's or user's name in any case, as
IAM compares names), then by its account: a role or user named in the
configuration wins over the whole account it lives in."""

import re
from dataclasses import dataclass

from lambdas.domain.rules import RuleSet

_ASSUMED_ROLE = re.compile(r"arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/[^/]+")
_IAM = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):(?P<kind>role|user)/(?:[^/]+/)*(?P<name>[^/]+)"
)


@dataclass(frozen=True)
class Merchant:
    id: str
    rules: RuleSet
    api_key_id: str | None = None  # its API Gateway API key's id: a request must carry that key (None: none asked)


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the principal's ARN as API Gateway reports it, and its account."""

    principal: str
    account: str


def acting_principal(arn: str) -> str:
    """The principal a request acts as: an assumed-role session acts as its role. Roles and users are known without
    their path (a session's ARN has none; a name is unique in its account); an account id is itself."""
    session = _ASSUMED_ROLE.fullmatch(arn)
    if session is not None:
        return f"arn:{session['partition']}:iam::{session['account']}:role/{session['role']}"
    named = _IAM.fullmatch(arn)
    if named is not None:
        return f"arn:{named['partition']}:iam::{named['account']}:{named['kind']}/{named['name']}"
    return arn


def principal_key(principal: str) -> str:
    """What a principal (an ARN or an account id) is known by when its merchant is looked up: its acting principal
    with the role's or user's name in lower case. IAM compares those names without case (``Checkout`` and
    ``checkout`` cannot both exist in an account), so every spelling is one principal; the rest of an ARN, and an
    account id, are compared as written."""
    acting = acting_principal(principal)
    if _IAM.fullmatch(acting) is None:
        return acting
    head, name = acting.rsplit("/", 1)
    return f"{head}/{name.lower()}"


def any_path(arn: str) -> tuple[str, ...]:
    """IAM ``ArnLike`` patterns for the role or user ``arn`` (wildcards allowed) at whatever path it has: as written,
    and, when written without a path, at any path too (``aws:PrincipalArn`` carries the path, such as an SSO
    role's ``aws-reserved/sso.amazonaws.com/…``)."""
    head, name = arn.rsplit("/", 1)
    return (arn,) if "/" in head.split(":", 5)[5] else (arn, f"{head}/*/{name}")


def lookup_keys(caller: Caller) -> tuple[str, ...]:
    """What a caller is looked up by, most specific first: its acting principal, then its account."""
    keys = [principal_key(caller.principal)] if caller.principal else []
    if caller.account:
        keys.append(caller.account)
    return tuple(dict.fromkeys(keys))
