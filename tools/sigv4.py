"""SigV4 verification for the local API, as API Gateway checks ``AWS_IAM`` requests: the signature is recomputed
with botocore over exactly the headers the client signed, for service ``execute-api`` in the stack's region, and
compared in constant time. Only the credentials `make local` issued are known (their secrets never leave this
process and the credentials file)."""

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z-]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[^,\s]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class IssuedCredential:
    """An access key `make local` issued to an IAM user in the emulator, who that user is, and the merchant it acts
    for with that merchant's API key (its usage plan's)."""

    access_key_id: str
    secret_access_key: str = ""
    principal_arn: str = ""
    account: str = ""
    merchant: str = ""
    api_key: str = ""


class SignatureRejected(Exception):
    """A request API Gateway would refuse with 403 (``code`` as the stack's gateway responses name it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    issued: Mapping[str, IssuedCredential],
    region: str,
    now: datetime,
) -> IssuedCredential:
    """The credential that signed the request (``headers`` with lower-case names), or ``SignatureRejected``."""
    authorization = headers.get("authorization")
    if authorization is None:
        raise SignatureRejected("missing_authentication_token", "Missing Authentication Token")
    parts = _AUTHORIZATION.fullmatch(authorization.strip())
    if parts is None:
        raise SignatureRejected("invalid_signature", "The Authorization header is not an AWS Signature Version 4.")
    credential = issued.get(parts["key"])
    if credential is None:
        raise SignatureRejected("invalid_signature", "The security token included in the request is invalid.")
    if (parts["service"], parts["region"]) != (SERVICE, region):
        raise SignatureRejected("invalid_signature", f"Credential should be scoped to {region}/{SERVICE}.")
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected("invalid_signature", "X-Amz-Date is missing or malformed.") from None
    if abs(now - signed_at) > MAX_SKEW or parts["date"] != amz_date[:8]:
        raise SignatureRejected("expired_signature", "Signature expired or not yet valid.")
    signed = parts["signed"].split(";")
    if "host" not in signed or not set(signed) <= set(headers):
        raise SignatureRejected("invalid_signature", "A signed header is missing.")
    claimed_hash = headers.get("x-amz-content-sha256")
    if claimed_hash is not None and claimed_hash != hashlib.sha256(body).hexdigest():
        raise SignatureRejected("invalid_signature", "The body does not match its signed hash.")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(credential.access_key_id, credential.secret_access_key), SERVICE, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, parts["signature"]):
        raise SignatureRejected(
            "invalid_signature", "The request signature we calculated does not match the signature you provided."
        )
    return credential
