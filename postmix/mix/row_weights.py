"""``weight_by:`` of a mix source: one numeric column (a record column or an attribute) turned
into the log-weights ``postmix.mix.sampling.weighted_order`` ranks rows by.

A weight is the value itself (which must be >= 0) or, with ``temperature``, ``exp(value / T)``
(any sign; kept as ``value / T`` in the log domain, so no value overflows). A row without a
usable value is an error that names it, never a silent weight: which rows to drop is the spec's
decision (``where:``, whose conditions no null satisfies), not the sampler's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from postmix.errors import ConfigError
from postmix.mix.spec import WeightBySpec


def _first_id(view: pa.Table, bad: np.ndarray) -> str:
    index = int(np.flatnonzero(bad)[0])
    return f"id {view.column('id')[index].as_py()}"


def log_weights(view: pa.Table, weight_by: WeightBySpec, *, what: str
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """``(log-weight per row of view, what the manifest records of them)``."""
    name = weight_by.column
    if name not in view.column_names:
        raise ConfigError(f"{what}: weight_by names column {name!r}, which is neither a record "
                          "column nor an attribute (columns: "
                          f"{', '.join(sorted(view.column_names))})")
    column = view.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):
        raise ConfigError(f"{what}: weight_by column {name!r} holds {column.type}; it needs "
                          "numbers")
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    missing = pc.is_null(column).to_numpy(zero_copy_only=False)
    if missing.any():
        raise ConfigError(
            f"{what}: weight_by {name}: {int(missing.sum())} of {len(values)} rows have no value "
            f"(first: {_first_id(view, missing)}); leave them out with `where: {{{name}: "
            "{gte: <lowest>}}` (no null passes a where) or tag every row")
    bad = ~np.isfinite(values)
    if weight_by.temperature is None:
        bad |= values < 0
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        hint = ("" if weight_by.temperature is not None else
                "; for scores of any sign give `temperature:` (weight exp(value / temperature))")
        raise ConfigError(
            f"{what}: weight_by {name}: {int(bad.sum())} rows have no usable weight (first: "
            f"{_first_id(view, bad)}, value {values[first]!r}){hint}, or leave them out with "
            "`where:`")
    if weight_by.temperature is not None:
        logs = values / weight_by.temperature
    else:
        with np.errstate(divide="ignore"):
            logs = np.log(values)
    stats = {"column": name, "temperature": weight_by.temperature,
             "min": float(values.min()) if len(values) else None,
             "max": float(values.max()) if len(values) else None,
             "zero_weight_rows": int(np.isneginf(logs).sum())}
    return logs, stats
