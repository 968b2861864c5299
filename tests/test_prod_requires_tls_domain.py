"""Synth refuses prod without a domain, TLS and an https gateway URL from the operator's configuration (README,
'Deploying': "Synth refuses prod while any is missing"), however the operator's table is written:

- every key of the operator's table replaces the repository's setting of that name, but not ``production``: a
  table copied from dev's, ``production = false`` included, does not make a prod with no domain (the execute-api
  endpoint enabled, TLS 1.0) and an ``http`` gateway URL;
- the certificate belongs to the environment's account, not only its region: a Regional custom domain takes a
  certificate of the API's own account (ACM certificates are not shared), else CreateDomainName fails mid-apply,
  after the tables, keys and functions were created."""

import pytest

from stacks.config import load_environment
from tests.conftest import example_operator_settings


def test_prod_cannot_be_switched_out_of_production_by_the_operator():
    operator = example_operator_settings()
    operator["prod"] |= {"production": False, "gateway_base_url": "http://api.sparkle.internal/"}
    del operator["prod"]["domain"]
    with pytest.raises(ValueError):
        config = load_environment("prod", operator)
        print(f"prod synthesizes: production={config.production}, domain={config.domain}, "
              f"gateway={config.gateway_base_url}")  # fmt: skip


def test_the_certificate_belongs_to_the_environments_account():
    operator = example_operator_settings()
    domain = operator["prod"]["domain"]
    assert operator["prod"]["account_id"] == "111122223333"
    domain["certificate_arn"] = domain["certificate_arn"].replace(":111122223333:", ":999988887777:")
    with pytest.raises(ValueError, match="certificate"):
        load_environment("prod", operator)
