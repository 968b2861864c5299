"""`make local`'s credentials file holds every dev merchant's secret access key: it is its owner's alone (0600)
whatever was at its path before, and writing it never writes through a symlink planted there."""

import configparser
import os
import stat
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from stacks.config import DEV
from tools.local_credentials import issue, write_private


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def api_keys(monkeypatch) -> Iterator[dict[str, str]]:
    """The emulated account, with an API key per dev merchant (as the stack makes them): their ids by merchant."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", DEV.region)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        apigateway = boto3.client("apigateway")
        yield {m.id: apigateway.create_api_key(name=m.id, enabled=True)["id"] for m in DEV.merchants}


def test_an_existing_readable_file_becomes_its_owners_alone(tmp_path, api_keys):
    path = tmp_path / "credentials"
    path.write_text("[old]\n")
    path.chmod(0o644)
    issue(DEV, path, api_keys)
    assert mode(path) == 0o600
    profiles = configparser.ConfigParser()
    profiles.read(path)
    assert set(profiles.sections()) == {merchant.id for merchant in DEV.merchants}


def test_a_symlink_at_the_path_is_replaced_and_its_target_never_written(tmp_path, api_keys):
    target = tmp_path / "elsewhere"
    target.write_text("someone else's file\n")
    target.chmod(0o644)
    path = tmp_path / "local" / "credentials"
    path.parent.mkdir()
    path.symlink_to(target)
    issue(DEV, path, api_keys)
    assert target.read_text() == "someone else's file\n" and mode(target) == 0o644
    assert not path.is_symlink() and mode(path) == 0o600 and "aws_secret_access_key" in path.read_text()


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_the_file_is_0600_under_any_umask_and_no_temporary_file_is_left(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_private(tmp_path / "credentials", "[acme]\n")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "credentials") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credentials"]


def test_a_write_that_fails_leaves_what_was_there_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "credentials"
    path.write_text("[before]\n")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_private(path, "[after]\n")
    assert path.read_text() == "[before]\n" and [p.name for p in tmp_path.iterdir()] == ["credentials"]
