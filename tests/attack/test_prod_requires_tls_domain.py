"""Attack (an operator's honest mistake): "Synth refuses prod without a domain" (issue 9 item 6), "prod's URL must
come from the operator's configuration ... synth fails with a clear message when it is missing" (item 8), and the
README's "Synth refuses prod while any is missing".

The refusal hangs on the key ``production``, and every key of the operator's table replaces the repository's
setting of that name (README, step 1). An operator who copies dev's table as a start, ``production = false``
included, gets a prod that synthesizes with no domain (the execute-api endpoint stays enabled, TLS 1.0), and an
``http`` gateway URL: nothing refuses it. The certificate named by the operator may also belong to another
account: a Regional custom domain takes a certificate of the API's own account (ACM certificates are not shared),
so CreateDomainName fails mid-apply, after the tables, keys and functions were created; synth checks the
certificate's region against the environment's but not its account."""

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
