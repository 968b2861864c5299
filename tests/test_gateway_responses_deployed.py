"""The API's deployment follows every gateway response, so the contract's 403s for unsigned, badly signed and
refused requests (``stacks/payment_api.py`` GATEWAY_RESPONSES) are served from the first apply on.

A REST API serves what its stage's deployment captured: a gateway response created or changed after that
deployment is not served until the API is deployed again (aws/aws-cdk#10963). So the deployment depends on the
gateway responses (on a first apply Terraform would otherwise deploy before they exist) and names them in its
``triggers`` (a later change to one is deployed); else the 403s come out in API Gateway's own shape
(``{"message": ...}``), not the contract's ``permission_error``."""


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
