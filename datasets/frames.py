"""pandas DataFrames in and out of the table machinery of `datasets.tabular`.

A DataFrame given to `Synthesizer.fit` is written once into the run's folder as a CSV file with a
schema that takes each column's kind from its dtype (so `csv:<that file>` is the run's dataset,
which every command can read again), and its dtypes are recorded so that sampled rows come back
as a DataFrame with the same columns and dtypes.

Kinds from dtypes: booleans -> `boolean`; integers (also pandas' nullable `Int64`) -> `integer`;
floats -> `continuous`; naive datetimes (`datetime64`) -> `datetime`; strings, objects and
categories -> `categorical`. Time-zone aware datetimes are refused: convert them to naive ones
(e.g. UTC) first.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from synthblend.datasets import tabular
from synthblend.zoo.registry import DataError, UsageError

DATA_FILE = "train.csv"
SCHEMA_FILE = "schema.json"


def is_frame(data) -> bool:
    """Whether `data` is a pandas DataFrame (without importing pandas when it is not loaded)."""
    pandas = _loaded_pandas()
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _loaded_pandas():
    import sys

    return sys.modules.get("pandas")


def kind_of(name: str, dtype) -> str:
    """The table kind of a column of dtype `dtype`; UsageError for one a table cannot hold."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise UsageError(f"column {name!r} has dtype {dtype}, aware of a time zone; accepted: naive datetime64 "
                         f"columns (convert it, e.g. frame[{name!r}].dt.tz_convert('UTC').dt.tz_localize(None))")
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "continuous"
    if (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)):
        return "categorical"
    raise UsageError(f"column {name!r} has dtype {dtype}; accepted: numbers, booleans, naive datetimes, strings "
                     "and categories")


def write(frame, folder: str, label: str | None, check=None, schema: dict | None = None) -> tuple[str, str, dict]:
    """Writes `frame` as `<folder>/train.csv` with its schema; returns the two paths and the
    dtypes to restore (column name -> dtype name). `check(digest)` sees the SHA-256 of the CSV
    text before it replaces what the folder held, and may refuse it by raising. `schema` (a
    schema's JSON, see `datasets.tabular`) declares columns beyond what their dtypes say, such as
    the domains a differentially private run needs, and the missing-value policy."""
    if len(frame) == 0:
        raise DataError("the DataFrame has no rows")
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise DataError("the DataFrame has two columns of the same name; names must be unique")
    if label is not None and label not in names:
        raise UsageError(f"label={label!r} is not a column of the DataFrame; its columns: {', '.join(names)}")
    kinds = {str(name): kind_of(str(name), dtype) for name, dtype in frame.dtypes.items()}
    # Booleans are written as pandas writes them, whatever the rows hold.
    kinds = {name: {"kind": "boolean", "tokens": ["False", "True"]} if kind == "boolean" else kind
             for name, kind in kinds.items()}
    for name, declared in (schema or {}).get("columns", {}).items():
        if name not in kinds:
            raise UsageError(f"schema= declares column {name!r}, which the DataFrame does not have; its columns: "
                             f"{', '.join(names)}")
        kinds[name] = declared
    os.makedirs(folder, exist_ok=True)
    data_path, schema_path = os.path.join(folder, DATA_FILE), os.path.join(folder, SCHEMA_FILE)
    partial = data_path + ".partial"
    frame.to_csv(partial, index=False)
    try:
        if check is not None:
            digest = hashlib.sha256()
            with open(partial, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            check(digest.hexdigest())
        written = {"columns": kinds, "label": label}
        if (schema or {}).get("missing") is not None:
            written["missing"] = schema["missing"]
        with open(schema_path, "w") as file:
            json.dump(written, file, indent=2)
        os.replace(partial, data_path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return data_path, schema_path, {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


def to_frame(table: dict, encoder: dict, dtypes: dict | None = None):
    """A decoded table (`tabular.decode(..., with_missing=True)`) as a DataFrame, cells decoded
    as missing set to missing (NaT in datetime columns), columns cast back to `dtypes` where given."""
    import pandas as pd

    columns = {}
    for name in [name for name in encoder["order"] if name in table]:
        values = table[name]
        mask = table.get(name + "\0missing")
        wanted = (dtypes or {}).get(name)
        if mask is not None and mask.any():
            if values.dtype.kind == "M":
                values = np.where(mask, np.datetime64("NaT"), values)
            elif values.dtype.kind in "iub":
                values = pd.array(values, dtype="Int64" if values.dtype.kind in "iu" else "boolean")
                values[mask] = pd.NA
            else:
                values = np.where(mask, None if values.dtype.kind in "US" else np.nan,
                                  values.astype(object) if values.dtype.kind in "US" else values)
        series = pd.Series(values, name=name)
        if wanted is not None:
            try:
                series = series.astype(wanted)
            except (TypeError, ValueError):
                pass  # e.g. an int64 column whose samples have missing cells keeps a nullable dtype
        columns[name] = series
    return pd.DataFrame(columns)


def encode(frame, encoder: dict, name: str = "DataFrame") -> dict[str, np.ndarray]:
    """`{"x"[, "y"]}` of `frame`'s rows encoded with a fitted encoder (a `DataSpec.table`)."""
    header = [str(column) for column in frame.columns]
    kinds = {column: "ignore" for column in header}
    for spec in tabular.column_specs(encoder).values():
        if spec["name"] not in header:
            raise DataError(f"{name} has no column {spec['name']!r}, which the model was trained on")
        kinds[spec["name"]] = spec["kind"]
    table = {str(column): frame[column].to_numpy() for column in frame.columns}
    cells = {column: _cells(table[column]) for column in header}
    label = encoder["label"]["name"] if encoder["label"] else None
    arrays, _ = tabular.table_arrays(name, header, cells, kinds, label, encoder["missing"], encoder)
    return arrays


def _cells(values: np.ndarray) -> list[str]:
    """Cell text as a CSV file would hold it: missing values (None, NaN, NA) empty."""
    import pandas as pd

    missing = pd.isna(values)
    text = tabular.cell_strings(np.asarray(values)) if values.dtype.kind in "biufM" else [str(v) for v in values]
    return ["" if gone else cell for cell, gone in zip(text, missing)]
