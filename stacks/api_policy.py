"""The REST API's resource policy: who may invoke it at all (the functions then map each caller to its merchant)."""

import json

RESOURCE_POLICY_MAX_CHARACTERS = 8192  # API Gateway's quota on a REST API's resource policy
INVOKE = {"Action": "execute-api:Invoke", "Resource": "execute-api:/*"}


def invoke_policy(principals: tuple[str, ...]) -> dict:
    """Who may invoke the API: the accounts of ``principals`` (role or user ARNs, account ids), and within them
    only the principals named, or the whole account where an account id is named.

    Within its own account API Gateway lets a caller in when *either* its IAM policy or the resource policy
    allows, so the narrowing is an explicit deny. When naming every principal would pass the size quota, the deny
    names accounts only, and the functions' own lookup (every request) keeps the per-principal check."""
    whole_accounts = sorted({p for p in principals if p.isdigit()})
    arns = sorted({p for p in principals if not p.isdigit()})
    accounts = sorted({p.split(":")[4] for p in arns} | set(whole_accounts))
    allow = {"Sid": "ConfiguredAccounts", "Effect": "Allow", "Principal": {"AWS": accounts}, **INVOKE}

    def deny_unless(**keys: list[str]) -> dict:
        outside = {key: values for key, values in keys.items() if values}
        return {"Sid": "OnlyConfiguredPrincipals", "Effect": "Deny", "Principal": "*", **INVOKE,
                "Condition": {"StringNotEquals": outside}}  # fmt: skip

    precise = {
        "Version": "2012-10-17",
        "Statement": [allow, deny_unless(**{"aws:PrincipalArn": arns, "aws:PrincipalAccount": whole_accounts})],
    }
    if len(json.dumps(precise)) <= RESOURCE_POLICY_MAX_CHARACTERS:
        return precise
    by_account = {"Version": "2012-10-17", "Statement": [allow, deny_unless(**{"aws:PrincipalAccount": accounts})]}
    if len(json.dumps(by_account)) > RESOURCE_POLICY_MAX_CHARACTERS:
        raise ValueError(
            f"{len(accounts)} accounts do not fit API Gateway's {RESOURCE_POLICY_MAX_CHARACTERS}-character resource"
            " policy: raise the quota, or group the callers in fewer accounts"
        )
    return by_account
