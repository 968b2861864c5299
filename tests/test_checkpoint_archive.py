"""The checkpoints' write-once copy: the S3 adapter on an Object Lock bucket (moto) and the directory `make local`
keeps take each checkpoint once, under its merchant and sequence, and give back what they took; a second writer of
the same sequence writes nothing; reading a whole copy back takes the first version written under each name."""

import stat

import boto3
import pytest
from moto import mock_aws

from lambdas.adapters.checkpoint_archive import (
    DirectoryCheckpointArchive,
    S3CheckpointArchive,
    archived_in_bucket,
    archived_in_directory,
    document,
    object_key,
)
from lambdas.domain.chains import Head, positions
from lambdas.domain.checkpoints import Checkpoint
from lambdas.ports import ArchiveTaken
from tools.local import fresh_archive

BUCKET = "payments-test-checkpoints-123456789012"


def _checkpoint(sequence: int, root: str = "ab" * 32) -> Checkpoint:
    body = {"merchant": "acme", "sequence": sequence, "previous": None, "root": root, "signature": "c2ln"}
    return Checkpoint(body, positions([Head(3, 2, "cd" * 32)]))


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
        yield client


@pytest.fixture(params=["bucket", "directory"])
def archive(request, tmp_path):
    if request.param == "bucket":
        client = request.getfixturevalue("s3")
        return S3CheckpointArchive(lambda: client, BUCKET, "acme"), lambda: archived_in_bucket(client, BUCKET)
    return DirectoryCheckpointArchive(tmp_path, "acme"), lambda: archived_in_directory(tmp_path)


def test_a_checkpoint_is_kept_once_under_its_merchant_and_sequence(archive):
    kept, read_all = archive
    assert kept.kept(1) is None
    kept.keep(_checkpoint(1))
    assert kept.kept(1) == _checkpoint(1)
    with pytest.raises(ArchiveTaken):
        kept.keep(_checkpoint(1, root="ef" * 32))  # another run's checkpoint 1: nothing written
    assert kept.kept(1) == _checkpoint(1)
    kept.keep(_checkpoint(2))
    assert read_all() == {"acme": {1: _checkpoint(1), 2: _checkpoint(2)}}


def test_the_bucket_copy_is_read_back_as_first_written_whatever_was_put_over_it(s3):
    S3CheckpointArchive(lambda: s3, BUCKET, "acme").keep(_checkpoint(1))
    key = object_key("acme", 1)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ObjectLockMode"] == "COMPLIANCE"  # the bucket's default lock
    s3.put_object(Bucket=BUCKET, Key=key, Body=document(_checkpoint(1, root="ef" * 32)))  # a new version over it
    s3.delete_object(Bucket=BUCKET, Key=key)  # and a delete marker
    assert archived_in_bucket(s3, BUCKET) == {"acme": {1: _checkpoint(1)}}


def test_the_directory_copy_is_read_only_and_a_fresh_make_local_clears_only_its_checkpoints(tmp_path):
    DirectoryCheckpointArchive(tmp_path, "acme").keep(_checkpoint(1))
    path = tmp_path / object_key("acme", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    (tmp_path / "notes.txt").write_text("mine")
    fresh_archive(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
