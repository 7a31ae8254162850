"""Tables: read a CSV file, infer or take each column's kind, and encode rows as vectors a
generative model can learn, with decoders back to the table's own form (NumPy and TensorFlow).

A table in memory is a `dict[str, np.ndarray]`, column name -> 1-D array in column order:
continuous columns float64, integer columns int64, boolean columns bool, categorical columns
NumPy strings, datetime columns float64 seconds since the Unix epoch as read (`decode` gives
them as `datetime64`). Column kinds are `continuous`, `integer`, `categorical`, `boolean`,
`datetime` (and `ignore`, a column a schema leaves out of the model and of its output).

Reading (`csv:<path>`): the first row is the header; every row must have as many cells. Cells
that are empty or one of `NA`, `N/A`, `NaN`, `null`, `None`, `?` (any case) are missing. A
column's kind is inferred from its non-missing cells: two values that read as a boolean pair
(true/false, yes/no, t/f, y/n, 0/1) -> boolean; all integers (ASCII digits, within int64) ->
integer; all numbers (finite, written in ASCII) -> continuous; all dates or date-times in one
format -> datetime; anything else -> categorical.
Continuous values beyond the float32 range are refused: samples and exports hold float32.

Dates and date-times are ISO 8601 in one of these forms: `2024-03-01`; `2024-03-01T12:30` or
`2024-03-01 12:30` (a `T` or a space between date and time), with optional seconds `:05`,
fractional seconds after them (`.5` to `.123456789`), and an offset `Z` or `+02:00` / `-05:30`
after the time. Every cell of a column is written in one format: the same date-only or
date-time form, separator, seconds or not, and the same offset written the same way (`Z` and
`+00:00` differ); the fractional digits may vary, and the column takes the most any cell
shows. A column whose cells mix formats or offsets is not inferred as datetime (it is text),
and one declared datetime is refused at its first cell in another format. Other forms (week
dates, ordinal dates, `20240301`, `2024/03/01`, times alone) are not dates here. A value is
seconds since the Unix epoch (float64; the offset applied, a cell without one read as UTC),
kept to about a microsecond.

Schema file (`--schema=schema.json`), every key optional:

    {"columns": {"zip": "categorical", "age": "integer", "joined": "datetime", "id": "ignore"},
     "label": "churn",
     "missing": "impute"}

`columns` overrides the inferred kind of the columns it names; `label` is the label column of
conditional models (`--label_column` overrides it); `missing` is the missing-value policy
(`--missing` overrides it). The label column must be categorical, boolean, or integer with at
most `MAX_LABEL_CLASSES` values; it is not part of the encoded vector but the class index `y`.

Missing values (`--missing`): `impute` (the default) fills a numeric or datetime column's
missing cells with the median (rounded for integers) and a categorical or boolean column's
with the most frequent value, and adds a two-way indicator block (present, missing) after the
column's own block, so a model learns where values are missing and decoding writes them back
as empty cells; `drop` removes every row with a missing cell. Rows whose label is missing are
always dropped.

Encoding, one block per column in column order (`table_blocks`):

- categorical and boolean -> a one-hot block (`("softmax", k)`), decoded by argmax;
- continuous, integer and datetime -> one value (`("normal", 1)`): the empirical-quantile
  transform to a standard normal, fit on the data read (up to `NUM_QUANTILES` quantiles, linear
  interpolation between them). It maps any marginal, however skewed, heavy-tailed or
  multi-modal, to a Gaussian a generator fits easily; it is invertible through the same knots,
  and its inverse can only return values inside the observed range, so decoding needs no
  separate clipping rule and never invents extreme values. A CTGAN-style mode-specific
  normalisation would need a variational Gaussian mixture per column, which NumPy alone does
  not give. Decoding rounds integers and rounds continuous values to the most decimals the
  column showed.
- a datetime column is transformed as a continuous one, its values seconds since the epoch
  (so the model never sees raw seconds). Its spec records the column's text format: `format`
  (`%Y-%m-%d`, `%Y-%m-%dT%H:%M`, `%Y-%m-%dT%H:%M:%S`, or a space for the `T`), `fraction`
  (fractional digits, 0 for none) and `offset` (`"Z"`, `"+02:00"`, or null). Decoding rounds to
  the column's resolution (whole days for dates, minutes, seconds, or the last fractional
  digit, at most a microsecond) and gives `datetime64` arrays (UTC) in unit `D` for dates, `s`
  for date-times without fractions, `ms` for up to 3 fractional digits, `us` for more;
  `cell_text` writes them back in the file's own format, its offset added back.
- a column with one value only (constant) takes no block: nothing to learn; decoding writes
  the constant back.

Private runs (`Options.private`, set by differentially private training) read no domain from
the rows: every modelled column is declared in the schema with its domain,

    {"columns": {"age": {"kind": "integer", "bounds": [18, 90]},
                 "income": {"kind": "continuous", "bounds": [0, 500000], "decimals": 2},
                 "joined": {"kind": "datetime", "bounds": ["2020-01-01", "2024-12-31"], "missing": true},
                 "plan": {"kind": "categorical", "categories": ["basic", "pro"], "missing": true},
                 "active": {"kind": "boolean", "tokens": ["no", "yes"]}},
     "label": "active"}

(an integer label declares its classes as `categories` or `bounds`; a datetime column's bounds
are two dates or date-times written in the column's format, which is then taken from them, not
from the rows: every cell must be written so); numeric and datetime values are clamped
to their bounds, a column not declared `"missing": true` may not have missing cells (under
`impute`), missing cells are filled with a value read from no row (the middle of the bounds,
the first category), and numeric quantile knots come from noisy histograms (`fit_private`).

`Encoder.to_json()` holds everything needed to decode (kinds, categories, quantile knots,
label classes, datetime formats) and is stored as `DataSpec.table`; `decode_tensors` is the
same decoding as TensorFlow ops, so an export can return decoded columns: a datetime column
as float64 seconds since the Unix epoch (UTC), rounded as `decode` rounds it (text formatting
of dates is left to the caller).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import itertools
import json
import math
import mmap
import os
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv
from scipy import special

from synthblend.zoo.registry import DataError, UsageError

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime", "ignore")
# Kinds encoded as one quantile-normal value (a datetime as seconds since the Unix epoch).
NUMERIC = ("continuous", "integer", "datetime")
MISSING_POLICIES = ("impute", "drop")
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
BOOLEAN_PAIRS = (("false", "true"), ("no", "yes"), ("f", "t"), ("n", "y"), ("0", "1"))
BOOLEAN_WORDS = frozenset(sum(BOOLEAN_PAIRS, ()))
NUM_QUANTILES = 1000
# Columns longer than this take their quantile knots from a sample of this many values.
QUANTILE_SAMPLE = 200_000
MAX_CATEGORIES = 500
MAX_LABEL_CLASSES = 50
MAX_DECIMALS = 8
# Quantile levels are mapped affinely into [EPS, 1 - EPS] so the normal values stay finite (|z| < 4.8).
EPS = 1e-6
SCHEMA_KEYS = ("columns", "label", "missing")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Exports return continuous columns as float32; larger values would come back infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# A private run's histogram of a numeric column: bins (integers narrower than this get one bin
# per value) and the noisy count, in noise deviations, below which a bin is taken as empty (an
# empty bin passes with probability 3e-5, so empty ranges gain almost no knots).
HISTOGRAM_BINS = 200
HISTOGRAM_THRESHOLD = 4.0
# A date or date-time cell (ISO 8601): date, separator, hours:minutes, seconds, fraction, offset.
DATETIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}(?:([T ])\d{2}:\d{2}(?:(:\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?",
                              re.ASCII)
DATE_FORMAT = "%Y-%m-%d"
# The unit of a datetime column's decoded arrays -> its length in seconds.
DATETIME_UNITS = {"D": 86400.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


@dataclasses.dataclass(frozen=True)
class Private:
    """How a differentially private run fits a table's encoder: nothing is read from the rows but
    through a mechanism. Kinds, categories, label classes, boolean words, which columns may be
    missing and numeric bounds come from the schema's declarations; the quantile knots of numeric
    columns come from one histogram per column with Gaussian noise of standard deviation
    `noise(num_rows) * sqrt(columns)` (each row adds one count to each histogram), bins whose
    noisy count is below `HISTOGRAM_THRESHOLD` deviations dropped; `seed` draws the noise."""

    noise: Callable[[int], float]
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Options:
    """What the user said about a table: a schema file, a label column, a missing policy; and
    `private`, set by a differentially private run."""

    schema: str | None = None
    label: str | None = None
    missing: str | None = None
    private: Private | None = None


# --- reading ---------------------------------------------------------------------------------


def read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, every row as wide as the header; errors name the line."""
    if not os.path.isfile(path):
        raise UsageError(f"dataset 'csv:{path}': no such file {path!r}; expected an existing CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            text = file.read()
    except UnicodeDecodeError as error:
        line = text_line(path, error.start)
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte {error.object[error.start]:#x}); "
                        "save the file as UTF-8") from None
    except OSError as error:
        raise DataError(f"dataset 'csv:{path}' cannot be read ({error.strerror or error}); "
                        "expected a readable CSV file") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    del text
    try:
        first = next(reader, None)
    except csv.Error as error:
        raise csv_error(path, reader, error) from None
    if not first or not any(cell.strip() for cell in first):
        raise DataError(f"{path}: empty file; expected a header row of column names and rows of values")
    header = check_header(path, first)
    # One pass over the rows, each kept once, stripped (the file's text is the only other copy).
    rows, width = [], len(header)
    try:
        for row in reader:
            if len(row) != width or width == 1:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
            if len(row) != width:
                raise DataError(f"{path}: line {reader.line_num} has {len(row)} cells, the header has {width}; "
                                "every row needs one cell per column (quote cells that hold commas)")
            rows.append([cell.strip() for cell in row])
    except csv.Error as error:
        raise csv_error(path, reader, error) from None
    if not rows:
        raise DataError(f"{path}: only a header row, no data rows")
    return header, rows


def check_header(path: str, first: list[str]) -> list[str]:
    """The column names of a header row (`first`, its cells), stripped; DataError for a header
    that is not comma-separated, a column without a name, or a name twice."""
    header = [name.strip() for name in first]
    separator = next((mark for mark in ("\t", ";", "|") if len(header) == 1 and mark in header[0]), None)
    if separator is not None or any("\t" in name for name in header):
        raise DataError(f"{path}: the header is separated by {separator or chr(9)!r}, not commas; csv:<path> reads "
                        "comma-separated values (save the file as CSV)")
    for index, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: column {index + 1} of the header has no name; every column needs one")
        if any(ord(character) < 32 or 127 <= ord(character) < 160 for character in name):
            raise DataError(f"{path}: column name {name!r} holds control characters; name columns with "
                            "printable text")
        if header.index(name) != index:
            raise DataError(f"{path}: column name {name!r} appears twice in the header; names must be unique")
    return header


# Cells a column's first cells are parsed in before the whole column is.
PROBE = 1000

# An integer cell as text: a sign and at most 19 ASCII digits (19 may overflow, which the cast finds).
INTEGER_TEXT = r"^[+-]?[0-9]{1,19}$"


def read_columns(path: str, trim: bool = True) -> tuple[list[str], dict[str, pa.ChunkedArray]]:
    """Header and columns of a CSV file, each column its cells as text (stripped; with `trim`
    False, as written, for `scan_column` to strip where needed), read by pyarrow's multithreaded
    columnar reader: the file's text is held once, in Arrow buffers, and everything after works
    on whole columns. A file that reader refuses (a row of another width, text that is not UTF-8)
    or may misread is read by `read_csv`, whose errors name the line."""
    if not os.path.isfile(path):
        raise UsageError(f"dataset 'csv:{path}': no such file {path!r}; expected an existing CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            first = next(csv.reader(file), None)
    except (UnicodeDecodeError, csv.Error, OSError):
        first = None  # read_csv says what is wrong
    if not first or not any(cell.strip() for cell in first):
        return text_columns(*read_csv(path))
    header = check_header(path, first)
    try:
        table = arrow_csv.read_csv(
            path, parse_options=arrow_csv.ParseOptions(newlines_in_values=holds_quote(path)),
            convert_options=arrow_csv.ConvertOptions(column_types={name: pa.string() for name in first},
                                                     strings_can_be_null=False, null_values=[]))
    except (pa.ArrowException, OSError, ValueError):
        return text_columns(*read_csv(path))
    longest = max((pc.max(pc.binary_length(column)).as_py() or 0 for column in table.columns), default=0)
    table_rows = table.num_rows
    if [name.strip() for name in table.column_names] != header or longest > csv.field_size_limit():
        return text_columns(*read_csv(path))  # read_csv refuses cells as long as that (an unclosed quote)
    raw = table.columns
    del table
    if not table_rows:
        raise DataError(f"{path}: only a header row, no data rows")
    if not trim and len(header) > 1:
        return header, dict(zip(header, raw))

    def trimmed(index):
        column, raw[index] = raw[index], None  # each column's untrimmed text let go once trimmed
        return pc.utf8_trim_whitespace(column)

    columns = dict(zip(header, column_map(trimmed, range(len(header)))))
    pa.default_memory_pool().release_unused()
    if len(header) == 1:  # a blank line in a file of one column is no row
        columns[header[0]] = pc.filter(columns[header[0]], pc.not_equal(columns[header[0]], ""))
    if not len(columns[header[0]]):
        raise DataError(f"{path}: only a header row, no data rows")
    return header, columns


def holds_quote(path: str) -> bool:
    """Whether the file holds a double quote: where it holds none, no cell spans lines, and the
    columnar reader may split the file anywhere between lines. Searched in the file mapped into
    memory, not read into it."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return False
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return mapped.find(b'"') >= 0


def text_columns(header: list[str], rows: list[list[str]]) -> tuple[list[str], dict[str, pa.ChunkedArray]]:
    """Rows of text cells as the columns `read_columns` gives."""
    return header, {name: text_array([row[index] for row in rows]) for index, name in enumerate(header)}


def text_array(cells) -> pa.ChunkedArray:
    """Text cells (a list, or an Arrow array) as one column of text."""
    if isinstance(cells, pa.ChunkedArray):
        return cells
    return pa.chunked_array([cells if isinstance(cells, pa.Array) else pa.array(list(cells), pa.string())],
                            pa.string())


def scan_column(cells) -> tuple[pa.ChunkedArray, np.ndarray, tuple[str, np.ndarray] | None]:
    """`(text, missing, numbers)` of a column of cells as written: a column whose every cell is
    an integer or a finite number (not words a boolean column holds) has no missing cell and no
    cell to strip (the casts refuse spaces); it comes back as it is, with `numbers`, its
    `(kind, values)`. Any other column comes back stripped, with its missing mask and None."""
    cells = text_array(cells)
    first = cells[0].as_py().strip().lower() if len(cells) else ""
    if first and first not in BOOLEAN_WORDS:
        for kind, read in (("integer", integer_values), ("continuous", number_values)):
            values = read(cells)
            if values is not None:
                return cells, np.zeros(len(cells), bool), (kind, values)
    cells = pc.utf8_trim_whitespace(cells)
    return cells, missing_mask(cells), None


def missing_mask(cells) -> np.ndarray:
    """Which cells are missing: empty or one of `MISSING_TOKENS`, in any case."""
    return as_numpy(pc.is_in(text_array(cells), value_set=MISSING_CASES))


# Each missing token in every mix of cases, so that cells are looked up as they are written.
MISSING_CASES = pa.array(sorted({"".join(letters) for token in MISSING_TOKENS
                                 for letters in itertools.product(*({c.lower(), c.upper()} for c in token))}))


def as_numpy(values) -> np.ndarray:
    return values.to_numpy() if isinstance(values, pa.ChunkedArray) else np.asarray(values)


def every(condition) -> bool:
    """Whether a boolean Arrow column is true in every cell (an empty one is)."""
    return bool(pc.all(condition, min_count=0).as_py() is not False)


def present_cells(cells, mask: np.ndarray) -> pa.ChunkedArray:
    if not np.any(mask):
        return text_array(cells)
    return pc.filter(text_array(cells), pa.array(~np.asarray(mask, bool)))


def integer_values(tokens) -> np.ndarray | None:
    """int64 values of text cells when each is an integer of ASCII digits within int64, else None.
    Arrow's cast reads these, and also hexadecimal (`0x1f`), which is refused here, but not a
    leading `+`, for which the cells are matched against `INTEGER_TEXT` and cast without it."""
    tokens = text_array(tokens)
    if len(tokens) > PROBE and integer_values(tokens.slice(0, PROBE)) is None:
        return None  # Arrow's cast reads every cell before it fails: the first few tell most columns
    try:
        values = as_numpy(pc.cast(tokens, pa.int64()))
    except pa.ArrowInvalid:
        if not pc.any(pc.starts_with(tokens, "+")).as_py() or not every(pc.match_substring_regex(tokens, INTEGER_TEXT)):
            return None
        try:
            return as_numpy(pc.cast(pc.replace_substring_regex(tokens, r"^\+", ""), pa.int64()))
        except pa.ArrowInvalid:
            return None
    hexadecimal = any(pc.max(pc.find_substring(tokens, mark)).as_py() not in (None, -1) for mark in "xX")
    return None if hexadecimal else values


def number_values(tokens) -> np.ndarray | None:
    """float64 values of text cells when each is a finite number written in ASCII, else None.
    Arrow's cast reads exactly the numbers Python's `float` reads from ASCII digits (a sign,
    digits with one point, an exponent), and infinities and NaN, which the finite check refuses
    (`tests/test_columnar.py` checks the two agree with `is_number`)."""
    tokens = text_array(tokens)
    if len(tokens) > PROBE and number_values(tokens.slice(0, PROBE)) is None:
        return None
    try:
        values = as_numpy(pc.cast(tokens, pa.float64()))
    except pa.ArrowInvalid:
        return None
    return values if np.isfinite(values).all() else None


def csv_error(path: str, reader, error: csv.Error) -> DataError:
    return DataError(f"{path}: line {reader.line_num} cannot be read as CSV ({error}); expected cells "
                     "separated by commas, quoted with \" where they hold commas or line breaks")


def text_line(path: str, offset: int) -> int:
    with open(path, "rb") as file:
        return file.read(offset).count(b"\n") + 1


def read_schema(path: str) -> dict:
    """The schema file's JSON, checked for its shape (column names are checked against a file)."""
    if not os.path.isfile(path):
        raise UsageError(f"--schema={path}: no such file; expected a JSON file like "
                         '{"columns": {"age": "integer"}, "label": "churn"}')
    try:
        with open(path, encoding="utf-8-sig") as file:
            schema = json.load(file)
    except (ValueError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"--schema={path} is not valid JSON ({reason}); expected e.g. "
                         '{"columns": {"age": "integer"}, "label": "churn"}') from None
    except RecursionError:
        raise UsageError(f"--schema={path} nests too deeply to be a schema; expected e.g. "
                         '{"columns": {"age": "integer"}, "label": "churn"}') from None
    except OSError as error:
        raise UsageError(f"--schema={path} cannot be read ({error.strerror or error}); expected a readable "
                         "JSON file") from None
    return check_schema(schema, f"--schema={path}")


def check_schema(schema, where: str) -> dict:
    """`schema` (a schema's JSON) checked for its shape; UsageError naming `where` otherwise."""
    if not isinstance(schema, dict) or set(schema) - set(SCHEMA_KEYS):
        extra = sorted(set(schema) - set(SCHEMA_KEYS)) if isinstance(schema, dict) else type(schema).__name__
        raise UsageError(f"{where}: unexpected {extra}; accepted keys: {', '.join(SCHEMA_KEYS)}")
    columns = schema.get("columns", {})
    if not isinstance(columns, dict):
        raise UsageError(f"{where}: 'columns' must map column names to kinds")
    for name, kind in columns.items():
        check_declaration(f"{where}: column {name!r}", kind)
    label = schema.get("label")
    if label is not None and (not isinstance(label, str) or not label):
        raise UsageError(f"{where}: label={label!r}; expected a column name, or null for none")
    if schema.get("missing") is not None and (not isinstance(schema["missing"], str)
                                              or schema["missing"] not in MISSING_POLICIES):
        raise UsageError(f"{where}: missing={schema['missing']!r}; accepted: {', '.join(MISSING_POLICIES)}")
    return schema


def check_declaration(where: str, declared) -> None:
    """UsageError for a schema column that is neither a kind nor a declaration of its domain:
    `{"kind": ..., "bounds": [low, high], "categories": [...], "tokens": [false, true],
    "missing": bool, "decimals": int}` (the keys its kind takes; a datetime column's bounds are
    two dates or date-times in one format)."""
    if isinstance(declared, str):
        declared = {"kind": declared}
    if not isinstance(declared, dict):
        raise UsageError(f"{where} is {declared!r}; expected a kind ({', '.join(KINDS)}) or an object like "
                         '{"kind": "integer", "bounds": [18, 90]}')
    kind = declared.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UsageError(f"{where} has kind {kind!r}; accepted: {', '.join(KINDS)}")
    accepted = DECLARATION_KEYS[kind]
    extra = sorted(set(declared) - set(accepted) - {"kind"})
    if extra:
        raise UsageError(f"{where}: {', '.join(extra)} do not apply to a {kind} column; it takes "
                         f"{', '.join(accepted) or 'no other key'}")
    bounds = declared.get("bounds")
    if bounds is not None and kind == "datetime":
        check_datetime_bounds(where, bounds)
    elif bounds is not None:
        numbers = isinstance(bounds, list) and len(bounds) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        if not numbers or bounds[0] > bounds[1] or (kind == "integer" and not all(float(b).is_integer() for b in bounds)):
            raise UsageError(f"{where}: bounds={bounds!r}; expected [low, high] with low <= high"
                             + (", whole numbers" if kind == "integer" else ", finite numbers"))
        if kind == "continuous" and max(abs(b) for b in bounds) > FLOAT32_MAX:
            raise UsageError(f"{where}: bounds={bounds!r} reach beyond the float32 range (+-{FLOAT32_MAX:.4g})")
    categories = declared.get("categories")
    if categories is not None:
        cell = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if kind == "integer" else (
            lambda v: isinstance(v, str))
        if (not isinstance(categories, list) or not categories or not all(map(cell, categories))
                or len(set(categories)) != len(categories) or len(categories) > MAX_CATEGORIES):
            what = "integers" if kind == "integer" else "strings"
            raise UsageError(f"{where}: categories={categories!r}; expected a list of 1 to {MAX_CATEGORIES} distinct "
                             f"{what}")
    tokens = declared.get("tokens")
    if tokens is not None and (not isinstance(tokens, list) or len(tokens) != 2 or not all(
            isinstance(t, str) and t.strip() and not is_missing(t.strip()) for t in tokens)
            or tokens[0].lower() == tokens[1].lower()):
        raise UsageError(f"{where}: tokens={tokens!r}; expected the words for false and true, e.g. [\"no\", \"yes\"]")
    if "missing" in declared and not isinstance(declared["missing"], bool):
        raise UsageError(f"{where}: missing={declared['missing']!r}; expected true (the column may have missing "
                         "cells) or false")
    decimals = declared.get("decimals")
    if decimals is not None and (not isinstance(decimals, int) or isinstance(decimals, bool)
                                 or not 0 <= decimals <= MAX_DECIMALS):
        raise UsageError(f"{where}: decimals={decimals!r}; expected a whole number from 0 to {MAX_DECIMALS}")


# What a schema may declare of a column of each kind, beside its kind.
DECLARATION_KEYS = {
    "continuous": ("bounds", "missing", "decimals"),
    "integer": ("bounds", "categories", "missing"),
    "categorical": ("categories", "missing"),
    "boolean": ("tokens", "missing"),
    "datetime": ("bounds", "missing"),
    "ignore": (),
}


def check_datetime_bounds(where: str, bounds) -> None:
    """UsageError unless a datetime column's `bounds` are two dates or date-times written in one
    format (the column's), low <= high."""
    example = 'e.g. ["2020-01-01", "2024-12-31"]'
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise UsageError(f"{where}: bounds={bounds!r}; expected [low, high] as two dates or date-times in the "
                         f"column's format, {example}")
    for bound in bounds:
        if not isinstance(bound, str) or datetime_seconds(bound) is None:
            raise UsageError(f"{where}: bounds={bounds!r}: {bound!r} is not a date or date-time; expected [low, high] "
                             f"in the column's format, {example} (accepted: {DATETIME_FORMS})")
    low, high = (datetime_format(bound) for bound in bounds)
    if (low["format"], low["offset"]) != (high["format"], high["offset"]):
        raise UsageError(f"{where}: bounds={bounds!r} are written in two formats ({format_text(low)}, "
                         f"{format_text(high)}); write both in the column's format, {example}")
    if datetime_seconds(bounds[0]) > datetime_seconds(bounds[1]):
        raise UsageError(f"{where}: bounds={bounds!r}; expected [low, high] with low <= high")


def bounds_format(bounds: list[str]) -> dict:
    """The text format a datetime column's declared bounds are written in (the most fractional
    digits of the two)."""
    low, high = (datetime_format(bound) for bound in bounds)
    return {**low, "fraction": max(low["fraction"], high["fraction"])}


def declarations(schema: dict) -> dict[str, dict]:
    """Column name -> what the schema declares of it (`{"kind": ...}` at least)."""
    return {name: ({"kind": value} if isinstance(value, str) else dict(value))
            for name, value in schema.get("columns", {}).items()}


def is_missing(token: str) -> bool:
    return token.lower() in MISSING_TOKENS


def infer_kind(tokens, parsed: dict | None = None) -> str:
    """The kind of a column from its non-missing cells (a list or an Arrow column of text); the
    values of a numeric column are put in `parsed` under its kind, when given."""
    tokens = text_array(tokens)
    if len(tokens) and tokens[0].as_py().lower() in BOOLEAN_WORDS:
        lower = pc.utf8_lower(tokens)
        if every(pc.is_in(lower, value_set=pa.array(sorted(BOOLEAN_WORDS)))):
            values = set(pc.unique(lower).to_pylist())
            if len(values) == 2 and boolean_pair(values):
                return "boolean"
    for kind, read in (("integer", integer_values), ("continuous", number_values)):
        values = read(tokens)
        if values is not None:
            if parsed is not None:
                parsed[kind] = values
            return kind
    if is_datetime_column(tokens):
        return "datetime"
    return "categorical"


def boolean_pair(values) -> tuple[str, str] | None:
    for pair in BOOLEAN_PAIRS:
        if set(values) <= set(pair):
            return pair
    return None


def is_integer(token: str) -> bool:
    """Whether `token` is an integer of ASCII digits (with a sign) that fits int64. Other digits,
    such as '²' or '٣', which Python's `str.isdigit` accepts, are text."""
    digits = token[1:] if token[:1] in "+-" else token
    return (digits.isascii() and digits.isdigit() and len(digits) <= 19
            and INT64_MIN <= int(token) <= INT64_MAX)


def is_number(token: str) -> bool:
    """Whether `token` is a finite number written in ASCII (no digit separators '_', which
    Python's `float` reads but other tools do not)."""
    if not token.isascii() or "_" in token:
        return False
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


# --- dates and times ---------------------------------------------------------------------------

DATETIME_FORMS = ("YYYY-MM-DD, or YYYY-MM-DD hh:mm (T or a space between date and time) with optional :ss, "
                  "fractional seconds .f to .fffffffff, and offset Z, +hh:mm or -hh:mm")


def datetime_format(token: str) -> dict | None:
    """The text format of a date or date-time cell, or None when it is not one: `format` (the
    date and time in strftime form: `%Y-%m-%d`, `%Y-%m-%dT%H:%M`, `%Y-%m-%dT%H:%M:%S`, a space
    for the `T` where the cell has one), `fraction` (the digits of its fractional seconds, 0 for
    none) and `offset` (`"Z"`, `"+hh:mm"` or `"-hh:mm"`, None for none). The calendar is not
    checked here (`datetime_seconds` does)."""
    match = DATETIME_PATTERN.fullmatch(token)
    if match is None:
        return None
    separator, seconds, fraction, offset = match.groups()
    if offset not in (None, "Z") and (int(offset[1:3]) > 23 or int(offset[4:]) > 59):
        return None
    form = DATE_FORMAT if separator is None else f"{DATE_FORMAT}{separator}%H:%M" + (":%S" if seconds else "")
    return {"format": form, "fraction": len(fraction) - 1 if fraction else 0, "offset": offset}


def format_text(form: dict) -> str:
    """A datetime format as people write it, e.g. `YYYY-MM-DD hh:mm:ss.fff+02:00`."""
    text = form["format"]
    for code, shown in (("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "hh"), ("%M", "mm"), ("%S", "ss")):
        text = text.replace(code, shown)
    return text + ("." + "f" * form["fraction"] if form["fraction"] else "") + (form["offset"] or "")


def format_pattern(form: dict) -> re.Pattern:
    """The cells a datetime column of this format holds (any number of fractional digits, 1 to 9)."""
    text = r"\d{4}-\d{2}-\d{2}"
    if form["format"] != DATE_FORMAT:
        text += re.escape(form["format"][len(DATE_FORMAT)]) + r"\d{2}:\d{2}"
        if form["format"].endswith("%S"):
            text += r":\d{2}(?:\.\d{1,9})?"
        text += re.escape(form["offset"] or "")
    return re.compile(text, re.ASCII)


def offset_seconds(offset: str | None) -> int:
    """An offset (`Z`, `+hh:mm`, `-hh:mm` or None) in seconds east of UTC."""
    if offset is None or offset == "Z":
        return 0
    return (1 if offset[0] == "+" else -1) * (int(offset[1:3]) * 3600 + int(offset[4:]) * 60)


def datetime_seconds(token: str) -> float | None:
    """Seconds since the Unix epoch of one date or date-time (its offset applied; a cell without
    one is read as UTC), or None when it is not one."""
    form = datetime_format(token)
    if form is None:
        return None
    try:
        stamp = np.datetime64(token[:len(token) - len(form["offset"] or "")], "us")
    except ValueError:
        return None
    return stamp.astype(np.int64) / 1e6 - offset_seconds(form["offset"])


def is_datetime_column(tokens) -> bool:
    """Whether every token is a date or date-time in one format (a cheap look at the first token
    first, so columns of other text cost nothing)."""
    tokens = text_array(tokens)
    first = tokens[0].as_py()
    if len(first) < 10 or first[4] != "-" or first[7] != "-":
        return False
    try:
        parse_datetimes("", "", tokens, np.zeros(len(tokens), bool))
    except DataError:
        return False
    return True


def parse_datetimes(source: str, name: str, cells: list[str], mask: np.ndarray, fixed: dict | None = None):
    """Seconds since the Unix epoch (float64, 0 where missing) of a datetime column's cells and the
    column's text format (`datetime_format`'s fields): `fixed` (the declared bounds'), or the first
    cell's with the most fractional digits any cell shows. Every cell must be written in that
    format; errors name the line of one that is not."""
    present = np.flatnonzero(~np.asarray(mask, bool))
    tokens = present_cells(cells, mask).to_pylist()
    values = np.zeros(len(cells))
    if not tokens:
        return values, fixed
    form = fixed or datetime_format(tokens[0])
    pattern = format_pattern(form) if form is not None else None
    for index, token in zip(present, tokens):
        if pattern is None or pattern.fullmatch(token) is None:
            raise bad_datetime(source, name, int(index) + 2, token, form,
                               "its declared bounds" if fixed else f"line {int(present[0]) + 2}")
    cut = len(form["offset"] or "")
    try:
        stamps = np.array([token[:len(token) - cut] for token in tokens], "datetime64[us]")
    except ValueError:
        index, token = next((i, t) for i, t in zip(present, tokens) if datetime_seconds(t) is None)
        raise bad_datetime(source, name, int(index) + 2, token, None, "") from None
    values[present] = stamps.astype(np.int64) / 1e6 - offset_seconds(form["offset"])
    if fixed is None and form["format"].endswith("%S"):
        form = {**form, "fraction": max(0, max(len(token) for token in tokens) - cut - len("YYYY-MM-DDThh:mm:ss."))}
    return values, form


def bad_datetime(source: str, name: str, line: int, token: str, form: dict | None, where: str) -> DataError:
    written = datetime_format(token) if form is not None else None
    if written is None:
        return DataError(f"{source}: line {line}, column {name!r}: {token!r} is not a date or date-time (the column "
                         f"is datetime; accepted: {DATETIME_FORMS}; mark it \"categorical\" in --schema to keep text)")
    return DataError(f"{source}: line {line}, column {name!r}: {token!r} is written as {format_text(written)}, the "
                     f"column as {format_text(form)} ({where}); write one format in a column")


def datetime_step(spec: dict) -> float:
    """The resolution of a datetime column in seconds: a day, a minute, a second, or the last
    fractional digit it shows (at most a microsecond)."""
    if spec["format"] == DATE_FORMAT:
        return 86400.0
    if not spec["format"].endswith("%S"):
        return 60.0
    return 10.0 ** -min(spec["fraction"], 6)


def datetime_unit(spec: dict) -> str:
    """The unit of a datetime column's decoded `datetime64` array: D, s, ms or us."""
    if spec["format"] == DATE_FORMAT:
        return "D"
    return "s" if spec["fraction"] == 0 else "ms" if spec["fraction"] <= 3 else "us"


def to_datetime64(seconds: np.ndarray, spec: dict) -> np.ndarray:
    """Seconds since the Unix epoch -> a `datetime64` array in the column's unit (UTC)."""
    unit = datetime_unit(spec)
    ticks = np.round(np.asarray(seconds, np.float64) / DATETIME_UNITS[unit]).astype(np.int64)
    return ticks.astype(f"datetime64[{unit}]")


def epoch_seconds(values: np.ndarray) -> np.ndarray:
    """A `datetime64` array -> float64 seconds since the Unix epoch."""
    return values.astype("datetime64[us]").astype(np.int64) / 1e6


def datetime_text(values: np.ndarray, spec: dict) -> list[str]:
    """A datetime column (`datetime64`, or seconds since the epoch) as text in its own format."""
    values = np.asarray(values)
    if values.dtype.kind != "M":
        values = to_datetime64(values, spec)
    if spec["format"] == DATE_FORMAT:
        return np.datetime_as_string(values, unit="D").tolist()
    local = values.astype("datetime64[us]") + np.timedelta64(offset_seconds(spec["offset"]), "s")
    seconds, fraction = spec["format"].endswith("%S"), spec["fraction"]
    text = np.datetime_as_string(local, unit="m" if not seconds else "us" if fraction else "s").tolist()
    separator, offset = spec["format"][len(DATE_FORMAT)], spec["offset"] or ""
    width = len("YYYY-MM-DDThh:mm:ss.") + min(fraction, 6)
    padding = "0" * max(0, fraction - 6)
    if fraction:
        text = [cell[:width] + padding for cell in text]
    return [cell[:10] + separator + cell[11:] + offset for cell in text]


def resolve(path: str, header: list[str], cells: dict, masks: dict, options: Options,
            parsed: dict | None = None) -> tuple[dict, str | None, str]:
    """Kinds of the columns, the label column and the missing policy from the file's text
    columns (`cells`, their missing `masks`) and the options. `parsed` (name -> `(kind, values)`)
    holds the numeric columns already read (`scan_column`), whose kind is then not inferred again;
    the values of other inferred numeric columns without missing cells are added, when given, to
    be parsed once."""
    schema = read_schema(options.schema) if options.schema else {}
    overrides = {name: declared["kind"] for name, declared in declarations(schema).items()}
    for name in overrides:
        if name not in header:
            raise UsageError(f"--schema names column {name!r}, which {path} does not have; "
                             f"its columns: {', '.join(header)}")
    # --label_column='' says: no label, whatever the schema names.
    label = schema.get("label") if options.label is None else (options.label or None)
    if label is not None and label not in header:
        raise UsageError(f"label column {label!r} is not a column of {path}; its columns: {', '.join(header)}")
    missing = options.missing or schema.get("missing") or "impute"
    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing={missing}; accepted: {', '.join(MISSING_POLICIES)}")
    if options.private is not None:
        check_declared(path, header, declarations(schema), label)
    kinds = {}
    for name in header:
        if overrides.get(name) == "ignore":
            kinds[name] = "ignore"
            continue
        if masks[name].all():
            raise DataError(f"{path}: column {name!r} has no values (every cell is missing); "
                            "remove it or mark it \"ignore\" in --schema")
        kinds[name] = overrides.get(name)
    known = parsed if parsed is not None else {}
    inferred = [name for name in header if kinds[name] is None]

    def infer(name):
        if name in known:
            return known[name]
        found = {}
        kind = infer_kind(present_cells(cells[name], masks[name]) if masks[name].any() else cells[name], found)
        return kind, found.get(kind)

    for name, (kind, values) in zip(inferred, column_map(infer, inferred)):
        kinds[name] = kind
        if parsed is not None and values is not None and not masks[name].any():
            parsed[name] = (kind, values)
    if label is not None:
        if kinds[label] == "ignore" or kinds[label] not in ("categorical", "boolean", "integer"):
            raise UsageError(f"label column {label!r} is {kinds[label]}; a label must be categorical, boolean "
                             f"or integer with at most {MAX_LABEL_CLASSES} values")
    return kinds, label, missing, declarations(schema)


def check_declared(source: str, header, declared: dict, label: str | None) -> None:
    """UsageError unless the schema declares the domain of every column a private run models:
    read from the rows, it would lie outside the guarantee."""
    lacking = []
    for name in header:
        column = declared.get(name, {})
        kind = column.get("kind")
        if kind == "ignore":
            continue
        if kind is None:
            lacking.append(f"{name} (its kind and domain)")
        elif kind == "boolean" and "tokens" not in column:
            lacking.append(f'{name} ("tokens": [false word, true word])')
        elif kind == "categorical" and "categories" not in column:
            lacking.append(f'{name} ("categories")')
        elif kind == "integer" and name == label and not ("categories" in column or "bounds" in column):
            lacking.append(f'{name} ("categories": the label classes)')
        elif kind == "datetime" and "bounds" not in column:
            lacking.append(f'{name} ("bounds": [first date, last date], in the column\'s format)')
        elif kind in NUMERIC and name != label and "bounds" not in column:
            lacking.append(f'{name} ("bounds": [low, high])')
    if lacking:
        raise UsageError(f"differentially private training reads no column's domain from {source}'s rows (it "
                         f"would lie outside the guarantee); declare in --schema: {', '.join(lacking)}; e.g. "
                         '{"columns": {"age": {"kind": "integer", "bounds": [18, 90]}, "plan": {"kind": '
                         '"categorical", "categories": ["basic", "pro"]}, "id": "ignore"}} (see docs/privacy.md)')


class Coded:
    """A column of text held as codes into its distinct values (Arrow's dictionary encoding):
    row i is `values[codes[i]]`. Counting, filling and looking up categories work on the codes;
    `np.asarray` gives the strings."""

    def __init__(self, codes: np.ndarray, values: np.ndarray):
        self.codes, self.values = codes, values

    @classmethod
    def of(cls, column) -> "Coded":
        encoded = text_array(column).combine_chunks().dictionary_encode()
        return cls(encoded.indices.to_numpy().astype(np.int32), np.asarray(encoded.dictionary.to_pylist(), dtype=str))

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index) -> "Coded":
        return Coded(self.codes[index], self.values)

    def __array__(self, dtype=None, copy=None):
        strings = self.values[self.codes]
        return strings if dtype is None else strings.astype(dtype)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.values))

    def distinct(self) -> np.ndarray:
        """The values the rows hold, sorted (as `np.unique` sorts strings)."""
        return np.sort(self.values[self.counts() > 0])

    def most_frequent(self) -> str:
        """The value most rows hold (of several, the first in sorted order)."""
        counts = self.counts()
        return str(np.sort(self.values[counts == counts.max()])[0])

    def filled(self, mask: np.ndarray, value: str) -> "Coded":
        """The column with the rows of `mask` holding `value`."""
        found = np.flatnonzero(self.values == value)
        values = self.values if len(found) else np.append(self.values, value)
        code = found[0] if len(found) else len(self.values)
        return Coded(np.where(mask, np.int32(code), self.codes).astype(np.int32), values)

    def indices(self, categories: list) -> np.ndarray:
        """Each row's index in `categories`; KeyError naming a value the rows hold that is not there."""
        lookup = np.full(len(self.values), -1, np.int64)
        held = self.counts() > 0
        positions = {value: index for index, value in enumerate(categories)}
        for code in np.flatnonzero(held):
            value = str(self.values[code])
            if value not in positions:
                raise KeyError(value)
            lookup[code] = positions[value]
        return lookup[self.codes]


def distinct(values) -> np.ndarray:
    """The distinct values of a column, sorted."""
    return values.distinct() if isinstance(values, Coded) else np.unique(values)


def fill_missing(values, mask: np.ndarray, fill):
    """`values` with the cells of `mask` set to `fill`."""
    if isinstance(values, Coded):
        return values.filled(mask, str(fill))
    return np.where(mask, fill, values).astype(values.dtype)


def parse_columns(path: str, header, cells: dict, missing: dict, kinds: dict, label: str | None,
                  tokens: dict | None = None, formats: dict | None = None, parsed: dict | None = None):
    """Typed columns and their missing masks from text columns (`cells`, their `missing` masks),
    each column parsed whole (the columns on `column_map`'s threads); errors name the line and
    column of a bad cell. `tokens` maps boolean columns to their known (false, true) words,
    `formats` datetime columns to their declared text format (otherwise read from the cells, as
    `"<name>\\0format"`); `parsed` the values of numeric columns already read."""
    names = [name for name in header if kinds[name] != "ignore"]

    def parse(name):
        return parse_column(path, name, kinds[name], cells[name], missing[name], (tokens or {}).get(name),
                            (formats or {}).get(name), (parsed or {}).get(name))

    columns, masks = {}, {}
    for name, (values, extra) in zip(names, column_map(parse, names)):
        columns[name], masks[name] = values, missing[name]
        masks.update({name + key: value for key, value in extra.items()})
    return columns, masks


def parse_column(path: str, name: str, kind: str, column, mask: np.ndarray, known: tuple | None, form: dict | None,
                 values: np.ndarray | None):
    """A column's typed values and what else parsing found (`{"\\0format": ...}` of a datetime
    column, `{"\\0tokens": (false, true)}` of a boolean one); see `parse_columns`."""
    if kind == "datetime":
        values, form = parse_datetimes(path, name, column, mask, form)
        return values, {"\0format": form}
    if kind in NUMERIC:
        if values is None:
            filled = pc.if_else(pa.array(mask), "0", column)
            values = integer_values(filled) if kind == "integer" else number_values(filled)
        if values is None:
            bad_number(path, name, kind, column.to_pylist(), mask)
        if kind == "continuous" and np.abs(values).max(initial=0.0) > FLOAT32_MAX:
            index = int(np.argmax(np.abs(values) > FLOAT32_MAX))
            raise DataError(f"{path}: line {index + 2}, column {name!r}: {column[index].as_py()} is beyond the "
                            f"float32 range (+-{FLOAT32_MAX:.4g}) that samples and exports hold; rescale the column")
        return values, {}
    if kind == "boolean":
        lower = pc.utf8_lower(column)
        pair = tuple(t.lower() for t in known) if known else boolean_pair(
            set(pc.unique(present_cells(lower, mask)).to_pylist()))
        if pair is None:
            words = sum(BOOLEAN_PAIRS, ())
            bad = next(t for t, m in zip(column.to_pylist(), mask) if not m and t.lower() not in words)
            raise DataError(f"{path}: column {name!r} holds {bad!r}, which is not a boolean; accepted pairs: "
                            + ", ".join("/".join(p) for p in BOOLEAN_PAIRS))
        valid = as_numpy(pc.is_in(lower, value_set=pa.array(list(pair)))) | mask
        if not valid.all():
            index = int(np.argmin(valid))
            raise DataError(f"{path}: line {index + 2}, column {name!r}: {column[index].as_py()!r} is not "
                            f"{pair[0]!r} or {pair[1]!r} (the column is boolean)")
        return as_numpy(pc.equal(lower, pair[1])) & ~mask, {"\0tokens": tuple(known) if known else pair}
    return Coded.of(column), {}


def column_map(function, items) -> list:
    """`[function(item) for item in items]`, the items on as many threads as there are cores (the
    work on a column, in Arrow's kernels and NumPy's sorts and interpolations, lets go of the
    GIL); the first error, in the items' order, is raised."""
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def bad_number(path: str, name: str, kind: str, cells: list[str], mask) -> None:
    """The DataError naming the first cell of a numeric column that is not a number of its kind."""
    check = is_integer if kind == "integer" else is_number
    for number, (token, missing) in enumerate(zip(cells, mask), start=2):
        if not missing and not check(token):
            what = ("an integer of ASCII digits within int64" if kind == "integer"
                    else "a finite number written in ASCII")
            raise DataError(f"{path}: line {number}, column {name!r}: {token!r} is not {what} "
                            f"(the column is {kind}; mark it \"categorical\" in --schema to keep text)")
    raise AssertionError(f"column {name!r} parsed as {kind} with no bad cell")


def encoder_tokens(encoder: dict | None) -> dict:
    """Boolean column name -> its (false, true) words, of a fitted encoder."""
    if encoder is None:
        return {}
    return {column["name"]: tuple(column["tokens"]) for column in column_specs(encoder).values()
            if column["kind"] == "boolean"}


# --- the encoder -----------------------------------------------------------------------------


def fit(path: str, header, columns: dict, masks: dict, kinds: dict, label: str | None, missing: str) -> dict:
    """The encoder (JSON form) fit on typed `columns`; missing cells already filled (the columns'
    parts on `column_map`'s threads)."""

    def column_spec(name):
        kind = kinds[name]
        values = columns[name]
        spec = {"name": name, "kind": kind, "missing": bool(masks[name].any())}
        present = values[~masks[name]] if spec["missing"] else values
        if kind in NUMERIC:  # only whether the column is constant is needed
            unique = present[:1] if present.min() == present.max() else present[:2]
        else:
            unique = distinct(present)
        if kind == "boolean":
            spec["tokens"] = list(masks[name + "\0tokens"])
        if kind == "datetime":
            spec.update(masks[name + "\0format"])
        if len(unique) == 1:
            spec["constant"] = unique[0].item() if kind != "categorical" else str(unique[0])
        elif kind == "categorical":
            if len(unique) > MAX_CATEGORIES:
                raise DataError(f"{path}: column {name!r} has {len(unique)} distinct values (at most "
                                f"{MAX_CATEGORIES} categories); mark it \"ignore\" or a numeric kind in --schema")
            spec["categories"] = [str(value) for value in unique]
        elif kind in NUMERIC:
            spec["quantiles"] = column_quantiles(present)
            if kind == "continuous":
                spec["decimals"] = column_decimals(columns[name + "\0tokens"]) if name + "\0tokens" in columns else None
        return spec

    specs = column_map(column_spec, [name for name in header if kinds[name] != "ignore" and name != label])
    label_spec = None
    if label is not None:
        present = columns[label][~masks[label]]
        classes = distinct(present)
        if len(classes) < 2 or len(classes) > MAX_LABEL_CLASSES:
            raise UsageError(f"label column {label!r} has {len(classes)} distinct values; a label needs 2 to "
                             f"{MAX_LABEL_CLASSES}")
        label_spec = {"name": label, "kind": kinds[label], "classes": [c.item() if kinds[label] != "categorical"
                                                                       else str(c) for c in classes]}
        if kinds[label] == "boolean":
            label_spec["tokens"] = list(masks[label + "\0tokens"])
    encoder = {"columns": specs, "label": label_spec, "order": [n for n in header if kinds[n] != "ignore"],
               "missing": missing}
    encoder["blocks"] = [list(block) for block in blocks_of(encoder)]
    if not encoder["blocks"]:
        raise DataError(f"{path}: every column is constant or the label; nothing to learn")
    return encoder


def fit_private(source: str, header, columns: dict, masks: dict, kinds: dict, label: str | None, missing: str,
                declared: dict, private: Private) -> dict:
    """The encoder of a private run: every domain from `declared` (a schema's declarations, checked
    by `check_declared`), numeric quantile knots from noisy histograms within the declared bounds.
    Missing cells take a fill read from no row; numeric values outside their bounds are clamped to
    them; a category, word or label class outside the declared ones is a DataError."""
    specs, numeric = [], []
    for name in header:
        kind = kinds[name]
        if kind == "ignore":
            continue
        column, mask = declared[name], masks[name]
        if mask.any() and not column.get("missing") and name != label and missing == "impute":
            raise DataError(f"{source}: column {name!r} has {int(mask.sum())} missing cells, and --schema does not "
                            'declare it "missing": true; declare it (the model then learns where cells are missing), '
                            "or pass --missing=drop")
        present = columns[name][~mask]
        if kind == "categorical" or (kind == "integer" and name == label and "categories" in column):
            allowed = set(column["categories"])
            unknown = next((value for value in distinct(present) if value.item() not in allowed), None)
            if unknown is not None:
                raise DataError(f"{source}: column {name!r} holds {unknown.item()!r}, which --schema's categories "
                                f"do not list ({', '.join(map(str, column['categories']))}); add it to them")
        if name == label:
            continue
        spec = {"name": name, "kind": kind, "missing": bool(column.get("missing")) and missing == "impute"}
        if kind == "boolean":
            spec["tokens"] = list(column["tokens"])
            fill = False
        elif kind == "categorical":
            fill = column["categories"][0]
            if len(column["categories"]) == 1:
                spec["constant"] = fill
            else:
                spec["categories"] = list(column["categories"])
        else:
            low, high = column["bounds"]
            if kind == "datetime":
                spec.update(masks[name + "\0format"])
                low, high = (datetime_seconds(bound) for bound in column["bounds"])
            columns[name] = np.clip(columns[name], low, high).astype(columns[name].dtype)
            fill = (low + high) / 2 if kind == "continuous" else round((low + high) / 2)
            if kind == "datetime":
                fill = round((low + high) / 2 / datetime_step(spec)) * datetime_step(spec)
            if low == high:
                spec["constant"] = int(low) if kind == "integer" else float(low)
            else:
                numeric.append((spec, name, (low, high)))
            if kind == "continuous":
                spec["decimals"] = column.get("decimals")
        if spec["missing"]:
            columns[name] = fill_missing(columns[name], mask, fill)
        specs.append(spec)
    noise = float(private.noise(len(next(iter(masks.values()))))) if numeric else None
    rng = np.random.default_rng(private.seed)
    deviation = None if noise is None else noise * math.sqrt(len(numeric))
    for spec, name, bounds in numeric:
        spec["quantiles"] = private_quantiles(columns[name][~masks[name]], bounds, spec["kind"], deviation, rng)
    label_spec = None
    if label is not None:
        label_spec = private_label(source, label, kinds[label], declared[label], columns[label][~masks[label]])
    encoder = {"columns": specs, "label": label_spec, "order": [n for n in header if kinds[n] != "ignore"],
               "missing": missing,
               "private": {"noise_multiplier": noise, "histograms": len(numeric), "bins": HISTOGRAM_BINS,
                           "threshold": HISTOGRAM_THRESHOLD}}
    encoder["blocks"] = [list(block) for block in blocks_of(encoder)]
    if not encoder["blocks"]:
        raise DataError(f"{source}: every column is constant or the label; nothing to learn")
    return encoder


def private_quantiles(values: np.ndarray, bounds, kind: str, deviation: float, rng) -> list[float]:
    """Quantile knots of `values` within `bounds` from a histogram with Gaussian noise of standard
    deviation `deviation` per bin; bins below `HISTOGRAM_THRESHOLD` deviations count as empty,
    and when every bin does, the knots are spread evenly over the bounds."""
    low, high = float(bounds[0]), float(bounds[1])
    if kind == "integer" and high - low + 1 <= HISTOGRAM_BINS:
        edges = np.concatenate([[low], np.arange(low, high) + 0.5, [high]])
    else:
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = np.histogram(np.clip(values, low, high), edges)[0] + rng.normal(0.0, deviation, len(edges) - 1)
    counts = np.where(counts >= HISTOGRAM_THRESHOLD * deviation, counts, 0.0)
    if not counts.any():
        counts = np.ones(len(edges) - 1)
    keep = counts > 0
    lefts, rights, mass = edges[:-1][keep], edges[1:][keep], counts[keep] / counts.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(mass)])
    levels = np.linspace(0.0, 1.0, min(NUM_QUANTILES, max(2, len(values))))
    index = np.clip(np.searchsorted(cumulative, levels, side="right") - 1, 0, len(mass) - 1)
    fraction = np.clip((levels - cumulative[index]) / mass[index], 0.0, 1.0)
    return (lefts[index] + fraction * (rights[index] - lefts[index])).tolist()


def private_label(source: str, name: str, kind: str, column: dict, present: np.ndarray) -> dict:
    """The label column's spec from its declaration: its categories, words, or the integers in its bounds."""
    if kind == "boolean":
        classes = [False, True]
    elif "categories" in column:
        classes = list(column["categories"])
    else:
        low, high = (int(b) for b in column["bounds"])
        if high - low + 1 > MAX_LABEL_CLASSES:
            raise UsageError(f"label column {name!r} is declared with bounds [{low}, {high}], {high - low + 1} classes; "
                             f"a label has at most {MAX_LABEL_CLASSES} (declare its \"categories\")")
        classes = list(range(low, high + 1))
        outside = present[(present < low) | (present > high)]
        if len(outside):
            raise DataError(f"{source}: label column {name!r} holds {outside[0].item()}, outside its declared bounds "
                            f"[{low}, {high}]")
    if not 2 <= len(classes) <= MAX_LABEL_CLASSES:
        raise UsageError(f"label column {name!r} is declared with {len(classes)} classes; a label needs 2 to "
                         f"{MAX_LABEL_CLASSES}")
    spec = {"name": name, "kind": kind, "classes": classes}
    if kind == "boolean":
        spec["tokens"] = list(column["tokens"])
    return spec


def column_decimals(tokens) -> int | None:
    """Most decimals the column's cells (numbers as text) show (None when one uses exponent notation)."""
    most = 0
    for chunk in text_array(tokens).chunks:  # read in the text's own buffers: offsets, then bytes
        if not len(chunk) or chunk.buffers()[2] is None:
            continue
        width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], width)[chunk.offset:chunk.offset + len(chunk) + 1]
        text = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
        if (text == ord("e")).any() or (text == ord("E")).any():
            return None
        starts = np.zeros(len(text) + 1, bool)  # where a cell starts, and where the text ends
        starts[offsets - offsets[0]] = True
        points = np.flatnonzero(text == ord("."))
        for decimals in range(1, MAX_DECIMALS + 1):  # the points with this many characters after them
            points = points[~starts[points + decimals]]
            if not len(points):
                break
            most = max(most, decimals)
    return most


def blocks_of(encoder: dict) -> tuple[tuple[str, int], ...]:
    blocks = []
    for spec in encoder["columns"]:
        if "constant" not in spec:
            if spec["kind"] in NUMERIC:
                blocks.append(("normal", 1))
            else:
                blocks.append(("softmax", 2 if spec["kind"] == "boolean" else len(spec["categories"])))
        if spec["missing"]:
            blocks.append(("softmax", 2))
    return tuple(blocks)


def table_blocks(encoder: dict) -> tuple[tuple[str, int], ...]:
    return tuple((kind, int(width)) for kind, width in encoder["blocks"])


def impute(columns: dict, masks: dict, kinds: dict) -> None:
    """Fills missing cells in place: median (numeric), most frequent value (others)."""
    for name, mask in list(masks.items()):
        if "\0" in name or not mask.any():
            continue
        present = columns[name][~mask]
        if kinds[name] in NUMERIC:
            fill = np.median(present)
            fill = np.round(fill) if kinds[name] == "integer" else fill
        elif isinstance(present, Coded):
            fill = present.most_frequent()
        else:
            values, counts = np.unique(present, return_counts=True)
            fill = values[np.argmax(counts)]
        columns[name] = fill_missing(columns[name], mask, fill)


def normal_ppf(u: np.ndarray) -> np.ndarray:
    """The standard normal quantile function."""
    return special.ndtri(np.asarray(u, np.float64))


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """The standard normal distribution function."""
    return special.ndtr(np.asarray(z, np.float64))


def column_quantiles(values: np.ndarray) -> list[float]:
    """The quantile knots of a numeric column: up to `NUM_QUANTILES` empirical quantiles at even
    levels, of every value, or of `QUANTILE_SAMPLE` values drawn at random (seeded) from a longer
    column, whose first and last knots are then the column's own least and greatest values (so
    decoding still reaches them, and the fit's cost stops growing with the rows)."""
    values = np.asarray(values, np.float64)
    levels = np.linspace(0, 1, min(NUM_QUANTILES, len(values)))
    if len(values) <= QUANTILE_SAMPLE:
        return sorted_quantiles(np.sort(values), levels).tolist()
    drawn = values[np.random.default_rng(0).integers(0, len(values), QUANTILE_SAMPLE)]
    knots = sorted_quantiles(np.sort(drawn), levels)
    knots[0], knots[-1] = values.min(), values.max()
    return knots.tolist()


def sorted_quantiles(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """`np.quantile(ordered, levels)` of sorted values, as NumPy computes it (linear between the
    order statistics, from the nearer one), by indexing: a sort is quicker than NumPy's selection
    of a thousand order statistics."""
    position = levels * (len(ordered) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(ordered) - 1)
    fraction = position - low
    below, above = ordered[low], ordered[high]
    step = above - below
    return np.where(fraction >= 0.5, above - step * (1 - fraction), below + step * fraction)


def to_normal(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Values -> standard normal through the empirical quantiles. Ties (repeated knots, as
    integers have) take the middle of their levels, so they decode back to themselves."""
    knots = np.asarray(quantiles, np.float64)
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values) > 4 * (knots[-1] - knots[0] + 3):
        # Integers over a narrower range than the rows: each integer's value once, then looked up.
        low, high = int(knots[0]) - 1, int(knots[-1]) + 1
        table = to_normal(np.arange(low, high + 1, dtype=np.float64), quantiles)
        return table[np.clip(values, low, high) - low]
    return normal_ppf(EPS + (1 - 2 * EPS) * np.clip(quantile_levels(np.asarray(values, np.float64), knots), 0.0, 1.0))


def quantile_levels(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """The level in [0, 1] of each value, piecewise linear between the knots (at even levels);
    a value equal to repeated knots takes the middle of their levels, and a value between two
    runs of them goes from the last level of one to the first of the next."""
    levels = np.linspace(0.0, 1.0, len(knots))
    if len(knots) < 2 or np.all(knots[1:] > knots[:-1]):
        return np.interp(values, knots, levels)
    points, first = np.unique(knots, return_index=True)
    last = np.append(first[1:], len(knots)) - 1
    below, above = levels[first], levels[last]  # each point's first and last level
    index = np.searchsorted(points, values, side="right") - 1  # the last point at or below
    low, high = np.clip(index, 0, len(points) - 1), np.clip(index + 1, 0, len(points) - 1)
    span = points[high] - points[low]
    fraction = np.divide(values - points[low], span, out=np.zeros_like(values), where=span > 0)
    u = above[low] + np.clip(fraction, 0.0, 1.0) * (below[high] - above[low])
    u = np.where(values == points[low], 0.5 * (below[low] + above[low]), u)
    return np.where(index < 0, 0.0, u)


def from_normal(z: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """The inverse of `to_normal`: piecewise-linear through the same knots (uniform levels)."""
    knots = np.asarray(quantiles, np.float64)
    position = np.clip((normal_cdf(z) - EPS) / (1 - 2 * EPS), 0.0, 1.0) * (len(knots) - 1)
    index = np.clip(np.floor(position), 0, len(knots) - 2).astype(np.int64)
    fraction = position - index
    return knots[index] + fraction * (knots[index + 1] - knots[index])


def encode(table: dict, encoder: dict) -> np.ndarray:
    """The float32 `(N, D)` encoding of a table (the label column, if there, is left out;
    datetime columns as seconds since the Unix epoch or as `datetime64`). Missing cells (`NaN`
    or masked by `table["<name>\\0missing"]`) take their indicator's `missing` slot; their value
    slot holds whatever the table has there (the imputed value)."""
    return expand(*encode_compact(table, encoder), table_blocks(encoder))


def encode_compact(table: dict, encoder: dict) -> tuple[np.ndarray, np.ndarray]:
    """The encoding of a table as `encode` gives it, held compactly: `numbers`, float32 `(N, a)`,
    the value of each `("normal", 1)` block, and `codes`, int32 `(N, b)`, the index of the hot
    entry of each `("softmax", k)` block, both in block order (`expand` makes the full vectors;
    `expand_tensors` does it in a training pipeline, a batch at a time)."""
    blocks = table_blocks(encoder)
    count = len(table[encoder["columns"][0]["name"]]) if encoder["columns"] else 0
    numbers = np.empty((count, sum(kind == "normal" for kind, _ in blocks)), np.float32)
    codes = np.empty((count, len(blocks) - numbers.shape[1]), np.int32)
    number, code, places = 0, 0, []
    for spec in encoder["columns"]:  # where each column's blocks go
        spec_blocks = blocks_of({"columns": [spec]})
        places.append((spec, number, code))
        number += sum(kind == "normal" for kind, _ in spec_blocks)
        code += sum(kind != "normal" for kind, _ in spec_blocks)

    def encode_column(place):
        spec, number, code = place
        values = table[spec["name"]]
        values = values if isinstance(values, Coded) else np.asarray(values)
        if "constant" not in spec:
            if spec["kind"] in NUMERIC:
                values = epoch_seconds(values) if values.dtype.kind == "M" else values
                numbers[:, number] = to_normal(values, spec["quantiles"])
            else:
                categories = [False, True] if spec["kind"] == "boolean" else spec["categories"]
                codes[:, code] = category_codes(values, categories, spec["name"])
                code += 1
        if spec["missing"]:
            codes[:, code] = np.asarray(table.get(spec["name"] + "\0missing", np.zeros(len(values), bool)), bool)

    column_map(encode_column, places)
    return numbers, codes


def expand(numbers: np.ndarray, codes: np.ndarray, blocks) -> np.ndarray:
    """The float32 `(N, D)` vectors of a compact encoding (`encode_compact`)."""
    width = sum(size for _, size in blocks)
    x = np.zeros((len(numbers), width), np.float32)
    rows, offset, number, code = np.arange(len(numbers)), 0, 0, 0
    for kind, size in blocks:
        if kind == "normal":
            x[:, offset] = numbers[:, number]
            number += 1
        else:
            x[rows, offset + codes[:, code]] = 1.0
            code += 1
        offset += size
    return x


def expand_tensors(numbers, codes, blocks):
    """`expand` as TensorFlow ops, for one row (`(a,)`, `(b,)`) or a batch of them."""
    import tensorflow as tf

    parts, number, code = [], 0, 0
    for kind, size in blocks:
        if kind == "normal":
            parts.append(numbers[..., number:number + 1])
            number += 1
        else:
            parts.append(tf.one_hot(codes[..., code], size, dtype=tf.float32))
            code += 1
    return tf.concat(parts, axis=-1)


def category_codes(values: np.ndarray, categories: list, name: str) -> np.ndarray:
    """The index of each value in `categories`; DataError naming a value not among them."""
    try:
        return category_indices(values, categories)
    except KeyError as error:
        raise DataError(f"column {name!r} holds {error.args[0]!r}, which the encoder has not seen; "
                        f"accepted: {', '.join(map(str, categories))}") from None


def category_indices(values, categories: list) -> np.ndarray:
    """The index in `categories` of each value (int64); KeyError naming the first value not there.
    Searched in the sorted categories, for arrays of one kind (strings, numbers, booleans)."""
    if isinstance(values, Coded):
        return values.indices(categories)
    values, known = np.asarray(values), np.asarray(categories)
    same = values.dtype.kind == known.dtype.kind or {values.dtype.kind, known.dtype.kind} <= set("iu")
    if not same or values.dtype.kind not in "biuUf" or not len(values):
        lookup = {value: index for index, value in enumerate(categories)}
        return np.array([lookup[value.item() if hasattr(value, "item") else value] for value in values], np.int64)
    order = np.argsort(known, kind="stable")
    position = np.minimum(np.searchsorted(known[order], values), len(known) - 1)
    found = known[order][position] == values
    if not found.all():
        raise KeyError(values[np.argmin(found)].item())
    return order[position].astype(np.int64)


def labels(table: dict, encoder: dict) -> np.ndarray:
    """The label column as int64 class indices."""
    spec = encoder["label"]
    try:
        return category_indices(table[spec["name"]], spec["classes"])
    except KeyError as error:
        raise DataError(f"label column {spec['name']!r} holds {error.args[0]!r}, a class the model was not trained "
                        f"on; accepted: {', '.join(map(str, spec['classes']))}") from None


def decode(x: np.ndarray, encoder: dict, y: np.ndarray | None = None, with_missing: bool = False) -> dict:
    """The table an encoding stands for, in the original column order and dtypes; the label
    column is put back in its place from class indices `y` when given. Datetime columns come back
    as `datetime64` arrays (UTC) in the unit of their resolution: `D` for dates, `s`, `ms` or `us`
    for date-times (`datetime_unit`). With `with_missing`,
    each column that had missing values also gets `"<name>\\0missing"`, a bool mask of the
    cells decoded as missing (written empty in a CSV)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    table, offset = {}, 0
    for spec in encoder["columns"]:
        name, kind = spec["name"], spec["kind"]
        if "constant" in spec and kind == "datetime":
            table[name] = to_datetime64(np.full(n, spec["constant"]), spec)
        elif "constant" in spec:
            table[name] = np.full(n, spec["constant"], dtype=DTYPES[kind])
        elif kind in NUMERIC:
            values = from_normal(x[:, offset], spec["quantiles"])
            offset += 1
            table[name] = round_values(values, spec)
        else:
            width = 2 if kind == "boolean" else len(spec["categories"])
            index = np.argmax(x[:, offset:offset + width], axis=1)
            offset += width
            table[name] = index.astype(bool) if kind == "boolean" else np.asarray(spec["categories"], str)[index]
        if spec["missing"]:
            table[name + "\0missing"] = np.argmax(x[:, offset:offset + 2], axis=1) == 1
            offset += 2
    if y is not None and encoder["label"] is not None:
        classes = encoder["label"]["classes"]
        table[encoder["label"]["name"]] = np.asarray(classes, dtype=DTYPES[encoder["label"]["kind"]])[np.asarray(y)]
    order = [name for name in encoder["order"] if name in table]
    masks = {k: v for k, v in table.items() if "\0" in k} if with_missing else {}
    return {**{name: table[name] for name in order}, **masks}


DTYPES = {"continuous": np.float64, "integer": np.int64, "boolean": bool, "categorical": str}


def round_values(values: np.ndarray, spec: dict) -> np.ndarray:
    if spec["kind"] == "datetime":
        step = datetime_step(spec)
        return to_datetime64(np.round(np.clip(values, spec["quantiles"][0], spec["quantiles"][-1]) / step) * step, spec)
    if spec["kind"] == "integer":
        return np.clip(np.round(values), spec["quantiles"][0], spec["quantiles"][-1]).astype(np.int64)
    if spec.get("decimals") is not None:
        values = np.round(values, spec["decimals"])
    return np.clip(values, spec["quantiles"][0], spec["quantiles"][-1])


def decode_tensors(x, encoder: dict) -> dict:
    """`decode` as TensorFlow ops: column name -> float32 (continuous), int64 (integer), float64
    (datetime: seconds since the Unix epoch, UTC, rounded to the column's resolution as `decode`
    rounds it) or tf.string (categorical, boolean: the file's own tokens) tensors of shape (N,),
    plus `<name>_missing` (bool) for columns that had missing values."""
    import tensorflow as tf  # here: the NumPy side of this module needs no TensorFlow

    x = tf.cast(x, tf.float64)
    n = tf.shape(x)[0]
    outputs, offset = {}, 0
    for spec in encoder["columns"]:
        name, kind = spec["name"], spec["kind"]
        if "constant" in spec:
            outputs[name] = tf.fill([n], tensor_constant(spec, spec["constant"]))
        elif kind in NUMERIC:
            knots = tf.constant(spec["quantiles"], tf.float64)
            level = 0.5 * tf.math.erfc(-x[:, offset] / math.sqrt(2.0))
            position = tf.clip_by_value((level - EPS) / (1 - 2 * EPS), 0.0, 1.0)
            position = position * (len(spec["quantiles"]) - 1)
            index = tf.cast(tf.clip_by_value(tf.floor(position), 0, len(spec["quantiles"]) - 2), tf.int64)
            low, high = tf.gather(knots, index), tf.gather(knots, index + 1)
            values = low + (position - tf.cast(index, tf.float64)) * (high - low)
            values = tf.clip_by_value(values, spec["quantiles"][0], spec["quantiles"][-1])
            if kind == "integer":
                outputs[name] = tf.cast(tf.round(values), tf.int64)
            elif kind == "datetime":
                outputs[name] = tf.round(values / datetime_step(spec)) * datetime_step(spec)
            else:
                if spec.get("decimals") is not None:
                    values = tf.round(values * 10.0 ** spec["decimals"]) / 10.0 ** spec["decimals"]
                outputs[name] = tf.cast(values, tf.float32)
            offset += 1
        else:
            names = spec["tokens"] if kind == "boolean" else spec["categories"]
            index = tf.argmax(x[:, offset:offset + len(names)], axis=1)
            outputs[name] = tf.gather(tf.constant(names), index)
            offset += len(names)
        if spec["missing"]:
            outputs[name + "_missing"] = tf.equal(tf.argmax(x[:, offset:offset + 2], axis=1), 1)
            offset += 2
    return outputs


def tensor_constant(spec: dict, value):
    import tensorflow as tf

    if spec["kind"] == "boolean":
        return tf.constant(spec["tokens"][int(bool(value))])
    if spec["kind"] == "categorical":
        return tf.constant(str(value))
    if spec["kind"] == "datetime":
        return tf.constant(value, tf.float64)
    return tf.constant(value, tf.int64 if spec["kind"] == "integer" else tf.float32)


def label_tensors(y, encoder: dict):
    """Class indices -> the label column's values as a tensor (tf.string or int64)."""
    import tensorflow as tf

    spec = encoder["label"]
    if spec["kind"] == "integer":
        return tf.gather(tf.constant(spec["classes"], tf.int64), tf.cast(y, tf.int64))
    names = spec["tokens"] if spec["kind"] == "boolean" else spec["classes"]
    return tf.gather(tf.constant([str(name) for name in names]), tf.cast(y, tf.int64))


# --- text out --------------------------------------------------------------------------------


def cell_text(values: np.ndarray, spec: dict) -> list[str]:
    """Cells of one decoded column as CSV text, in the file's own form."""
    if spec["kind"] == "boolean":
        return [spec["tokens"][int(v)] for v in values]
    if spec["kind"] == "datetime":
        return datetime_text(values, spec)
    if spec["kind"] == "continuous":
        decimals = spec.get("decimals")
        return [f"{v:.{decimals}f}" if decimals is not None else repr(float(v)) for v in values]
    return [str(v) for v in values]


def column_specs(encoder: dict) -> dict:
    specs = {spec["name"]: spec for spec in encoder["columns"]}
    if encoder["label"] is not None:
        specs[encoder["label"]["name"]] = encoder["label"]
    return specs


def rows_of(table: dict, encoder: dict) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a decoded table; cells decoded as missing are written empty."""
    specs = column_specs(encoder)
    header = [name for name in encoder["order"] if name in table]
    cells = []
    for name in header:
        text = cell_text(table[name], specs[name])
        mask = table.get(name + "\0missing")
        if mask is not None:
            text = ["" if missing else cell for cell, missing in zip(text, mask)]
        cells.append(text)
    return header, [list(row) for row in zip(*cells)]


# --- a table from a file ---------------------------------------------------------------------


def load_csv(path: str, options: Options | dict | None = None, compact: bool = False) -> tuple[dict, dict]:
    """Reads a CSV file into `(arrays, encoder)`: `arrays` has `x` (float32 encoding), or with
    `compact` `numbers` and `codes` (see `encode_compact`), and `y` (label indices, when there is
    a label column); `encoder` is fit on the file unless `options` is an already fitted encoder (a
    `DataSpec.table`), which is then reused."""
    header, cells = read_columns(path, trim=False)
    scanned = column_map(scan_column, cells.values())
    cells = {name: text for name, (text, _, _) in zip(header, scanned)}
    masks = {name: mask for name, (_, mask, _) in zip(header, scanned)}
    parsed = {name: numbers for name, (_, _, numbers) in zip(header, scanned) if numbers is not None}
    del scanned
    fitted = options if isinstance(options, dict) else None
    if fitted is not None:
        kinds = {name: "ignore" for name in header}
        for spec in column_specs(fitted).values():
            if spec["name"] not in header:
                raise DataError(f"{path}: has no column {spec['name']!r}, which the model was trained on")
            kinds[spec["name"]] = spec["kind"]
        label = fitted["label"]["name"] if fitted["label"] else None
        return table_arrays(path, header, cells, kinds, label, fitted["missing"], fitted, masks=masks,
                            compact=compact, parsed=parsed)
    options = options or Options()
    kinds, label, missing, declared = resolve(path, header, cells, masks, options, parsed)
    return table_arrays(path, header, cells, kinds, label, missing, private=options.private, declared=declared,
                        masks=masks, compact=compact, parsed=parsed)


def table_arrays(source, header, cells: dict, kinds, label, missing, fitted=None, private: Private | None = None,
                 declared: dict | None = None, masks: dict | None = None, compact: bool = False,
                 parsed: dict | None = None):
    """`(arrays, encoder)` of text columns (`cells`, column name -> its cells, as `read_columns`
    gives; `masks`, their missing cells, when already known): the encoder is `fitted`, or fitted
    on the rows (through `private`'s mechanism from the `declared` domains, for a private run).
    `arrays` holds `x` (the encoding), or with `compact` `numbers` and `codes` (`encode_compact`);
    and `y`, the label's class indices, when there is a label. `cells` is emptied once its
    columns are parsed, so that their text is let go before the rows are encoded; `parsed`
    holds the numeric columns already read, name -> `(kind, values)` (see `resolve`): those
    values are taken where the column is of that kind."""
    tokens, formats = encoder_tokens(fitted), {}
    if private is not None:
        tokens = {name: tuple(column["tokens"]) for name, column in declared.items() if "tokens" in column}
        formats = {name: bounds_format(column["bounds"]) for name, column in declared.items()
                   if column.get("kind") == "datetime" and "bounds" in column}
    keep, given = np.ones(len(cells[header[0]]), bool), cells
    cells = {name: text_array(column) for name, column in cells.items() if kinds[name] != "ignore"}
    given.clear()
    missing_cells = masks or dict(zip(cells, column_map(missing_mask, cells.values())))
    parsed = {name: values for name, (kind, values) in (parsed or {}).items() if kinds.get(name) == kind}
    columns, masks = parse_columns(source, header, cells, missing_cells, kinds, label, tokens, formats, parsed)
    if label is not None:
        keep &= ~masks[label]
    if missing == "drop":
        for name, mask in masks.items():
            if "\0" not in name:
                keep &= ~mask
    if not keep.any():
        raise DataError(f"{source}: every row has a missing cell, so --missing=drop leaves nothing; "
                        "use --missing=impute")
    for name in list(columns):
        if kinds[name] == "continuous":  # the decimals the kept cells show
            columns[name + "\0tokens"] = present_cells(cells[name], masks[name] | ~keep)
    del cells
    pa.default_memory_pool().release_unused()  # the text's buffers, back to the system
    if not keep.all():
        columns = {name: (value[keep] if isinstance(value, (np.ndarray, Coded)) else value)
                   for name, value in columns.items()}
        masks = {name: (mask[keep] if isinstance(mask, np.ndarray) else mask) for name, mask in masks.items()}
    if private is None:
        impute(columns, masks, kinds)
        encoder = fitted or fit(source, header, columns, masks, kinds, label, missing)
    else:
        encoder = fit_private(source, header, columns, masks, kinds, label, missing, declared, private)
    table = {name: value for name, value in columns.items() if "\0" not in name}
    for spec in encoder["columns"]:
        if spec["missing"]:
            table[spec["name"] + "\0missing"] = masks[spec["name"]]
    del columns
    numbers, codes = encode_compact(table, encoder)
    arrays = {"numbers": numbers, "codes": codes} if compact else {"x": expand(numbers, codes, table_blocks(encoder))}
    if label is not None:
        arrays["y"] = labels(table, encoder)
    return arrays, encoder


def table_from_columns(name: str, table: dict, kinds: dict, label: str | None, fitted: dict | None = None,
                       private: Private | None = None, declared: dict | None = None):
    """`(arrays, encoder)` of an in-memory table (e.g. an embedded one), as `load_csv` gives;
    a private fit takes the columns' `declared` domains (as a schema's `declarations`)."""
    header = list(table)
    cells = {column: text_array(cell_strings(table[column])) for column in header}
    if private is not None:
        check_declared(name, header, declared, label)
    return table_arrays(name, header, cells, kinds, label, "impute", fitted, private, declared)


def cell_strings(values: np.ndarray) -> list[str]:
    if values.dtype.kind == "M":
        return ["" if gone else cell for cell, gone in zip(np.datetime_as_string(values).tolist(), np.isnat(values))]
    if values.dtype == bool:
        return ["true" if v else "false" for v in values]
    return [repr(float(v)) if values.dtype.kind == "f" else str(v) for v in values]
