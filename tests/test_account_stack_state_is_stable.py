"""Environments that share an account and region share its one account stack, so they must keep their state in one
place: synth refuses them otherwise, in build_app and in main.py, which also checks the environments it does not
synthesize.

stacks/app.py puts the account stack's state beside the first environment's of that account, so were the split
allowed, the account stack's backend would depend on which environments are synthesized together: dev in prod's
account with prod's state in S3 puts it in ``.state/`` when both are synthesized, and in the bucket under
``PAYMENTS_ENVIRONMENTS=prod``. The second apply would start from an empty state and create the account's role
again (IAM: EntityAlreadyExists, the role name is fixed per region), or two states would each claim the account's
API Gateway setting."""

import pytest

from tests.conftest import ENVIRONMENTS, REPO

BUCKET = "payments-prod-state-111122223333"


def _shared_account():
    prod = ENVIRONMENTS["prod"].model_copy(update={"state_bucket": BUCKET})
    dev = ENVIRONMENTS["dev"].model_copy(update={"account_id": prod.account_id, "region": prod.region})
    assert dev.account_stack_id == prod.account_stack_id
    return dev, prod


def test_environments_of_one_account_that_keep_state_apart_are_refused_wherever_they_are_synthesized():
    """The one consistent answer: no state location for the account stack depends on what is synthesized with it."""
    from stacks.config import check_shared_accounts

    dev, prod = _shared_account()
    refused = r"sharing payments-account-111122223333-eu-west-1 keep their state in different places \(dev: \.state/;"
    with pytest.raises(ValueError, match=refused):
        check_shared_accounts([dev, prod])
    check_shared_accounts([prod])  # alone, prod's account stack keeps its state in prod's bucket
    check_shared_accounts([dev, prod.model_copy(update={"state_bucket": None})])


def test_main_checks_the_environments_it_does_not_synthesize_too(tmp_path):
    """`PAYMENTS_ENVIRONMENTS=prod cdktf synth` is refused when dev, configured in prod's account, keeps its state
    elsewhere: before the provider bindings load."""
    import os
    import subprocess
    import sys

    operator = tmp_path / "operator.toml"
    example = (REPO / "docs" / "operator.example.toml").read_text()
    example = example.replace("api.sparkle.example", "api.sparkle.internal").replace("example.com", "operator.internal")
    example = example.replace('# state_bucket = "payments-prod-state-111122223333"', f'state_bucket = "{BUCKET}"')
    dev = '[dev]\naccount_id = "111122223333"\nregion = "eu-west-1"\n'
    dev += 'key_administrators = ["arn:aws:iam::111122223333:role/payments-key-administrator"]\n'  # of its account
    operator.write_text(example + "\n" + dev)
    environment = os.environ | {"PAYMENTS_OPERATOR_CONFIG": str(operator), "PAYMENTS_ENVIRONMENTS": "prod"}
    result = subprocess.run([sys.executable, "main.py"], cwd=REPO, env=environment, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 1
    assert (
        "keep their state in different places (prod: payments-prod-state-111122223333; dev: .state/)" in (result.stderr)
        or "(dev: .state/; prod: payments-prod-state-111122223333)" in result.stderr
    ), result.stderr
