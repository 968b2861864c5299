"""SnapStart, a per-environment option (docs/adr/0008-snapstart.md): off, the functions run at $LATEST; on, the
functions that serve requests publish versions that Lambda snapshots, API Gateway invokes them through the alias
``live`` and may invoke nothing else, and the scheduled functions stay as they are. The Lambda code keeps nothing
in a snapshot that two environments resumed from it must not share."""

import json
import os
import random
import subprocess
import sys

import pytest

from lambdas import bootstrap
from lambdas.routes import ROUTES, Function
from stacks.config import EMULATOR_ACCOUNT, SNAP_START_UNAVAILABLE_REGIONS, EnvironmentConfig, load_environment
from stacks.payment_function import LIVE_ALIAS
from stacks.service_functions import SCHEDULES, SERVING
from tests.conftest import ENVIRONMENTS, REPO, example_operator_settings
from tests.support.access_model import References, StackModel, service_principal
from tests.support.iam_eval import Decision, Request

SERVED = sorted(SERVING)
APIGATEWAY, EVENTS = service_principal("apigateway"), service_principal("events")


@pytest.fixture
def snap(synthesized):
    return synthesized["snap"]


def _function_of(stack, reference: str) -> Function:
    """The function a ``${aws_lambda_function.X.attribute}`` reference names."""
    name = reference.removeprefix("${aws_lambda_function.").split(".", 1)[0]
    handler = stack.resources("aws_lambda_function")[name]["handler"]
    return next(f for f in Function if f.handler == handler)


def _alias_of(stack, function: Function) -> tuple[str, dict]:
    (found,) = [
        (n, a)
        for n, a in stack.resources("aws_lambda_alias").items()
        if _function_of(stack, a["function_name"]) is function
    ]
    return found


# --- the option ------------------------------------------------------------------------------------------------------


def test_snap_start_is_off_unless_an_operator_turns_it_on():
    assert not any(config.snap_start for config in ENVIRONMENTS.values())
    settings = example_operator_settings()
    settings["prod"]["snap_start"] = True
    assert load_environment("prod", settings).snap_start


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_snap_start_takes_a_boolean_only(value):
    settings = example_operator_settings()
    settings["prod"]["snap_start"] = value
    with pytest.raises(ValueError, match="snap_start"):
        load_environment("prod", settings)


@pytest.mark.parametrize("region", SNAP_START_UNAVAILABLE_REGIONS)
def test_snap_start_is_refused_where_lambda_has_none(region):
    dev = ENVIRONMENTS["dev"].model_dump()
    with pytest.raises(ValueError, match=f"no SnapStart in {region}"):
        EnvironmentConfig.model_validate(dev | {"snap_start": True, "region": region})
    assert not EnvironmentConfig.model_validate(dev | {"region": region}).snap_start


def test_no_function_that_serves_a_route_runs_on_a_schedule():
    assert not SERVING & set(SCHEDULES)


# --- the synthesized stacks ------------------------------------------------------------------------------------------


def test_the_default_stacks_publish_no_version_and_have_no_alias(stack):
    for body in stack.resources("aws_lambda_function").values():
        assert "snap_start" not in body and "publish" not in body
    assert stack.resources("aws_lambda_alias") == {}
    assert not any("qualifier" in p for p in stack.resources("aws_lambda_permission").values())
    assert "function_aliases" not in stack.config.get("output", {})


def test_the_serving_functions_publish_snapshotted_versions_and_the_scheduled_ones_do_not(snap):
    for body in snap.resources("aws_lambda_function").values():
        function = next(f for f in Function if f.handler == body["handler"])
        if function in SERVING:
            assert body["snap_start"] == {"apply_on": "PublishedVersions"}, function
            assert body["publish"] is True, function
            assert body["runtime"] == "python3.13"
        else:
            assert "snap_start" not in body and "publish" not in body, function


@pytest.mark.parametrize("function", SERVED)
def test_each_serving_function_has_the_live_alias_on_its_published_version(snap, function):
    name, alias = _alias_of(snap, function)
    assert alias["name"] == LIVE_ALIAS
    assert alias["function_version"] == alias["function_name"].replace(".function_name}", ".version}")
    assert snap.config["output"]["function_aliases"]["value"][function.value] == f"${{aws_lambda_alias.{name}.arn}}"
    assert len(snap.resources("aws_lambda_alias")) == len(SERVING)


def test_api_gateway_invokes_each_route_through_its_function_alias(snap):
    integrations = snap.resources("aws_api_gateway_integration").values()
    assert len(integrations) == len(ROUTES)
    for integration in integrations:
        assert integration["uri"].startswith("${aws_lambda_alias.") and integration["uri"].endswith(".invoke_arn}")
    permissions = [p for p in snap.resources("aws_lambda_permission").values() if "apigateway" in p["principal"]]
    assert len(permissions) == len(ROUTES)
    for permission in permissions:
        name, _ = _alias_of(snap, _function_of(snap, permission["function_name"]))
        assert permission["qualifier"] == f"${{aws_lambda_alias.{name}.name}}"


def test_the_schedules_invoke_their_functions_as_before(snap):
    targets = [t["arn"] for t in snap.resources("aws_cloudwatch_event_target").values()]
    functions = [_function_of(snap, arn) for arn in targets if arn.startswith("${aws_lambda_function.")]
    assert sorted(functions) == sorted(SCHEDULES)
    assert all(arn.endswith(".arn}") for arn in targets if arn.startswith("${aws_lambda_function."))
    assert not any(arn.startswith("${aws_lambda_alias.") for arn in targets)
    schedule_permissions = [p for p in snap.resources("aws_lambda_permission").values() if "events" in p["principal"]]
    assert len(schedule_permissions) == len(SCHEDULES)
    assert not any("qualifier" in p for p in schedule_permissions)


# --- the access model ------------------------------------------------------------------------------------------------


def _invocation(principal: str, function_arn: str, source: str) -> Request:
    return Request(
        principal, "lambda:InvokeFunction", function_arn, {"aws:SourceArn": source}, principal_type="Service"
    )


def test_api_gateway_may_invoke_the_alias_and_not_the_latest_version(snap):
    model = StackModel.read(snap, References(snap))
    (api,) = [arn for arn in model.resource_policies if ":execute-api:" in arn]
    for route in ROUTES:
        function = model.functions[route.function]
        assert function.invoked_arn == f"{function.arn}:{LIVE_ALIAS}"
        source = f"{api}/v1/{route.method}/" + "/".join("x" if p.startswith("{") else p for p in route.path_parts)
        assert model.decide(_invocation(APIGATEWAY, function.invoked_arn, source)) is Decision.ALLOWED, route
        assert model.decide(_invocation(APIGATEWAY, function.arn, source)) is not Decision.ALLOWED, route


def test_the_schedules_may_invoke_the_scheduled_functions(snap):
    model = StackModel.read(snap, References(snap))
    for function in SCHEDULES:
        invoked = model.functions[function].invoked_arn
        assert invoked == model.functions[function].arn
        rule_name = f"{snap.environment.function_name(function.value)}-schedule"
        rule = f"arn:aws:events:{snap.environment.region}:{EMULATOR_ACCOUNT}:rule/{rule_name}"
        assert model.decide(_invocation(EVENTS, invoked, rule)) is Decision.ALLOWED, function


def test_without_snap_start_callers_invoke_the_function_itself(dev):
    model = StackModel.read(dev, References(dev))
    assert all(f.invoked_arn == f.arn for f in model.functions.values())


# --- nothing shared in a snapshot ------------------------------------------------------------------------------------


def test_a_restored_environment_seeds_random_again_and_builds_its_adapters_afresh(monkeypatch):
    monkeypatch.setattr(bootstrap, "AwsAdapters", lambda variables: object())
    bootstrap.adapters.cache_clear()
    before = bootstrap.adapters()
    state = random.getstate()
    try:
        bootstrap.start_afresh_after_restore()
        assert random.getstate() != state
        assert bootstrap.adapters() is not before
    finally:
        bootstrap.adapters.cache_clear()


RUNTIME_HOOKS = """
hooks = []
def register_after_restore(function, *args, **kwargs):
    hooks.append(function)
def register_before_snapshot(function, *args, **kwargs):
    pass
"""


HOOKS_AFTER_IMPORT = """
import importlib, sys
import snapshot_restore_py
importlib.import_module(sys.argv[1])
print(*(f"{hook.__module__}.{hook.__qualname__}" for hook in snapshot_restore_py.hooks))
"""


def test_every_serving_handler_registers_the_restore_hook_during_init(tmp_path):
    """As in Lambda's Python runtime, which provides snapshot_restore_py: importing the handler's module alone (the
    init, before the snapshot) registers the hook."""
    (tmp_path / "snapshot_restore_py.py").write_text(RUNTIME_HOOKS)
    env = os.environ | {"PYTHONPATH": f"{tmp_path}:{REPO}"}
    imports = {
        function: subprocess.Popen(
            [sys.executable, "-c", HOOKS_AFTER_IMPORT, f"lambdas.handlers.{function.value}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for function in SERVED
    }
    for function, process in imports.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.split() == ["lambdas.bootstrap.start_afresh_after_restore"], function


def test_a_scheduled_function_with_snap_start_is_run_through_its_alias(tmp_path):
    """The construct on its own: whatever invokes a function that publishes versions invokes its alias."""
    from cdktf import AssetType, TerraformAsset, TerraformStack, Testing

    from stacks.config import FunctionSettings
    from stacks.payment_function import PaymentFunction, PaymentFunctionProps
    from stacks.payment_key import PaymentKey, PaymentKeyProps

    stack = TerraformStack(Testing.app(), "function")
    key = PaymentKey(stack, "operations", PaymentKeyProps("alias/o", "o", EMULATOR_ACCOUNT))
    (tmp_path / "code.zip").write_bytes(b"")
    code = TerraformAsset(stack, "code", path=str(tmp_path / "code.zip"), type=AssetType.FILE)
    props = PaymentFunctionProps(
        "f", "f-role", "h.handler", code, FunctionSettings(), EMULATOR_ACCOUNT, key, 365, {}, "sqs", "arn:sqs:",
        schedule="rate(1 hour)", snap_start=True,
    )  # fmt: skip
    PaymentFunction(stack, "scheduled", props)
    synthesized = json.loads(Testing.synth(stack))["resource"]
    ((alias, _),) = synthesized["aws_lambda_alias"].items()
    ((target,),) = [synthesized["aws_cloudwatch_event_target"].values()]
    assert target["arn"] == f"${{aws_lambda_alias.{alias}.arn}}"
    ((permission,),) = [synthesized["aws_lambda_permission"].values()]
    assert permission["qualifier"] == f"${{aws_lambda_alias.{alias}.name}}"
