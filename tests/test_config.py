"""Configuration that leaves gaps is refused: an accepted currency without a cap, gateway settings whose worst
case does not fit the function's time (and so API Gateway's 29 s), an environment without merchants, or a
principal acting for two merchants."""

import pytest
from pydantic import ValidationError

from lambdas import bootstrap
from lambdas.adapters.sparkle import RetryPolicy, SparkleClient
from lambdas.deadline import WRITE_RESERVE_SECONDS
from lambdas.domain.money import MAX_AMOUNT, SUPPORTED_CURRENCIES
from lambdas.environment import FunctionEnvironment
from stacks.config import (
    API_GATEWAY_LIMIT_SECONDS,
    DEV,
    EMULATOR_ACCOUNT,
    CustomDomain,
    EnvironmentConfig,
    FunctionSettings,
    GatewaySettings,
    MerchantConfig,
    MerchantRules,
    PaymentRules,
    Throttling,
    load_environment,
    operator_settings,
)
from tests.conftest import ENVIRONMENTS, OPERATOR_EXAMPLE

EVERY_CAP = dict.fromkeys(SUPPORTED_CURRENCIES, 1_000_000)
# Settings whose worst case overruns the function: connect 3 s, read 10 s, 3 attempts, backoff 0.2 s doubling.
FORMER_GATEWAY = GatewaySettings(connect_timeout_seconds=3, read_timeout_seconds=10, attempts=3, backoff_seconds=0.2)


ACME = MerchantConfig(id="acme", principals=("arn:aws:iam::123456789012:role/acme",))


BASE = {
    "name": "test",
    "production": False,
    "account_id": "123456789012",
    "region": "us-east-1",
    "gateway_base_url": "http://127.0.0.1:4010",
    "rules": PaymentRules(max_amount=EVERY_CAP),
    "merchants": (ACME,),
}
DOMAIN = CustomDomain(
    name="payments.acme.internal",
    certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/0d4e6d6f-8a4c-4c1e-9d8a-3f1f7b2e5c10",
)
IRISH_CERTIFICATE = DOMAIN.certificate_arn.replace(":us-east-1:", ":eu-west-1:")
PRODUCTION = {"production": True, "gateway_base_url": "https://api.sparkle.internal/", "domain": DOMAIN}


def _config(**fields) -> EnvironmentConfig:
    return EnvironmentConfig(**BASE | fields)


# --- merchants ----------------------------------------------------------------------


def test_an_environment_without_merchants_is_refused():
    with pytest.raises(ValidationError, match="merchants"):
        _config(merchants=())


def test_prod_names_its_merchants_and_dev_at_least_two():
    assert len(ENVIRONMENTS["prod"].merchants) >= 1 and len(ENVIRONMENTS["dev"].merchants) >= 2


@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws:sts::123456789012:assumed-role/acme/session",  # a session acts as its role: name the role
        "arn:aws:iam::123456789012:group/acme",
        "12345678901",
        "*",
        "arn:aws:iam::123456789012:role/acme/",
    ],
)
def test_a_principal_that_is_not_a_role_user_or_account_is_refused(principal):
    with pytest.raises(ValidationError):
        MerchantConfig(id="acme", principals=(principal,))


def test_a_principal_may_act_for_one_merchant_only():
    other = MerchantConfig(id="globex", principals=("arn:aws:iam::123456789012:role/teams/acme",))  # same role
    with pytest.raises(ValidationError, match="acts for both acme and globex"):
        _config(merchants=(ACME, other))
    with pytest.raises(ValidationError, match="unique"):
        _config(merchants=(ACME, ACME))


@pytest.mark.parametrize(
    "principal",
    ["arn:aws:iam::123456789012:role/ACME", "arn:aws:iam::123456789012:role/ops/Acme",
     "arn:aws:iam::123456789012:role/aCmE"],
)  # fmt: skip
def test_a_principal_spelled_in_another_case_is_the_same_principal(principal):
    """IAM names are unique whatever their case (``Acme`` and ``acme`` cannot both exist in one account): the
    spellings name one role, which may act for one merchant only."""
    with pytest.raises(ValidationError, match="acts for both acme and globex"):
        _config(merchants=(ACME, MerchantConfig(id="globex", principals=(principal,))))
    assert _config(merchants=(ACME, MerchantConfig(id="globex", principals=("arn:aws:iam::210987654321:role/ACME",))))


def test_a_merchants_own_rules_replace_the_environments_field_by_field_and_are_checked_whole():
    capped = MerchantConfig(id="capped", principals=("111122223333",), rules=MerchantRules(velocity_per_hour=2))
    rules = capped.effective_rules(_config().rules)
    assert rules.velocity_per_hour == 2 and rules.max_amount == EVERY_CAP
    uncapped = MerchantConfig(id="uncapped", principals=("111122223333",), rules=MerchantRules(max_amount={"USD": 5}))
    with pytest.raises(ValidationError, match="merchant uncapped's rules"):
        _config(merchants=(ACME, uncapped))


# --- caps ------------------------------------------------------------------------


def test_each_merchant_has_its_own_rate_or_the_environments_and_dev_limits_globex_to_5_per_second():
    own = Throttling(rate_limit=5, burst_limit=10)
    config = _config(merchants=(ACME, MerchantConfig(id="globex", principals=("210987654321",), throttling=own)))
    assert [config.merchant_rate(m) for m in config.merchants] == [config.merchant_throttling, own]
    acme, globex = DEV.merchants
    assert (acme.id, DEV.merchant_rate(acme)) == ("acme", DEV.merchant_throttling)
    assert (globex.id, DEV.merchant_rate(globex)) == ("globex", own)


@pytest.mark.parametrize("own", [Throttling(rate_limit=51, burst_limit=10), Throttling(rate_limit=5, burst_limit=101)])
def test_a_merchant_rate_beyond_the_stages_is_refused(own):
    with pytest.raises(ValidationError, match="acme's throttling exceeds the stage's"):
        _config(merchants=(ACME.model_copy(update={"throttling": own}),))


def test_more_merchants_than_usage_plans_are_refused_until_the_quota_is_raised():
    merchants = tuple(MerchantConfig(id=f"m{n}", principals=(str(100000000000 + n),)) for n in range(301))
    with pytest.raises(ValidationError, match="301 merchants need as many API Gateway usage plans"):
        _config(merchants=merchants)
    assert len(_config(merchants=merchants, usage_plan_quota=400).merchants) == 301


def test_rules_accepting_every_currency_must_cap_every_supported_currency():
    caps = {currency: cap for currency, cap in EVERY_CAP.items() if currency not in ("KRW", "INR")}
    with pytest.raises(ValidationError, match="accepted currencies without a max_amount: INR, KRW"):
        PaymentRules(max_amount=caps)


def test_rules_must_cap_each_currency_they_allow():
    with pytest.raises(ValidationError, match=r"without a max_amount: EUR \["):
        PaymentRules(max_amount={"USD": 5000, "GBP": 5000}, allowed_currencies=("USD", "EUR"))
    assert PaymentRules(max_amount={"USD": 5000}, allowed_currencies=("USD",)).max_amount == {"USD": 5000}


def test_rules_without_caps_are_refused():
    with pytest.raises(ValidationError, match="max_amount"):
        PaymentRules()


@pytest.mark.parametrize("rules", [{"allowed_currencies": ("USD", "XTS")}, {"max_amount": EVERY_CAP | {"usd": 1}}])
def test_rules_naming_a_currency_the_service_does_not_support_are_refused(rules):
    with pytest.raises(ValidationError, match=r"currencies the service does not support: (XTS|usd)"):
        PaymentRules(**{"max_amount": {"USD": 1}} | rules)


@pytest.mark.parametrize("cap", [0, MAX_AMOUNT + 1])
def test_a_cap_outside_the_contracts_amounts_is_refused(cap):
    with pytest.raises(ValidationError, match=r"max_amount\.JPY"):
        PaymentRules(max_amount=EVERY_CAP | {"JPY": cap})


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_environment_caps_every_currency_it_accepts(name):
    rules = ENVIRONMENTS[name].rules
    assert set(rules.allowed_currencies or SUPPORTED_CURRENCIES) <= set(rules.max_amount)


def test_dev_caps_at_the_contract_maximum_and_prod_caps_zero_decimal_currencies_in_whole_units():
    assert ENVIRONMENTS["dev"].rules.max_amount == dict.fromkeys(SUPPORTED_CURRENCIES, MAX_AMOUNT)
    prod = ENVIRONMENTS["prod"].rules.max_amount

    def major(currency: str) -> float:
        return prod[currency] / 10 ** SUPPORTED_CURRENCIES[currency]

    # 1 USD buys between 100 and 2000 of each zero-decimal currency: the same cap in those units.
    for currency in ("JPY", "KRW"):
        assert 100 <= major(currency) / major("USD") <= 2000, currency


# --- production: the operator's account, gateway and domain ------------------------------------


def test_a_complete_production_environment_is_accepted():
    assert _config(**PRODUCTION).domain == DOMAIN


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gateway_base_url": "http://api.sparkle.internal/"}, "gateway_base_url must be https"),
        ({"domain": None}, "serves its API on a custom domain with TLS 1.2"),
        ({"gateway_base_url": "https://api.sparkle.example/"}, r"gateway_base_url is a placeholder \(api\.sparkle"),
        ({"gateway_base_url": "https://sparkle.example.com/"}, "gateway_base_url is a placeholder"),
        ({"gateway_base_url": "https://api.sparkle.example./"}, "gateway_base_url is a placeholder"),
        ({"gateway_base_url": "https://sk_live:x@api.sparkle.internal/"}, "gateway_base_url carries credentials"),
        ({"domain": DOMAIN.model_copy(update={"name": "pay.example.org"})}, r"domain is a placeholder \(pay\."),
        ({"domain": DOMAIN.model_copy(update={"certificate_arn": IRISH_CERTIFICATE})},
         "certificate of payments.acme.internal is in eu-west-1; a regional API in us-east-1 needs one there"),
    ],
)  # fmt: skip
def test_production_refuses_plain_http_no_domain_placeholders_and_a_certificate_elsewhere(fields, message):
    with pytest.raises(ValidationError, match=message):
        _config(**PRODUCTION | fields)


def test_a_domain_needs_an_acm_certificate_arn_and_tls_1_2():
    with pytest.raises(ValidationError, match="certificate_arn"):
        CustomDomain(name="payments.acme.internal", certificate_arn="arn:aws:iam::123456789012:server-certificate/x")
    with pytest.raises(ValidationError, match="security_policy"):
        CustomDomain(name="payments.acme.internal", certificate_arn=DOMAIN.certificate_arn, security_policy="TLS_1_0")


def test_prod_without_its_operators_settings_is_refused_naming_each_and_where_to_set_them(tmp_path):
    operator_file = tmp_path / "operator.toml"
    operator_file.write_text('[prod]\nregion = "eu-west-1"\n')
    with pytest.raises(ValueError, match=r"environment prod cannot be synthesized: account_id: Field required; "
                                         r"gateway_base_url: Field required; merchants: Field required\. "
                                         r"Its operator sets these in \[prod\]"):  # fmt: skip
        load_environment("prod", operator_settings(operator_file))


def test_the_documented_operator_example_is_complete_but_for_its_placeholder_hosts():
    with pytest.raises(ValueError, match=r"gateway_base_url is a placeholder \(api.sparkle.example\)"):
        load_environment("prod", operator_settings(OPERATOR_EXAMPLE))
    assert ENVIRONMENTS["prod"].domain and ENVIRONMENTS["prod"].account_id == "111122223333"  # with real-looking hosts


def test_an_operator_table_for_an_unknown_environment_is_refused(tmp_path):
    operator_file = tmp_path / "operator.toml"
    operator_file.write_text('[staging]\nregion = "eu-west-1"\n')
    with pytest.raises(ValueError, match="no such environment: staging"):
        operator_settings(operator_file)


def test_an_operator_file_named_but_missing_is_an_error_and_the_default_file_may_be_absent(tmp_path):
    with pytest.raises(ValueError, match=r"operator configuration .*typo\.toml: \[Errno 2\] No such file"):
        operator_settings(tmp_path / "typo.toml")
    assert operator_settings(None) == {}


def test_the_operator_cannot_make_an_environment_something_else():
    with pytest.raises(ValueError, match=r"\[prod\] of the operator's configuration cannot set name, production"):
        load_environment("prod", {"prod": {"name": "dev", "production": False}})


def test_dev_runs_on_the_emulator_without_reserving_concurrency_and_prod_reserves_it():
    assert DEV.account_id == EMULATOR_ACCOUNT and not DEV.production
    assert DEV.functions.reserved_concurrency is None  # a new account has 10 units of concurrency in all
    assert ENVIRONMENTS["prod"].functions.reserved_concurrency


# --- time budget -----------------------------------------------------------------


def test_one_gateway_call_takes_every_attempt_and_the_backoffs_between_them():
    assert FORMER_GATEWAY.call_seconds == pytest.approx(3 * (3 + 10) + 0.2 + 0.4)  # 39.6 s


def test_the_former_gateway_settings_are_refused_because_only_the_deadline_would_stop_them():
    with pytest.raises(ValidationError, match="reaches the 25 s function timeout"):
        _config(gateway=FORMER_GATEWAY)
    # 79.2 s of gateway calls, cut at the deadline: the worst case is the whole function timeout.
    unchecked = EnvironmentConfig.model_construct(**_config().__dict__ | {"gateway": FORMER_GATEWAY})
    assert unchecked.worst_case_seconds == 25


def test_a_worst_case_that_reaches_the_function_timeout_is_refused_and_one_below_it_is_accepted():
    def single_attempt(read: float) -> GatewaySettings:
        return GatewaySettings(connect_timeout_seconds=1, read_timeout_seconds=read, attempts=1)

    with pytest.raises(ValidationError, match="reaches the 25 s function timeout"):
        _config(gateway=single_attempt(10.5))  # 2 x 11.5 + 2 = 25
    assert _config(gateway=single_attempt(10.25)).worst_case_seconds == pytest.approx(24.5)


def test_settings_where_not_one_attempt_fits_the_budget_are_refused():
    with pytest.raises(ValidationError, match=r"one gateway attempt .* does not fit the 8\.0 s a 10 s function leaves"):
        _config(functions=FunctionSettings(timeout_seconds=10), gateway=GatewaySettings(read_timeout_seconds=8))


def test_a_function_timeout_of_api_gateways_29_s_is_refused():
    with pytest.raises(ValidationError, match="timeout_seconds"):
        FunctionSettings(timeout_seconds=API_GATEWAY_LIMIT_SECONDS)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_each_environment_answers_before_its_timeout_without_being_cut(name):
    config = ENVIRONMENTS[name]
    gateway = 2 * config.gateway.call_seconds
    assert config.worst_case_seconds == pytest.approx(gateway + WRITE_RESERVE_SECONDS)
    assert config.worst_case_seconds < config.functions.timeout_seconds < API_GATEWAY_LIMIT_SECONDS


# --- settings reach the client ---------------------------------------------------------


def test_the_functions_gateway_client_is_built_with_the_configured_settings(stack):
    settings = stack.environment.gateway
    for function in stack.resources("aws_lambda_function").values():
        client = bootstrap._sparkle_client(FunctionEnvironment.from_environ(function["environment"]["variables"]))
        assert (client.connect_timeout, client.read_timeout) == (
            settings.connect_timeout_seconds,
            settings.read_timeout_seconds,
        )
        assert client.retry == RetryPolicy(attempts=settings.attempts, backoff_seconds=settings.backoff_seconds)


def test_gateway_settings_left_unset_keep_the_clients_defaults():
    tables = dict.fromkeys(("LEDGER_TABLE", "IDEMPOTENCY_TABLE", "MERCHANTS_TABLE"), "unused")
    keys = dict.fromkeys(("VAULT_KEY_ID", "FINGERPRINT_KEY_ID", "SIGNING_KEY_ID"), "unused")
    gateway = {"GATEWAY_BASE_URL": "http://127.0.0.1:1", "GATEWAY_SECRET_ID": "s", "GATEWAY_READ_TIMEOUT": "1"}
    client = bootstrap._sparkle_client(FunctionEnvironment.from_environ(tables | keys | gateway))
    defaults = SparkleClient("http://127.0.0.1:1", lambda: "")
    assert (client.connect_timeout, client.read_timeout) == (defaults.connect_timeout, 1.0)
    assert client.retry == defaults.retry


def test_the_gateway_secret_is_read_with_the_functions_bounded_aws_client_settings(moto_resources):
    """It is read on a payment's path, before the gateway is asked: botocore's defaults (60 s to read, 3 legacy
    retries) could hold the request past its deadline."""
    secret = bootstrap.GatewaySecret(moto_resources["GATEWAY_SECRET_ID"])
    assert secret().startswith("sk_")
    assert secret.provider is not None
    config = secret.provider.client.meta.config
    expected = bootstrap.AWS_CLIENT_CONFIG
    assert (config.connect_timeout, config.read_timeout, config.retries) == (
        expected.connect_timeout,
        expected.read_timeout,
        expected.retries,
    )


@pytest.mark.parametrize(
    "pattern", ["role/*", "role/payments-*", "role/payments-dev-charge-role", "role/payments-dev-??????-role"]
)
def test_a_key_administrator_pattern_that_would_deny_the_service_its_own_keys_is_refused(pattern):
    administrator = f"arn:aws:iam::{DEV.account_id}:{pattern}"
    with pytest.raises(ValidationError, match="would match the service's own role"):
        EnvironmentConfig.model_validate(DEV.model_dump() | {"key_administrators": (administrator,)})


def test_a_key_administrator_written_without_its_path_is_denied_at_any_path():
    from lambdas.domain.merchants import any_path

    assert any_path("arn:aws:iam::111122223333:role/Admin") == (
        "arn:aws:iam::111122223333:role/Admin",
        "arn:aws:iam::111122223333:role/*/Admin",
    )
    assert any_path("arn:aws:iam::111122223333:role/teams/Admin") == ("arn:aws:iam::111122223333:role/teams/Admin",)
    assert any_path("arn:aws-cn:iam::111122223333:user/ops/*") == ("arn:aws-cn:iam::111122223333:user/ops/*",)
