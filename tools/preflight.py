"""`make preflight ENV=…` (python -m tools.preflight --environment ENV): what would fail first in the target account,
checked before a deploy and again before the first payment. Read-only; credentials from the usual chain.

1. the credentials are for the environment's account (Terraform refuses any other: allowed_account_ids);
2. Lambda's unreserved concurrency can hold what the functions reserve (AWS keeps 100 unreserved);
3. the Sparkle secret has a value (once deployed: the operator puts it);
4. the gateway answers at its URL;
5. the API domain's certificate is issued, covers the domain, and outlives the next 30 days.

Exit 1 when a check fails; a step that can only follow the deploy is printed as ``next``."""

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from lambdas.routes import Function
from stacks.config import ENVIRONMENT_NAMES, EnvironmentConfig, configured_environment

UNRESERVED_MINIMUM = 100  # concurrency Lambda keeps unreserved in every account and region
CERTIFICATE_MARGIN = timedelta(days=30)
# What a regional custom domain takes: RSA keys up to 2,048 bits (1,024 is too weak to use), or ECDSA P-256/P-384.
REGIONAL_KEY_ALGORITHMS = ("RSA_2048", "EC_prime256v1", "EC_secp384r1")
GATEWAY_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Finding:
    check: str
    status: Literal["ok", "fail", "next"]
    detail: str


def _missing(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in {"ResourceNotFoundException", "NotFoundException"}


def check_account(config: EnvironmentConfig, session: boto3.Session) -> Finding:
    account = session.client("sts").get_caller_identity()["Account"]
    if account != config.account_id:
        return Finding(
            "account", "fail", f"credentials are for {account}; {config.name} deploys to {config.account_id}"
        )
    return Finding("account", "ok", account)


def check_concurrency(config: EnvironmentConfig, session: boto3.Session) -> Finding:
    lambda_ = session.client("lambda")
    limit = lambda_.get_account_settings()["AccountLimit"]
    per_function = config.functions.reserved_concurrency
    if per_function is None:
        return Finding("concurrency", "ok", f"none reserved; the account runs {limit['ConcurrentExecutions']} at once")
    held_now = 0  # what this environment's functions already reserve comes back to the pool when they are updated
    for function in Function:
        try:
            reserved = lambda_.get_function_concurrency(FunctionName=config.function_name(function.value))
        except ClientError as error:
            if not _missing(error):
                raise
            continue
        held_now += reserved.get("ReservedConcurrentExecutions", 0)
    needed = per_function * len(Function)
    available = limit["UnreservedConcurrentExecutions"] + held_now - UNRESERVED_MINIMUM
    detail = (
        f"{len(Function)} functions x {per_function} reserved = {needed}; the account's limit is "
        f"{limit['ConcurrentExecutions']}, {available} of it reservable (Lambda keeps {UNRESERVED_MINIMUM} unreserved)"
    )
    if needed > available:
        return Finding("concurrency", "fail", detail + ": ask for a higher Lambda concurrency quota first")
    return Finding("concurrency", "ok", detail)


def check_secret(config: EnvironmentConfig, session: boto3.Session) -> Finding:
    name = config.gateway_secret_name
    try:
        description = session.client("secretsmanager").describe_secret(SecretId=name)
    except ClientError as error:
        if not _missing(error):
            raise
        return Finding("secret", "next", f"{name} is created by the deploy; then put the Sparkle secret key in it")
    versions = description.get("VersionIdsToStages", {})
    if description.get("DeletedDate"):
        return Finding("secret", "fail", f"{name} is scheduled for deletion: restore it (restore-secret) first")
    if not any("AWSCURRENT" in stages for stages in versions.values()):
        return Finding("secret", "fail", f"{name} has no value: put the Sparkle secret key (put-secret-value)")
    return Finding("secret", "ok", f"{name} has a current value")


def check_gateway(config: EnvironmentConfig, get: Callable[..., requests.Response] = requests.get) -> Finding:
    url = str(config.gateway_base_url)
    try:
        answer = get(url, timeout=GATEWAY_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as error:
        return Finding("gateway", "fail", f"{url} does not answer: {type(error).__name__}")
    if answer.is_redirect or 300 <= answer.status_code < 400:  # the client follows no redirect: charges would fail
        return Finding("gateway", "fail", f"{url} redirects (HTTP {answer.status_code}): configure the final URL")
    if answer.status_code >= 500:
        return Finding("gateway", "fail", f"{url} is not serving (HTTP {answer.status_code})")
    return Finding("gateway", "ok", f"{url} answers (HTTP {answer.status_code})")


def check_certificate(config: EnvironmentConfig, session: boto3.Session, now: datetime) -> Finding:
    if config.domain is None:
        return Finding("certificate", "ok", "no custom domain: the execute-api endpoint serves the API")
    domain, arn = config.domain.name, config.domain.certificate_arn
    try:
        certificate = session.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except ClientError as error:
        if not _missing(error):
            raise
        return Finding("certificate", "fail", f"{arn} does not exist in {config.region}")
    names = {certificate["DomainName"], *certificate.get("SubjectAlternativeNames", ())}
    problems = []
    if certificate["Status"] != "ISSUED":
        problems.append(f"its status is {certificate['Status']}")
    if certificate.get("Type") == "PRIVATE":
        problems.append("it is private: a regional API's certificate must come from a publicly trusted CA")
    algorithm = str(certificate.get("KeyAlgorithm", "")).replace("-", "_")
    if algorithm not in REGIONAL_KEY_ALGORITHMS:
        problems.append(f"API Gateway takes no {algorithm} key here (only {', '.join(REGIONAL_KEY_ALGORITHMS)})")
    if not any(fnmatchcase(domain, name) and domain.count(".") == name.count(".") for name in names):
        problems.append(f"it does not cover {domain} (only {', '.join(sorted(names))})")
    expires = certificate.get("NotAfter")
    if expires and expires < now + CERTIFICATE_MARGIN:
        problems.append(f"it expires on {expires:%Y-%m-%d}")
    if problems:
        return Finding("certificate", "fail", f"{arn}: " + "; ".join(problems))
    return Finding("certificate", "ok", f"{domain}: issued, valid until {expires:%Y-%m-%d}" if expires else domain)


def preflight(config: EnvironmentConfig, session: boto3.Session, now: datetime | None = None) -> list[Finding]:
    """Every check, each run whatever the others found; an AWS call that cannot be made is that check's failure."""
    moment = now or datetime.now(UTC)
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("account", lambda: check_account(config, session)),
        ("concurrency", lambda: check_concurrency(config, session)),
        ("secret", lambda: check_secret(config, session)),
        ("gateway", lambda: check_gateway(config)),
        ("certificate", lambda: check_certificate(config, session, moment)),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(check())
        except NoCredentialsError:
            findings.append(Finding(name, "fail", "no AWS credentials: set a profile, keys or a role for the account"))
        except (BotoCoreError, ClientError) as error:
            findings.append(Finding(name, "fail", f"AWS refused or could not be reached: {error}"))
    return findings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES)
    config = configured_environment(parser.parse_args().environment)
    findings = preflight(config, boto3.Session(region_name=config.region))
    for finding in findings:
        print(f"{finding.status:5} {finding.check:12} {finding.detail}")
    sys.exit(1 if any(finding.status == "fail" for finding in findings) else 0)


if __name__ == "__main__":
    main()
