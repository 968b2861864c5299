"""Currencies and amounts: integers in the currency's minor unit."""

from lambdas.domain.errors import InvalidRequest

MIN_AMOUNT = 1
MAX_AMOUNT = 99_999_999

# ISO 4217 codes the service settles, with their minor-unit exponent.
SUPPORTED_CURRENCIES = {
    "USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "NZD": 2, "SGD": 2, "HKD": 2, "MXN": 2, "BRL": 2, "PLN": 2, "INR": 2, "JPY": 0, "KRW": 0,
}  # fmt: skip


def normalize_currency(raw: str, param: str = "currency") -> str:
    """The ISO code for ``raw`` in any ASCII case; other letters never map to one (``"ınr".upper()`` is ``"INR"``)."""
    code = raw.upper() if isinstance(raw, str) and raw.isascii() else ""
    if code not in SUPPORTED_CURRENCIES:
        raise InvalidRequest(f"Unsupported currency: {raw!r:.10}.", param, "unsupported_currency")
    return code


def check_amount(amount: int, param: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest("The amount must be an integer in the currency's minor unit.", param, "invalid_amount")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidRequest(f"The amount must be between {MIN_AMOUNT} and {MAX_AMOUNT}.", param, "invalid_amount")
    return amount
