"""The tagging aspect on a small stack of its own: layering and who wins."""

import json

import cdktf


def _synth_with(resource_tags):
    from cdktf import Aspects, TerraformStack
    from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
    from cdktf_cdktf_provider_aws.provider import AwsProvider

    from stacks.tagging import TaggingAspect

    app = cdktf.Testing.app()
    stack = TerraformStack(app, "tagging")
    AwsProvider(stack, "aws", region="us-east-1")
    CloudwatchLogGroup(stack, "group", name="g", tags=resource_tags)
    IamRolePolicy(stack, "policy", role="r", policy="{}")
    Aspects.of(stack).add(TaggingAspect({"service": "app", "environment": "default"}, {"environment": "dev"}))
    return json.loads(cdktf.Testing.synth(stack))["resource"]


def test_stack_tags_override_app_defaults():
    resources = _synth_with(None)
    assert resources["aws_cloudwatch_log_group"]["group"]["tags"] == {"service": "app", "environment": "dev"}


def test_a_resources_own_tags_win():
    resources = _synth_with({"environment": "sandbox", "owner": "team-a"})
    tags = resources["aws_cloudwatch_log_group"]["group"]["tags"]
    assert tags == {"service": "app", "environment": "sandbox", "owner": "team-a"}


def test_resources_without_tags_are_untouched():
    resources = _synth_with(None)
    assert "tags" not in resources["aws_iam_role_policy"]["policy"]
