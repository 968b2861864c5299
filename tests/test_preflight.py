"""`make preflight` against the emulator (a moto server over HTTP): each check passes where the account is ready,
and fails, naming the fix, where a deploy or the first payment would fail."""

import io
import os
import subprocess
import sys
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdas.routes import Function
from stacks.config import DEV, EMULATOR_ACCOUNT, OPERATOR_CONFIG_VARIABLE, CustomDomain
from tests.conftest import ENVIRONMENTS, REPO
from tools.emulator import emulator_environment, free_port, moto_server
from tools.preflight import check_account, check_certificate, check_concurrency, check_gateway, check_secret

NOW = datetime.now(UTC)
DOMAIN = "payments.operator.internal"
# prod as its operator configured it, moved into the emulator's account and region.
PROD = ENVIRONMENTS["prod"].model_copy(update={"account_id": EMULATOR_ACCOUNT, "region": "us-east-1"})


@pytest.fixture
def emulator(monkeypatch, request):
    """A fresh moto server; ``@pytest.mark.parametrize("emulator", [quota], indirect=True)`` sets its account's
    Lambda concurrency limit."""
    quota = getattr(request, "param", None)
    if quota:
        monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", str(quota))
    with moto_server(free_port()) as endpoint:
        for name, value in emulator_environment(endpoint, "us-east-1").items():
            monkeypatch.setenv(name, value)
        yield boto3.Session(region_name="us-east-1")


def _reserve(session, config, per_function: int) -> None:
    """Each of ``config``'s functions exists and already reserves ``per_function``."""
    role = session.client("iam").create_role(RoleName="preflight", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    lambda_ = session.client("lambda")
    for function in Function:
        name = config.function_name(function.value)
        lambda_.create_function(FunctionName=name, Runtime="python3.13", Role=role, Handler="handler.handler",
                                Code={"ZipFile": code.getvalue()})  # fmt: skip
        lambda_.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=per_function)


def test_credentials_for_another_account_fail_before_terraform_would(emulator):
    assert check_account(DEV, emulator).status == "ok"
    finding = check_account(ENVIRONMENTS["prod"], emulator)
    assert finding.status == "fail"
    assert finding.detail == f"credentials are for {EMULATOR_ACCOUNT}; prod deploys to 111122223333"


@pytest.mark.parametrize("emulator", [300], indirect=True)
def test_an_account_too_small_for_the_reservations_fails_and_says_to_raise_the_quota(emulator):
    finding = check_concurrency(PROD, emulator)  # 10 x 50 = 500 > 300 - 100
    assert finding.status == "fail"
    assert "10 functions x 50 reserved = 500; the account's limit is 300, 200 of it reservable" in finding.detail
    assert finding.detail.endswith("ask for a higher Lambda concurrency quota first")


@pytest.mark.parametrize("emulator", [600], indirect=True)
def test_what_the_environment_already_reserves_counts_as_available_on_a_redeploy(emulator):
    _reserve(emulator, PROD, 50)  # 600 - 10 x 50 leaves Lambda's minimum of 100 unreserved
    assert emulator.client("lambda").get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 100
    finding = check_concurrency(PROD, emulator)
    assert finding.status == "ok" and "500 of it reservable" in finding.detail


def test_the_default_quota_holds_prod_and_dev_reserves_nothing(emulator):
    assert check_concurrency(PROD, emulator).status == "ok"
    assert check_concurrency(DEV, emulator).detail == "none reserved; the account runs 1000 at once"


def test_the_secret_is_created_by_the_deploy_then_needs_its_value(emulator):
    assert check_secret(DEV, emulator).status == "next"
    secrets = emulator.client("secretsmanager")
    secrets.create_secret(Name=DEV.gateway_secret_name)
    finding = check_secret(DEV, emulator)
    assert finding.status == "fail" and "has no value" in finding.detail
    secrets.put_secret_value(SecretId=DEV.gateway_secret_name, SecretString="sk_test_preflight")
    assert check_secret(DEV, emulator).status == "ok"


def test_the_gateway_must_answer_at_its_url():
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = DEV.model_copy(update={"gateway_base_url": f"http://127.0.0.1:{server.server_port}/"})
        assert check_gateway(up).status == "ok" and "HTTP 404" in check_gateway(up).detail
    finally:
        server.shutdown()
        server.server_close()
    down = DEV.model_copy(update={"gateway_base_url": f"http://127.0.0.1:{free_port()}/"})
    finding = check_gateway(down)
    assert finding.status == "fail" and finding.detail.endswith("does not answer: ConnectionError")


def _certificate(session, names: list[str], days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return session.client("acm").import_certificate(
        Certificate=certificate.public_bytes(serialization.Encoding.PEM), PrivateKey=private
    )["CertificateArn"]


@pytest.mark.parametrize(
    ("names", "days", "problem"),
    [
        ([DOMAIN], 365, None),
        (["*.operator.internal"], 365, None),
        (["other.operator.internal"], 365, f"it does not cover {DOMAIN}"),
        (["*.internal"], 365, f"it does not cover {DOMAIN}"),  # a wildcard covers one label only
        ([DOMAIN], 10, "it expires on"),
    ],
)
def test_the_domains_certificate_must_be_issued_cover_the_domain_and_last(emulator, names, days, problem):
    arn = _certificate(emulator, names, days)
    config = PROD.model_copy(update={"domain": CustomDomain(name=DOMAIN, certificate_arn=arn)})
    finding = check_certificate(config, emulator, NOW)
    if problem is None:
        assert finding.status == "ok" and finding.detail.startswith(f"{DOMAIN}: issued, valid until")
    else:
        assert finding.status == "fail" and problem in finding.detail


def test_a_certificate_that_does_not_exist_fails(emulator):
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0d4e6d6f-8a4c-4c1e-9d8a-3f1f7b2e5c10"
    config = PROD.model_copy(update={"domain": CustomDomain(name=DOMAIN, certificate_arn=arn)})
    assert check_certificate(config, emulator, NOW).detail == f"{arn} does not exist in us-east-1"


def test_make_preflight_prints_each_check_and_exits_1_on_a_failure(emulator, tmp_path):
    operator_file = tmp_path / "operator.toml"  # dev's gateway moved to a port where nothing listens
    operator_file.write_text(f'[dev]\ngateway_base_url = "http://127.0.0.1:{free_port()}/"\n')
    environment = os.environ | {OPERATOR_CONFIG_VARIABLE: str(operator_file)}
    result = subprocess.run([sys.executable, "-m", "tools.preflight", "--environment", "dev"], cwd=REPO,
                            env=environment, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    lines = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines()}
    assert lines == {"account": "ok", "concurrency": "ok", "secret": "next", "gateway": "fail", "certificate": "ok"}
    assert result.returncode == 1
