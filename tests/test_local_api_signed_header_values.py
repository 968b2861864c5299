"""The local API hands the functions only header values its signature check covered: a signed request replayed with
a second ``Idempotency-Key`` appended is refused, or the function sees the signed key, never the appended one (a
fresh key would be a second charge of the same signed payment). API Gateway signs every value of a repeated header
(SigV4 joins them with commas), so there the repeat alone breaks the signature."""

import http.client
import threading

import requests
from botocore.credentials import Credentials

from client.signing import SigV4
from tools import local_api
from tools.sigv4 import IssuedCredential

KEY = IssuedCredential("AKIALOCALTEST000002", "local-secret", "arn:aws:iam::123456789012:user/acme", "123456789012")


def test_the_function_sees_only_signed_header_values(monkeypatch):
    seen: list[dict] = []

    def handler(event, context):
        seen.append(event)
        return {"statusCode": 201, "headers": {}, "body": "{}"}

    monkeypatch.setattr(local_api, "handler_for", lambda route: handler)
    api = local_api.LocalApi(0, None, 7, {KEY.access_key_id: KEY}, "us-east-1")
    threading.Thread(target=api.serve_forever, daemon=True).start()
    host = f"{local_api.HOST}:{api.server_port}"
    body = b'{"amount":1999,"currency":"usd","source":{"token":"tok_1"}}'
    request = requests.Request(
        "POST",
        f"http://{host}/payments",
        data=body,
        headers={"Idempotency-Key": "order-1", "Content-Type": "application/json"},
    ).prepare()
    SigV4(Credentials(KEY.access_key_id, KEY.secret_access_key), "us-east-1")(request)
    try:
        connection = http.client.HTTPConnection(local_api.HOST, api.server_port, timeout=5)
        connection.putrequest("POST", "/payments", skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.putheader("Idempotency-Key", "replayed-with-a-new-key")  # not signed
        connection.endheaders(body)
        status = connection.getresponse().status
    finally:
        api.shutdown()
        api.server_close()
    if status == 403 and not seen:
        return  # refused: the repeat is not accepted (what API Gateway would do)
    keys = [v for k, v in seen[0]["headers"].items() if k.lower() == "idempotency-key"]
    assert keys == ["order-1"], f"signed 'order-1', the function was given {keys}"
