"""SigV4 for requests: each request signed for ``execute-api`` with credentials from botocore's chain (a
profile, the environment, a role), refreshed when they are temporary, and carrying the merchant's API key
(``x-api-key``), which meters its requests at its own rate (its usage plan)."""

import os

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

SERVICE = "execute-api"
API_KEY_HEADER = "x-api-key"
API_KEY_VARIABLE = "PAYMENTS_API_KEY"  # the merchant's API key; else the profile's setting below
API_KEY_SETTING = "payments_api_key"  # in the profile's section of the credentials or config file


class SigV4(requests.auth.AuthBase):
    def __init__(self, credentials: Credentials, region: str, api_key: str | None = None) -> None:
        self.credentials = credentials
        self.region = region
        self.api_key = api_key

    @classmethod
    def from_chain(
        cls, profile: str | None = None, region: str | None = None, credentials_file: str | None = None
    ) -> "SigV4":
        """Credentials and region as the AWS CLI finds them (``AWS_PROFILE``, ``AWS_SHARED_CREDENTIALS_FILE``, ...);
        the API key from ``$PAYMENTS_API_KEY``, else the profile's ``payments_api_key``."""
        session = Session(profile=profile)
        if credentials_file is not None:
            session.set_config_variable("credentials_file", credentials_file)
        credentials = session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found: set AWS_PROFILE (and AWS_SHARED_CREDENTIALS_FILE) or keys")
        region = region or session.get_config_variable("region")
        if not region:
            raise RuntimeError("no AWS region: set AWS_REGION or the profile's region")
        api_key = os.environ.get(API_KEY_VARIABLE) or session.get_scoped_config().get(API_KEY_SETTING)
        return cls(credentials, region, api_key)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Signs every header the request carries (its ``Idempotency-Key`` and API key too)."""
        if self.api_key:
            request.headers[API_KEY_HEADER] = self.api_key
        body = request.body or b""
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            data=body.encode() if isinstance(body, str) else body,
            headers={k: v for k, v in request.headers.items() if k.lower() not in ("connection", "content-length")},
        )
        SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request
