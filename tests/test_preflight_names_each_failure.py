"""`make preflight ENV=…` checks what would fail first and exits 1 naming each failure (README, 'Deploying', step
2), for each case where a deploy, or the first payment, would fail:

- Secrets Manager, DescribeSecret: a secret scheduled for deletion (``DeletedDate``) keeps its versions, yet
  GetSecretValue on it fails ("You can't perform this operation on the secret because it was marked for
  deletion"), and a deploy creating the secret of that name fails the same way until the recovery window ends.
- API Gateway, "Prepare certificates in AWS Certificate Manager": for a Regional custom domain name "the maximum
  size of the public key is 2048" and "the certificate must be signed by a publicly trusted certificate authority".
  An imported RSA_4096 certificate, or a PRIVATE one from AWS Private CA, is ``ISSUED`` and covers the domain, yet
  CreateDomainName refuses it.
- The gateway: the Sparkle client posts with ``allow_redirects=False`` (lambdas/adapters/sparkle.py), so a base URL
  that answers with a redirect is one where every charge fails; a 5xx is a gateway that is not serving.
- Credentials: with none in the chain (or expired ones), the failure is a finding naming the credentials, not a
  traceback, and the other checks still run.

AWS answers are played with botocore's Stubber, shaped as AWS documents them (moto models none of the cases)."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.exceptions import BotoCoreError
from botocore.stub import Stubber

from tests.conftest import ENVIRONMENTS
from tools.preflight import check_certificate, check_gateway, check_secret, preflight

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROD = ENVIRONMENTS["prod"]
DOMAIN = PROD.domain.name
ARN = PROD.domain.certificate_arn


class StubbedSession:
    """A boto3 session whose clients answer from the given Stubber responses (one per call, in order)."""

    def __init__(self, **answers: list[tuple[str, dict]]) -> None:
        self.session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                                     region_name=PROD.region)  # fmt: skip
        self.answers = answers
        self.stubbers: list[Stubber] = []

    def client(self, service: str, **kwargs):
        client = self.session.client(service, **kwargs)
        stubber = Stubber(client)
        for operation, response in self.answers.get(service, []):
            stubber.add_response(operation, response)
        stubber.activate()
        self.stubbers.append(stubber)
        return client


def _certificate(**overrides) -> dict:
    certificate = {
        "CertificateArn": ARN,
        "DomainName": DOMAIN,
        "SubjectAlternativeNames": [DOMAIN],
        "Status": "ISSUED",
        "Type": "AMAZON_ISSUED",
        "KeyAlgorithm": "RSA-2048",
        "NotBefore": NOW - timedelta(days=1),
        "NotAfter": NOW + timedelta(days=365),
    }
    return {"Certificate": certificate | overrides}


def test_a_secret_scheduled_for_deletion_is_not_ok():
    session = StubbedSession(secretsmanager=[("describe_secret", {
        "ARN": f"arn:aws:secretsmanager:{PROD.region}:{PROD.account_id}:secret:{PROD.gateway_secret_name}-AbCdEf",
        "Name": PROD.gateway_secret_name,
        "DeletedDate": NOW - timedelta(days=1),
        "VersionIdsToStages": {"EXAMPLE1-90ab-cdef-fedc-ba987SECRET1": ["AWSCURRENT"]},
    })])  # fmt: skip
    finding = check_secret(PROD, session)
    assert finding.status == "fail", f"a secret scheduled for deletion passed: {finding}"


@pytest.mark.parametrize(
    ("case", "certificate"),
    [
        ("an imported RSA 4096 certificate (a Regional domain takes keys up to 2048 bits)",
         _certificate(Type="IMPORTED", KeyAlgorithm="RSA-4096")),
        ("a private certificate (a Regional domain needs a publicly trusted CA)",
         _certificate(Type="PRIVATE")),
    ],
)  # fmt: skip
def test_a_certificate_api_gateway_refuses_is_not_ok(case, certificate):
    session = StubbedSession(acm=[("describe_certificate", certificate)])
    finding = check_certificate(PROD, session, NOW)
    assert finding.status == "fail", f"{case} passed: {finding}"


def test_a_certificate_api_gateway_takes_is_ok():
    """An ACM-issued RSA 2048 certificate for the domain passes: the stubbed answers refuse only what AWS does."""
    session = StubbedSession(acm=[("describe_certificate", _certificate())])
    assert check_certificate(PROD, session, NOW).status == "ok"


def _answer(status: int, location: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if location:
        response.headers["Location"] = location
    return response


@pytest.mark.parametrize(
    ("case", "answer"),
    [
        ("a gateway answering 503", _answer(503)),
        ("a gateway answering 502", _answer(502)),
        ("a base URL that redirects (the client follows no redirect)", _answer(301, "https://elsewhere.test/")),
        ("a base URL that redirects permanently", _answer(308, "https://elsewhere.test/")),
    ],
)
def test_a_gateway_that_cannot_take_a_charge_is_not_ok(case, answer):
    finding = check_gateway(PROD, get=lambda url, **kwargs: answer)
    assert finding.status == "fail", f"{case} passed: {finding}"


def test_missing_credentials_are_a_named_failure_not_a_traceback(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session(region_name=PROD.region)
    try:
        findings = preflight(PROD, session, NOW)
    except BotoCoreError as error:  # today: NoCredentialsError escapes, and main() prints a traceback
        pytest.fail(f"preflight raised {type(error).__name__} instead of naming the failure: {error}")
    account = next(finding for finding in findings if finding.check == "account")
    assert account.status == "fail" and "credential" in account.detail.lower()
