"""Attack (a fresh AWS account): the contract's 403s for unsigned, badly signed and refused requests are gateway
responses (``stacks/payment_api.py`` GATEWAY_RESPONSES). A REST API serves what its stage's deployment captured;
a gateway response created or changed after that deployment is not served until the API is deployed again (as for
the resource policy, which this change did add to ``triggers``; see aws/aws-cdk#10963: "any GatewayResponse added
doesn't come into effect because it doesn't trigger a new deployment").

The deployment neither depends on the gateway responses (on a first apply Terraform may deploy before they exist)
nor names them in ``triggers`` (a later change to one is saved, never served): the 403s then come out in API
Gateway's own shape (``{"message": ...}``), not the contract's ``permission_error``."""


def test_the_deployment_follows_every_gateway_response(dev):
    (deployment,) = dev.resources("aws_api_gateway_deployment").values()
    responses = dev.resources("aws_api_gateway_gateway_response")
    assert responses
    depends_on = set(deployment.get("depends_on", ()))
    missing = sorted(n for n in responses if f"aws_api_gateway_gateway_response.{n}" not in depends_on)
    assert not missing, f"deployed without waiting for {missing}"
    assert any("response" in name for name in deployment["triggers"]), (
        f"triggers {sorted(deployment['triggers'])}: a changed gateway response is never deployed"
    )
