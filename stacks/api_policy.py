"""The REST API's resource policy: who may invoke it at all (the functions then map each caller to its merchant)."""

import json

from lambdas.domain.merchants import acting_principal, any_path

# API Gateway's default quota on a REST API's resource policy, in characters; adjustable (Service Quotas
# L-8B81B02C), so an operator whose quota AWS raised sets EnvironmentConfig.resource_policy_quota to it.
DEFAULT_RESOURCE_POLICY_QUOTA = 8192
INVOKE = {"Action": "execute-api:Invoke", "Resource": "execute-api:/*"}


def invoke_policy(principals: tuple[str, ...], quota: int = DEFAULT_RESOURCE_POLICY_QUOTA) -> dict:
    """Who may invoke the API: the accounts of ``principals`` (role or user ARNs, account ids), and within them
    only the principals named, or the whole account where an account id is named.

    Within its own account API Gateway lets a caller in when *either* its IAM policy or the resource policy
    allows, so the narrowing is an explicit deny. A role or user matches with any path (as the functions' lookup,
    ``lambdas.domain.merchants.acting_principal``, knows it), so a configured ARN written without the role's path
    is not refused here and accepted there. When naming every principal would pass the size ``quota``, the deny
    names accounts only, and the functions' lookup (every request) keeps the per-principal check."""
    whole_accounts = sorted({p for p in principals if p.isdigit()})
    named = sorted({acting_principal(p) for p in principals if not p.isdigit()})
    accounts = sorted({p.split(":")[4] for p in named} | set(whole_accounts))
    allow = {"Sid": "ConfiguredAccounts", "Effect": "Allow", "Principal": {"AWS": accounts}, **INVOKE}

    def deny_unless(condition: dict[str, dict[str, list[str]]]) -> dict:
        return {"Sid": "OnlyConfiguredPrincipals", "Effect": "Deny", "Principal": "*", **INVOKE,
                "Condition": condition}  # fmt: skip

    precise: dict[str, dict[str, list[str]]] = {}
    if named:
        precise["ArnNotLike"] = {"aws:PrincipalArn": [pattern for arn in named for pattern in any_path(arn)]}
    if whole_accounts:
        precise["StringNotEquals"] = {"aws:PrincipalAccount": whole_accounts}
    policy = {"Version": "2012-10-17", "Statement": [allow, deny_unless(precise)]}
    if len(json.dumps(policy)) <= quota:
        return policy
    by_account = {"StringNotEquals": {"aws:PrincipalAccount": accounts}}
    policy = {"Version": "2012-10-17", "Statement": [allow, deny_unless(by_account)]}
    if len(json.dumps(policy)) > quota:
        raise ValueError(
            f"{len(accounts)} accounts do not fit API Gateway's {quota}-character resource policy: have AWS raise"
            " the quota (Service Quotas L-8B81B02C) and set resource_policy_quota to it, or group the callers in"
            " fewer accounts"
        )
    return policy
