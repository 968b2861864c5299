"""`make local`'s credentials: an access key for each dev merchant's IAM user in the emulator, written as an AWS
shared-credentials file (one profile per merchant, named by its id, with the region), so that
``AWS_SHARED_CREDENTIALS_FILE=.local/credentials AWS_PROFILE=<merchant>`` is all a client needs."""

import configparser
import os
from pathlib import Path

import boto3

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


def issue(config: EnvironmentConfig, path: Path) -> dict[str, IssuedCredential]:
    """Create each merchant's user and an access key in the emulator's IAM; write them to ``path`` (mode 600).
    Returns the issued credentials by access key id."""
    iam = boto3.client("iam")
    issued: dict[str, IssuedCredential] = {}
    profiles = configparser.ConfigParser()
    for merchant in config.merchants:
        arn = _local_user(merchant.principals)
        if arn is None:
            raise ValueError(f"merchant {merchant.id} names no IAM user in account {EMULATOR_ACCOUNT} to sign as")
        *path_parts, name = arn.split(":user", 1)[1].split("/")[1:]
        user = iam.create_user(UserName=name, Path="/" + "".join(f"{part}/" for part in path_parts))["User"]
        key = iam.create_access_key(UserName=name)["AccessKey"]
        issued[key["AccessKeyId"]] = IssuedCredential(
            key["AccessKeyId"], key["SecretAccessKey"], user["Arn"], EMULATOR_ACCOUNT
        )
        profiles[merchant.id] = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "region": config.region,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        profiles.write(file)
    return issued
