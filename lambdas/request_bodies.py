"""The request bodies' validators, compiled from the pydantic models (lambdas/models.py) by
`make openapi` (tools/request_bodies.py); do not edit. Each body's class has the model's name and members, and its
core schema is the model's, so pydantic_core alone refuses what the model refuses, with the same errors, without
loading pydantic's model machinery into a function's cold start."""

from typing import Any, TypeVar

from pydantic_core import CoreConfig, SchemaValidator

from lambdas.body_checks import one_of_token_or_card


class TokenCard:
    """The body of ``TokenCard`` (lambdas/models.py)."""

    number: str
    exp_month: int
    exp_year: int
    holder_name: str | None
    cvc: str | None


class TokenRequest:
    """The body of ``TokenRequest`` (lambdas/models.py)."""

    card: TokenCard


class PaymentCard:
    """The body of ``PaymentCard`` (lambdas/models.py)."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str


class Source:
    """The body of ``Source`` (lambdas/models.py)."""

    token: str | None
    card: PaymentCard | None


class PaymentRequest:
    """The body of ``PaymentRequest`` (lambdas/models.py)."""

    amount: int
    currency: str
    source: Source
    description: str | None
    metadata: dict[str, str] | None
    capture: bool


class RefundRequest:
    """The body of ``RefundRequest`` (lambdas/models.py)."""

    amount: int | None


class CaptureRequest:
    """The body of ``CaptureRequest`` (lambdas/models.py)."""

    amount: int | None


class CancelRequest:
    """The body of ``CancelRequest`` (lambdas/models.py)."""


class WebhookEndpointRequest:
    """The body of ``WebhookEndpointRequest`` (lambdas/models.py)."""

    url: str
    events: list[str]


class RedeliverRequest:
    """The body of ``RedeliverRequest`` (lambdas/models.py)."""


# each body's schema; those of the members it holds are inside it
SCHEMAS: dict[type[Any], Any] = {
    TokenRequest: {
        "type": "model",
        "cls": TokenRequest,
        "schema": {
            "type": "model-fields",
            "fields": {
                "card": {
                    "type": "model-field",
                    "schema": {
                        "type": "model",
                        "cls": TokenCard,
                        "schema": {
                            "type": "model-fields",
                            "fields": {
                                "number": {"type": "model-field", "schema": {"type": "str", "max_length": 32}},
                                "exp_month": {"type": "model-field", "schema": {"type": "int"}},
                                "exp_year": {"type": "model-field", "schema": {"type": "int"}},
                                "holder_name": {
                                    "type": "model-field",
                                    "schema": {
                                        "type": "default",
                                        "schema": {"type": "nullable", "schema": {"type": "str", "max_length": 200}},
                                        "default": None,
                                    },
                                },
                                "cvc": {
                                    "type": "model-field",
                                    "schema": {
                                        "type": "default",
                                        "schema": {"type": "nullable", "schema": {"type": "str", "max_length": 8}},
                                        "default": None,
                                    },
                                },
                            },
                            "model_name": "TokenCard",
                            "computed_fields": [],
                        },
                        "custom_init": False,
                        "root_model": False,
                        "config": {
                            "extra_fields_behavior": "forbid",
                            "strict": True,
                            "hide_input_in_errors": True,
                            "title": "TokenCard",
                        },
                    },
                }
            },
            "model_name": "TokenRequest",
            "computed_fields": [],
        },
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "TokenRequest",
        },
    },
    PaymentRequest: {
        "type": "model",
        "cls": PaymentRequest,
        "schema": {
            "type": "model-fields",
            "fields": {
                "amount": {"type": "model-field", "schema": {"type": "int"}},
                "currency": {"type": "model-field", "schema": {"type": "str", "min_length": 3, "max_length": 3}},
                "source": {
                    "type": "model-field",
                    "schema": {
                        "type": "function-after",
                        "function": {"type": "no-info", "function": one_of_token_or_card},
                        "schema": {
                            "type": "model",
                            "cls": Source,
                            "schema": {
                                "type": "model-fields",
                                "fields": {
                                    "token": {
                                        "type": "model-field",
                                        "schema": {
                                            "type": "default",
                                            "schema": {
                                                "type": "nullable",
                                                "schema": {"type": "str", "min_length": 1, "max_length": 64},
                                            },
                                            "default": None,
                                        },
                                    },
                                    "card": {
                                        "type": "model-field",
                                        "schema": {
                                            "type": "default",
                                            "schema": {
                                                "type": "nullable",
                                                "schema": {
                                                    "type": "model",
                                                    "cls": PaymentCard,
                                                    "schema": {
                                                        "type": "model-fields",
                                                        "fields": {
                                                            "number": {
                                                                "type": "model-field",
                                                                "schema": {"type": "str", "max_length": 32},
                                                            },
                                                            "exp_month": {
                                                                "type": "model-field",
                                                                "schema": {"type": "int"},
                                                            },
                                                            "exp_year": {
                                                                "type": "model-field",
                                                                "schema": {"type": "int"},
                                                            },
                                                            "cvc": {
                                                                "type": "model-field",
                                                                "schema": {"type": "str", "max_length": 8},
                                                            },
                                                        },
                                                        "model_name": "PaymentCard",
                                                        "computed_fields": [],
                                                    },
                                                    "custom_init": False,
                                                    "root_model": False,
                                                    "config": {
                                                        "extra_fields_behavior": "forbid",
                                                        "strict": True,
                                                        "hide_input_in_errors": True,
                                                        "title": "PaymentCard",
                                                    },
                                                },
                                            },
                                            "default": None,
                                        },
                                    },
                                },
                                "model_name": "Source",
                                "computed_fields": [],
                            },
                            "custom_init": False,
                            "root_model": False,
                            "config": {
                                "extra_fields_behavior": "forbid",
                                "strict": True,
                                "hide_input_in_errors": True,
                                "title": "Source",
                            },
                        },
                    },
                },
                "description": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {"type": "nullable", "schema": {"type": "str", "max_length": 500}},
                        "default": None,
                    },
                },
                "metadata": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {
                            "type": "nullable",
                            "schema": {
                                "type": "dict",
                                "keys_schema": {"type": "str", "min_length": 1, "max_length": 40},
                                "values_schema": {"type": "str", "max_length": 500},
                                "max_length": 20,
                            },
                        },
                        "default": None,
                    },
                },
                "capture": {
                    "type": "model-field",
                    "schema": {"type": "default", "schema": {"type": "bool"}, "default": True},
                },
            },
            "model_name": "PaymentRequest",
            "computed_fields": [],
        },
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "PaymentRequest",
        },
    },
    RefundRequest: {
        "type": "model",
        "cls": RefundRequest,
        "schema": {
            "type": "model-fields",
            "fields": {
                "amount": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {"type": "nullable", "schema": {"type": "int"}},
                        "default": None,
                    },
                }
            },
            "model_name": "RefundRequest",
            "computed_fields": [],
        },
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "RefundRequest",
        },
    },
    CaptureRequest: {
        "type": "model",
        "cls": CaptureRequest,
        "schema": {
            "type": "model-fields",
            "fields": {
                "amount": {
                    "type": "model-field",
                    "schema": {
                        "type": "default",
                        "schema": {"type": "nullable", "schema": {"type": "int"}},
                        "default": None,
                    },
                }
            },
            "model_name": "CaptureRequest",
            "computed_fields": [],
        },
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "CaptureRequest",
        },
    },
    CancelRequest: {
        "type": "model",
        "cls": CancelRequest,
        "schema": {"type": "model-fields", "fields": {}, "model_name": "CancelRequest", "computed_fields": []},
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "CancelRequest",
        },
    },
    WebhookEndpointRequest: {
        "type": "model",
        "cls": WebhookEndpointRequest,
        "schema": {
            "type": "model-fields",
            "fields": {
                "url": {"type": "model-field", "schema": {"type": "str", "min_length": 1, "max_length": 2048}},
                "events": {
                    "type": "model-field",
                    "schema": {
                        "type": "list",
                        "items_schema": {"type": "str", "max_length": 64},
                        "min_length": 1,
                        "max_length": 32,
                    },
                },
            },
            "model_name": "WebhookEndpointRequest",
            "computed_fields": [],
        },
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "WebhookEndpointRequest",
        },
    },
    RedeliverRequest: {
        "type": "model",
        "cls": RedeliverRequest,
        "schema": {"type": "model-fields", "fields": {}, "model_name": "RedeliverRequest", "computed_fields": []},
        "custom_init": False,
        "root_model": False,
        "config": {
            "extra_fields_behavior": "forbid",
            "strict": True,
            "hide_input_in_errors": True,
            "title": "RedeliverRequest",
        },
    },
}


Body = TypeVar("Body")
_VALIDATORS: dict[type[Any], SchemaValidator] = {}  # each body's, built when first used
# As the models' own config says: an error's text never carries what was sent (a card number, a CVC). pydantic_core
# reads it only from the validator's own config, not from the schema's.
HIDE_INPUT: CoreConfig = {"hide_input_in_errors": True}


def validate(body: type[Body], value: object) -> Body:
    """``value`` as ``body``; pydantic_core's ``ValidationError`` (pydantic's own) when it is refused."""
    validator = _VALIDATORS.get(body)
    if validator is None:
        validator = _VALIDATORS[body] = SchemaValidator(SCHEMAS[body], HIDE_INPUT)
    validated: Body = validator.validate_python(value)
    return validated
