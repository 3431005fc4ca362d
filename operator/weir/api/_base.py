"""Shared configuration of every resource model.

The models become CRDs, so every field is camelCase on the wire (what an SRE
writes in YAML) and snake_case in Python; both spellings are accepted. Models
are frozen: a spec is a value, and the planner may share it freely.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class SpecError(ValueError):
    """A resource or scenario does not validate; the message names the field."""


class Resource(BaseModel):
    """Base of the resource models: camelCase aliases, frozen, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
    )


class Spec(Resource):
    """Base of what users `kubectl apply`: validated as strictly as the API server does.

    Strict (no "5" for 5, no true for 1) and finite (no NaN, no infinity), so a
    spec pydantic accepts is one the API server accepts, and the other way
    round. Arrays stay lax (`Field(strict=False)` on tuple fields): YAML and
    JSON give lists, the models hold tuples.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


_NAMED = re.compile(r"(?P<field>[a-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)*): (?P<rest>.*)", re.S)


def _problem(err: Any) -> tuple[str, str]:
    """The wire path and message of one error.

    A model's own validator cannot set a location, so its messages start with the
    field they are about ("value: must be empty ..."); that field joins the path,
    and pydantic's "Value error, " prefix goes.
    """
    path = [str(part) for part in err["loc"]]
    message = str(err["msg"])
    if err["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        named = _NAMED.fullmatch(message)
        if named:
            path.append(named["field"])
            message = named["rest"]
    return ".".join(path) or "(root)", message


def describe_validation_error(what: str, exc: ValidationError) -> str:
    """One line per problem, each naming the field by its dotted wire path."""
    lines = [f"{what} is invalid:"]
    for err in exc.errors():
        path, message = _problem(err)
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], what: str, error: type[Exception]) -> M:
    """Read a YAML file into `model`; every failure is `error` naming the file and the field.

    `what` names the kind of file for people ("engine profile", "pools file", ...).
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(describe_validation_error(f"{what} {path}", exc)) from exc
