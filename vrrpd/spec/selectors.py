"""Kubernetes label selectors over Node labels, and what they match."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from vrrpd.spec.errors import ConfigError, Problem, error, fail, format_errors, show, type_name
from vrrpd.spec.fields import (
    LABEL_KEY,
    LABEL_VALUE,
    SpecModel,
    as_string,
    enum_value,
    label_key_problem,
    label_value_problem,
)
from vrrpd.spec.openapi import Crd, Rule


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(SpecModel):
    """One Kubernetes matchExpressions entry."""

    crd = Crd(
        description="A requirement: key, an operator, and values (In and NotIn need values; "
        "Exists and DoesNotExist take none).",
        rules=[
            Rule(
                "!has(self.operator) || !(self.operator in ['In', 'NotIn']) || "
                "(has(self.values) && size(self.values) > 0)",
                "operators In and NotIn need at least one value",
            ),
            Rule(
                "!has(self.operator) || !(self.operator in ['Exists', 'DoesNotExist']) || "
                "!has(self.values) || size(self.values) == 0",
                "operators Exists and DoesNotExist take no values; remove them",
            ),
        ],
    )

    key: Annotated[str, BeforeValidator(lambda v: as_string(v, '"role"')), LABEL_KEY] = Field(
        description="The label key, e.g. topology.kubernetes.io/zone."
    )
    operator: Annotated[
        SelectorOperator, BeforeValidator(enum_value(SelectorOperator, "a selector operator"))
    ] = Field(
        description="In (the value is one of values), NotIn (absent, or not one of values), "
        "Exists (the key is present) or DoesNotExist."
    )
    values: Annotated[tuple[Annotated[str, LABEL_VALUE], ...], Crd(maxItems=64)] = Field(
        default=(), description="The values for In and NotIn."
    )

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, key: str) -> str:
        if (problem := label_key_problem(key)) is not None:
            raise fail(problem)
        return key

    @field_validator("values", mode="before")
    @classmethod
    def _values_are_strings(cls, values: Any) -> Any:
        if not isinstance(values, list | tuple):
            raise fail(f"{show(values)} is {type_name(values)}; write a list such as [edge]")
        problems: list[Problem] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                problems.append(
                    (f"[{i}]", f'{show(value)} is {type_name(value)}; quote it: "{value}"')
                )
            elif (problem := label_value_problem(value)) is not None:
                problems.append((f"[{i}]", problem))
        if problems:
            raise error(problems)
        return tuple(values)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        if self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not self.values:
            raise fail(f"operator {self.operator.value} needs at least one value", ".values")
        if self.operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and (
            self.values
        ):
            raise fail(f"operator {self.operator.value} takes no values; remove them", ".values")
        return self


class LabelSelector(SpecModel):
    """A Kubernetes label selector: all of matchLabels and matchExpressions must hold."""

    example = "{matchLabels: {role: edge}}"
    crd = Crd(x_kubernetes_map_type="atomic")

    match_labels: Annotated[dict[str, Annotated[str, LABEL_VALUE]], Crd(maxProperties=64)] = Field(
        default_factory=dict,
        description="Labels the Node must have, with these values ({key: value}); keys as in "
        "Kubernetes, e.g. node-role.kubernetes.io/edge.",
    )
    match_expressions: Annotated[tuple[LabelSelectorRequirement, ...], Crd(maxItems=16)] = Field(
        default=(), description="Requirements on Node labels; all must hold."
    )

    @field_validator("match_labels", mode="before")
    @classmethod
    def _labels_syntax(cls, labels: Any) -> Any:
        if not isinstance(labels, Mapping):
            raise fail(
                f"{show(labels)} is {type_name(labels)}; write a mapping such as {{role: edge}}"
            )
        problems: list[Problem] = []
        for key, value in labels.items():
            sub = f"[{key}]" if isinstance(key, str) and not key.isidentifier() else f".{key}"
            if not isinstance(key, str):
                problems.append((sub, f"label key {show(key)} must be a string"))
                continue
            if (problem := label_key_problem(key)) is not None:
                problems.append((sub, problem))
            if not isinstance(value, str):
                problems.append(
                    (sub, f'{show(value)} is {type_name(value)}; quote it: "{show(value)}"')
                )
            elif (problem := label_value_problem(value)) is not None:
                problems.append((sub, problem))
        if problems:
            raise error(problems)
        return dict(labels)


def match_labels(selector: LabelSelector | Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression holds.

    An empty selector matches every label set. NotIn and DoesNotExist hold when the key is
    absent. `selector` may be a LabelSelector or its manifest form ({matchLabels: ...});
    an invalid manifest form raises ConfigError.
    """
    if not isinstance(selector, LabelSelector):
        try:
            selector = LabelSelector.model_validate(selector)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc, LabelSelector)) from None
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        match req.operator:
            case SelectorOperator.IN:
                ok = present and labels[req.key] in req.values
            case SelectorOperator.NOT_IN:
                ok = not present or labels[req.key] not in req.values
            case SelectorOperator.EXISTS:
                ok = present
            case SelectorOperator.DOES_NOT_EXIST:
                ok = not present
        if not ok:
            return False
    return True
