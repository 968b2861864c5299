"""`make local`'s credentials: an access key for each dev merchant's IAM user in the emulator, written as an AWS
shared-credentials file (one profile per merchant, named by its id, with the region and the merchant's API key, read
from the emulator's API Gateway as an operator reads it), so that
``AWS_SHARED_CREDENTIALS_FILE=.local/credentials AWS_PROFILE=<merchant>`` is all a client needs."""

import configparser
import io
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import boto3

from client.signing import API_KEY_SETTING
from stacks.config import EMULATOR_ACCOUNT, EnvironmentConfig
from tools.sigv4 import IssuedCredential

REPO = Path(__file__).resolve().parent.parent
CREDENTIALS_VARIABLE = "PAYMENTS_LOCAL_CREDENTIALS"


def credentials_path() -> Path:
    return Path(os.environ.get(CREDENTIALS_VARIABLE) or REPO / ".local" / "credentials")


def _local_user(principals: tuple[str, ...]) -> str | None:
    """The first IAM user in the emulator's account among a merchant's principals (its ARN)."""
    for principal in principals:
        if principal.startswith(f"arn:aws:iam::{EMULATOR_ACCOUNT}:user/"):
            return principal
    return None


def issue(config: EnvironmentConfig, path: Path, api_key_ids: Mapping[str, str]) -> dict[str, IssuedCredential]:
    """Create each merchant's user and an access key in the emulator's IAM; write them, with the merchant's API key
    (``api_key_ids``: the stack's ``merchant_api_key_ids`` output), to ``path`` (mode 600).
    Returns the issued credentials by access key id."""
    iam = boto3.client("iam")
    apigateway = boto3.client("apigateway")
    issued: dict[str, IssuedCredential] = {}
    profiles = configparser.ConfigParser()
    for merchant in config.merchants:
        arn = _local_user(merchant.principals)
        if arn is None:
            raise ValueError(f"merchant {merchant.id} names no IAM user in account {EMULATOR_ACCOUNT} to sign as")
        *path_parts, name = arn.split(":user", 1)[1].split("/")[1:]
        user = iam.create_user(UserName=name, Path="/" + "".join(f"{part}/" for part in path_parts))["User"]
        key = iam.create_access_key(UserName=name)["AccessKey"]
        api_key = apigateway.get_api_key(apiKey=api_key_ids[merchant.id], includeValue=True)["value"]
        issued[key["AccessKeyId"]] = IssuedCredential(
            key["AccessKeyId"], key["SecretAccessKey"], user["Arn"], EMULATOR_ACCOUNT, merchant.id, api_key
        )
        profiles[merchant.id] = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "region": config.region,
            API_KEY_SETTING: api_key,
        }
    text = io.StringIO()
    profiles.write(text)
    write_private(path, text.getvalue())
    return issued


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as its owner's alone (mode 0600, whatever the umask or the mode of a file that was
    there): into a new file in the same directory, made exclusively and never through a symlink, then moved over
    ``path``, which replaces a file or symlink there rather than writing through it. A failed write leaves ``path``
    as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
