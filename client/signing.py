"""SigV4 for requests: each request signed for ``execute-api`` with credentials from botocore's chain (a
profile, the environment, a role), refreshed when they are temporary."""

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

SERVICE = "execute-api"


class SigV4(requests.auth.AuthBase):
    def __init__(self, credentials: Credentials, region: str) -> None:
        self.credentials = credentials
        self.region = region

    @classmethod
    def from_chain(
        cls, profile: str | None = None, region: str | None = None, credentials_file: str | None = None
    ) -> "SigV4":
        """Credentials and region as the AWS CLI finds them (``AWS_PROFILE``, ``AWS_SHARED_CREDENTIALS_FILE``, ...)."""
        session = Session(profile=profile)
        if credentials_file is not None:
            session.set_config_variable("credentials_file", credentials_file)
        credentials = session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found: set AWS_PROFILE (and AWS_SHARED_CREDENTIALS_FILE) or keys")
        region = region or session.get_config_variable("region")
        if not region:
            raise RuntimeError("no AWS region: set AWS_REGION or the profile's region")
        return cls(credentials, region)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
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
