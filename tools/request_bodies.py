"""`python -m tools.request_bodies` (run by `make openapi`): writes lambdas/request_bodies.py, the request
bodies' validators compiled from the pydantic models (lambdas/models.py): each model's core schema, which
pydantic_core validates on its own, and a plain class of the same name and members that it fills in. The
functions import pydantic_core only, not pydantic's model machinery, and refuse what the models refuse with the
same errors (tests/test_request_bodies.py, which also fails when the checked-in file is stale)."""

import inspect
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from lambdas import models

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "lambdas" / "request_bodies.py"
DROPPED_KEYS = {"metadata", "ref"}  # a node's JSON schema hints, and its per-process id (nothing refers to it)
HEADER = '''"""The request bodies' validators, compiled from the pydantic models (lambdas/models.py) by
`make openapi` (tools/request_bodies.py); do not edit. Each body's class has the model's name and members, and its
core schema is the model's, so pydantic_core alone refuses what the model refuses, with the same errors, without
loading pydantic's model machinery into a function's cold start."""

from typing import Any, TypeVar

from pydantic_core import CoreConfig, SchemaValidator
'''
FOOTER = '''
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
'''


def request_models() -> list[type[BaseModel]]:
    """The models of lambdas/models.py, in the order they are defined (each after those it holds)."""
    return [
        value
        for name, value in vars(models).items()
        if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__ == models.__name__
        and not name.startswith("_")
    ]  # fmt: skip


def annotation(hint: Any) -> str:
    """``hint`` as Python source, without its constraints (the schema holds them)."""
    origin = get_origin(hint)
    if origin is Annotated:
        return annotation(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return " | ".join(annotation(arg) for arg in get_args(hint))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(annotation(arg) for arg in get_args(hint))}]"
    return "None" if hint is type(None) else str(hint.__name__)


def body_class(model: type[BaseModel]) -> str:
    members = [f"    {name}: {annotation(field.annotation)}" for name, field in model.model_fields.items()]
    doc = f'    """The body of ``{model.__name__}`` (lambdas/models.py)."""'
    return "\n".join([f"class {model.__name__}:", doc, *members])


def literal(value: Any, functions: dict[str, Callable[..., Any]]) -> str:
    """``value`` (a core schema, or a part of one) as Python source: classes by the body class's name, functions
    by their name, imported from their module."""
    if isinstance(value, dict):
        node = isinstance(value.get("type"), str)  # a schema's node, not a map of members by name
        kept = {key: item for key, item in value.items() if not (node and key in DROPPED_KEYS)}
        members = (f"{literal(key, functions)}: {literal(item, functions)}" for key, item in kept.items())
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item, functions) for item in value) + "]"
    if inspect.isclass(value):
        return value.__name__
    if inspect.isfunction(value):
        if "." in value.__qualname__:
            raise ValueError(f"{value.__qualname__}: a body's check must be a module's function (lambdas.body_checks)")
        functions[value.__name__] = value
        return value.__name__
    if value is None or isinstance(value, str | int | float | bool):
        return repr(value)
    raise ValueError(f"{value!r}: not a core schema's part that compiles")


def classes_in(schema: Any) -> set[type]:
    """The models a core schema validates, itself and those it holds."""
    if isinstance(schema, dict):
        found = {schema["cls"]} if schema.get("type") == "model" else set()
        return found.union(*(classes_in(item) for item in schema.values()))
    if isinstance(schema, list | tuple):
        return set().union(*(classes_in(item) for item in schema))
    return set()


def render() -> str:
    functions: dict[str, Callable[..., Any]] = {}
    bodies = request_models()
    held = {part for model in bodies for part in classes_in(model.__pydantic_core_schema__) if part is not model}
    schemas = [
        f"    {model.__name__}: {literal(model.__pydantic_core_schema__, functions)},"
        for model in bodies
        if model not in held
    ]
    imports = [f"from {function.__module__} import {name}" for name, function in sorted(functions.items())]
    classes = "\n\n\n".join(body_class(model) for model in bodies)
    schemas_source = ["# each body's schema; those of the members it holds are inside it",
                      "SCHEMAS: dict[type[Any], Any] = {", *schemas, "}"]  # fmt: skip
    source = "\n".join([HEADER, *imports, "", "", classes, "", "", *schemas_source, "", FOOTER])
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(OUTPUT), "-"],
        input=source, capture_output=True, text=True, check=True, cwd=REPO
    )  # fmt: skip
    return formatted.stdout


def main() -> None:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
