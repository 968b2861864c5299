"""Domain errors; the edge maps each to the contract's error object."""


class PaymentError(Exception):
    """Base of every error a client can be told about."""


class InvalidRequest(PaymentError):
    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFound(PaymentError):
    def __init__(self, message: str, code: str = "resource_missing") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class GatewayFailed(PaymentError):
    """The gateway failed or its answer is unknown: the payment (or refund) stays pending."""

    def __init__(self, payment_id: str, timed_out: bool, refund_id: str | None = None) -> None:
        super().__init__("The payment gateway did not answer." if timed_out else "The payment gateway failed.")
        self.message = str(self)
        self.payment_id = payment_id
        self.refund_id = refund_id
        self.timed_out = timed_out


class IdempotencyConflict(PaymentError):
    """409 while the first request with the key runs; 422 when the body differs."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
