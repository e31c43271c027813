"""``where:`` row filters of a mix source: a small declarative language, evaluated on Arrow.

A ``where`` is a mapping from a column (a record column such as ``source``, or an attribute
column of the source's ``attributes:`` sidecar) to a condition; every condition must hold::

    where:
      source: code_help                 # equal to
      language: {in: [en, de]}          # one of
      quality: {gte: 3.5}               # comparisons: eq ne gt gte lt lte
      chars: {gte: 200, lt: 4000}       # several operators on one column: all must hold
      filter_refusal: false             # a boolean attribute
      domain: {not_in: [spam, ads]}

Nothing is evaluated as code (no ``eval``): the mapping is parsed into (column, operator, value)
triples and each runs as one Arrow compute kernel over the whole column. A null value (a row the
sidecar has no attributes for, a missing field) satisfies no condition, ``ne`` and ``not_in``
included, as in SQL, so a row is kept only when its attributes say it should be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.errors import ConfigError

COMPARISONS = {"eq": pc.equal, "ne": pc.not_equal, "gt": pc.greater, "gte": pc.greater_equal,
               "lt": pc.less, "lte": pc.less_equal}
MEMBERSHIP = ("in", "not_in")
OPERATORS = (*COMPARISONS, *MEMBERSHIP)
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    column: str
    operator: str
    value: Any


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"{where}: compare with a string, number or boolean, got {value!r}")


def normalise_where(where: Any) -> dict[str, dict[str, Any]]:
    """``where`` in its one canonical form ``{column: {operator: value}}`` (a bare value means
    ``eq``), checked; the form recorded in manifests, so equal filters compare equal."""
    if not isinstance(where, dict) or not where:
        raise ValueError("where: a mapping of column -> value or {operator: value}")
    out: dict[str, dict[str, Any]] = {}
    for column, condition in where.items():
        if not isinstance(column, str) or not column:
            raise ValueError(f"where: column names are strings, got {column!r}")
        if not isinstance(condition, dict):
            condition = {"eq": condition}
        if not condition:
            raise ValueError(f"where.{column}: give a value or {{operator: value}}")
        checked: dict[str, Any] = {}
        for operator, value in condition.items():
            if operator not in OPERATORS:
                raise ValueError(f"where.{column}: unknown operator {operator!r}; use "
                                 f"{', '.join(OPERATORS)}")
            if operator in MEMBERSHIP:
                if not isinstance(value, list) or not value:
                    raise ValueError(f"where.{column}.{operator}: a non-empty list of values")
                checked[operator] = [_scalar(v, f"where.{column}.{operator}") for v in value]
            else:
                checked[operator] = _scalar(value, f"where.{column}.{operator}")
        out[column] = checked
    return out


def conditions(where: dict[str, dict[str, Any]]) -> list[Condition]:
    return [Condition(column, op, value) for column, ops in where.items()
            for op, value in ops.items()]


def where_mask(table: pa.Table, where: dict[str, dict[str, Any]], *, what: str) -> np.ndarray:
    """bool per row of ``table``: every condition of ``where`` holds (nulls never do)."""
    mask = np.ones(table.num_rows, dtype=bool)
    for condition in conditions(where):
        if condition.column not in table.column_names:
            raise ConfigError(f"{what}: where names column {condition.column!r}, which is "
                              f"neither a record column nor an attribute (columns: "
                              f"{', '.join(sorted(table.column_names))})")
        column = table.column(condition.column)
        try:
            if condition.operator in MEMBERSHIP:
                values = pa.array(condition.value)
                if values.type != column.type and not pa.types.is_null(column.type):
                    values = values.cast(column.type)
                hit = pc.is_in(column, value_set=values)
                if condition.operator == "not_in":
                    hit = pc.invert(hit)
                hit = pc.if_else(pc.is_null(column), False, hit)
            else:
                hit = COMPARISONS[condition.operator](column, pa.scalar(condition.value))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ConfigError(
                f"{what}: where {condition.column} {condition.operator} {condition.value!r}: "
                f"cannot compare with a {column.type} column "
                f"({str(exc).splitlines()[0]})") from None
        mask &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool)
    return mask
