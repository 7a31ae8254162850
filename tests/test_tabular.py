"""Tables: reading CSV files, kind inference and schemas, missing values, the quantile-normal
encoder and its NumPy and TensorFlow decoders, dates and date-times, the embedded purchases
table, and the train, sample, export and blend commands on tables, and bad input."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from conftest import run_tool
from synthblend.datasets import embedded, frames, sources, tabular
from test_export import run_in_session
from test_train import TINY, run_train
from synthblend.trainers import blend, evaluate, export, sample
from synthblend.zoo.registry import DataError, UsageError


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def purchases_csv(path, num=300, seed=5):
    table = embedded.purchases(num, seed)
    rows = [[("true" if v else "false") if isinstance(v, (bool, np.bool_)) else v for v in row]
            for row in zip(*table.values())]
    return write_csv(path, list(table), rows)


def test_purchases_round_trip_exact_for_categories_and_integers_and_tf_decode_agrees():
    rows = embedded.purchases(3000, 7)
    arrays, encoder = tabular.table_from_columns("p", rows, embedded.PURCHASE_KINDS, "churned")
    assert arrays["x"].dtype == np.float32 and arrays["x"].shape == (3000, 10)
    assert tabular.table_blocks(encoder) == (("softmax", 3),) + (("normal", 1),) * 4 + (("softmax", 3),)
    back = tabular.decode(arrays["x"], encoder, arrays["y"])
    assert list(back) == list(embedded.PURCHASE_COLUMNS)
    for name in ("segment", "age", "visits", "channel", "churned"):
        assert back[name].dtype == rows[name].dtype or back[name].dtype.kind == rows[name].dtype.kind
        np.testing.assert_array_equal(back[name], rows[name])
    for name in ("income", "basket_value"):
        assert back[name].dtype == np.float64
        np.testing.assert_allclose(back[name], rows[name], rtol=1e-5, atol=0.011)
    tensors = tabular.decode_tensors(tf.constant(arrays["x"]), encoder)
    assert tensors["age"].dtype == tf.int64 and tensors["income"].dtype == tf.float32
    assert tensors["segment"].dtype == tf.string
    for name in ("segment", "channel"):
        np.testing.assert_array_equal(tensors[name].numpy().astype(str), back[name])
    np.testing.assert_array_equal(tensors["age"].numpy(), back["age"])
    np.testing.assert_allclose(tensors["income"].numpy(), back["income"], rtol=1e-6)


def test_random_encodings_decode_alike_in_numpy_and_tensorflow_within_the_observed_range():
    rows = embedded.purchases(2000, 3)
    _, encoder = tabular.table_from_columns("p", rows, embedded.PURCHASE_KINDS, None)
    x = np.random.default_rng(0).normal(0, 2, (500, 12)).astype(np.float32)
    table = tabular.decode(x, encoder)
    tensors = tabular.decode_tensors(tf.constant(x), encoder)
    for name in ("age", "visits"):
        np.testing.assert_array_equal(tensors[name].numpy(), table[name])
        assert rows[name].min() <= table[name].min() and table[name].max() <= rows[name].max()
    np.testing.assert_allclose(tensors["basket_value"].numpy(), table["basket_value"], rtol=1e-6)
    assert rows["income"].min() <= table["income"].min() and table["income"].max() <= rows["income"].max()
    np.testing.assert_array_equal(tensors["churned"].numpy().astype(str), np.where(table["churned"], "true", "false"))


def test_quantile_transform_maps_a_skewed_column_to_a_standard_normal():
    values = np.random.default_rng(1).lognormal(0, 1.5, 5000)
    knots = np.quantile(values, np.linspace(0, 1, 1000)).tolist()
    z = tabular.to_normal(values, knots)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    np.testing.assert_allclose(tabular.from_normal(z, knots), values, rtol=1e-6)


def test_csv_kinds_missing_values_impute_and_drop(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["city", "n", "price", "member", "flat"],
                     [["Oslo", "3", "1.5", "yes", "7"], ["Rome", "", "2.25", "no", "7"],
                      ["Oslo", "5", "NA", "yes", "7"], ["", "4", "3.0", "no", "7"], ["Rome", "1", "0.5", "yes", "7"]])
    arrays, encoder = tabular.load_csv(str(path))
    kinds = {spec["name"]: spec["kind"] for spec in encoder["columns"]}
    assert kinds == {"city": "categorical", "n": "integer", "price": "continuous", "member": "boolean",
                     "flat": "integer"}
    assert {spec["name"] for spec in encoder["columns"] if spec["missing"]} == {"city", "n", "price"}
    # city (2) + indicator, n + indicator, price + indicator, member (2); flat is constant: no block
    assert arrays["x"].shape == (5, 2 + 2 + 1 + 2 + 1 + 2 + 2)
    table = tabular.decode(arrays["x"], encoder, with_missing=True)
    header, rows = tabular.rows_of(table, encoder)
    assert header == ["city", "n", "price", "member", "flat"]
    assert rows[1] == ["Rome", "", "2.25", "no", "7"] and rows[2] == ["Oslo", "5", "", "yes", "7"]
    assert rows[3] == ["", "4", "3.00", "no", "7"]
    dropped, encoder = tabular.load_csv(str(path), tabular.Options(missing="drop"))
    assert len(dropped["x"]) == 2 and not any(spec["missing"] for spec in encoder["columns"])


def test_schema_overrides_kinds_and_names_the_label(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["zip", "age", "churn", "id"],
                     [["0101", "30", "a", "1"], ["0202", "40", "b", "2"], ["0101", "50", "a", "3"]])
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": {"zip": "categorical", "id": "ignore"}, "label": "churn"}))
    dataset, spec = sources.load(f"csv:{path}", table=tabular.Options(schema=str(schema)))
    assert spec.num_classes == 2 and spec.class_names == ("a", "b") and spec.table_blocks == (
        ("softmax", 2), ("normal", 1))
    assert spec.loc == (0.0,) * 3 and spec.scale == (1.0,) * 3 and spec.value_range is None
    y = [int(e["y"]) for e in dataset.as_numpy_iterator()]
    assert y == [0, 1, 0]
    back = tabular.decode(np.stack([e["x"] for e in dataset.as_numpy_iterator()]), spec.table, np.array(y))
    assert list(back) == ["zip", "age", "churn"] and back["zip"].tolist() == ["0101", "0202", "0101"]
    _, half = sources.load(f"csv:{path}", "train[:2]", table=spec.table)
    assert half.num_examples == 2 and half.table == spec.table


BAD = [
    ("ragged", "a,b\n1,2\n3\n", {}, DataError, "line 3 has 1 cells, the header has 2"),
    ("text_in_numeric", "a,b\n1,x\n2,3\n", {"columns": {"b": "integer"}}, DataError,
     "line 2, column 'b': 'x' is not an integer"),
    ("all_missing", "a,b\n1,\n2,NA\n", {}, DataError, "column 'b' has no values"),
    ("empty", "", {}, DataError, "empty file"),
    ("header_only", "a,b\n", {}, DataError, "only a header row"),
    ("schema_column", "a,b\n1,2\n3,4\n", {"columns": {"c": "integer"}}, UsageError,
     "names column 'c', which"),
    ("schema_kind", "a,b\n1,2\n3,4\n", {"columns": {"a": "number"}}, UsageError,
     "kind 'number'; accepted: continuous, integer, categorical, boolean, datetime, ignore"),
    ("label_missing", "a,b\n1,2\n3,4\n", {"label": "c"}, UsageError, "label column 'c' is not a column"),
    ("label_continuous", "a,b\n1.5,2\n3.5,4\n", {"label": "a"}, UsageError,
     "label column 'a' is continuous; a label must be"),
    ("all_constant", "a,b\n1,x\n1,x\n", {}, DataError, "every column is constant"),
    ("non_utf8", b"a,b\n1,caf\xe9\n", {}, DataError, "line 2 is not UTF-8"),
    ("boolean_stray", "a,b\n1,yes\n2,maybe\n", {"columns": {"b": "boolean"}}, DataError,
     "'maybe', which is not a boolean"),
    ("datetime_text", "a,when\n1,2024-03-01\n2,soon\n", {"columns": {"when": "datetime"}}, DataError,
     "line 3, column 'when': 'soon' is not a date or date-time (the column is datetime; accepted: YYYY-MM-DD"),
    ("datetime_calendar", "a,when\n1,2024-03-01\n2,2024-02-30\n", {"columns": {"when": "datetime"}}, DataError,
     "line 3, column 'when': '2024-02-30' is not a date or date-time"),
    ("datetime_formats", "a,when\n1,2024-03-01\n2,2024-03-02 10:00\n", {"columns": {"when": "datetime"}},
     DataError, "line 3, column 'when': '2024-03-02 10:00' is written as YYYY-MM-DD hh:mm, the column as "
     "YYYY-MM-DD (line 2"),
    ("datetime_offsets", "a,when\n1,2024-03-01T10:00Z\n2,2024-03-01T10:00+02:00\n",
     {"columns": {"when": "datetime"}}, DataError, "line 3, column 'when': .* the column as "
     "YYYY-MM-DDThh:mmZ (line 2"),
]


@pytest.mark.parametrize("name,content,schema,error,message", BAD, ids=[case[0] for case in BAD])
def test_bad_tables_fail_with_one_line_naming_the_problem(tmp_path, name, content, schema, error, message):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    options = tabular.Options()
    if schema:
        (tmp_path / "schema.json").write_text(json.dumps(schema))
        options = tabular.Options(schema=str(tmp_path / "schema.json"))
    with pytest.raises(error, match=message.replace("(", r"\(").replace("[", r"\[")) as raised:
        sources.load(f"csv:{path}", table=options)
    assert "\n" not in str(raised.value)


def test_a_schema_can_ignore_a_column_even_an_empty_one(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["id", "note", "x"], [["1", "", "0.5"], ["2", "", "1.5"], ["3", "", "2.5"]])
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": {"id": "ignore", "note": "ignore"}}))
    _, spec = sources.load(f"csv:{path}", table=tabular.Options(schema=str(schema)))
    assert spec.table["order"] == ["x"] and spec.shape == (1,)


def test_a_run_on_a_changed_table_is_not_continued(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[str(i), "xy"[i % 2]] for i in range(40)])
    common = ["--model=gan", f"--dataset=csv:{path}", f"--model_dir={tmp_path / 'run'}", *TINY]
    assert run_train(*common)[0] == 0
    write_csv(path, ["a", "b"], [[str(i * 2), "xy"[i % 2]] for i in range(40)])
    code, _, err = run_train(*common[:-len(TINY)], *TINY[1:], "--train_steps=4")
    assert code == 2 and "the table's columns, kinds or values" in err


def test_missing_file_and_bad_flags_exit_2_with_one_line(tmp_path):
    code, _, err = run_train("--model=gan", f"--dataset=csv:{tmp_path / 'none.csv'}", f"--model_dir={tmp_path / 'r'}")
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_train("--model=gan", "--dataset=purchases", "--label_column=income",
                             f"--model_dir={tmp_path / 'r'}")
    assert code == 2 and "label column 'income' is continuous" in err


def test_an_unreadable_csv_or_schema_is_one_line(tmp_path, monkeypatch):
    table, schema = tmp_path / "t.csv", tmp_path / "s.json"
    table.write_text("a,b\n1,x\n2,y\n")
    schema.write_text("{}")

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tabular, "open", refuse, raising=False)
    with pytest.raises(DataError, match=r"csv:.*t.csv' cannot be read \(Permission denied\)"):
        tabular.read_csv(str(table))
    with pytest.raises(UsageError, match=r"--schema=.*s.json cannot be read \(Permission denied\)"):
        tabular.read_schema(str(schema))


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A conditional GAN trained for two steps on purchases, and its export."""
    root = tmp_path_factory.mktemp("table")
    code, _, err = run_train("--model=gan", "--dataset=purchases", "--conditional", f"--model_dir={root / 'run'}",
                             *TINY)
    assert code == 0, err
    code, _, err = run_tool(export.main, f"--model_dir={root / 'run'}", f"--export_dir={root / 'export'}")
    assert code == 0, err
    return root


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_sample_writes_the_table_as_csv_from_model_dir_and_export(table_run, tmp_path):
    for source in (f"--model_dir={table_run / 'run'}", f"--export_dir={table_run / 'export'}"):
        output = tmp_path / "s.csv"
        code, out, err = run_tool(sample.main, source, "--num_samples=10", "--chunk_size=4", "--class_balance=uniform",
                                  f"--output={output}", "--overwrite")
        assert code == 0, err
        rows = read_rows(output)
        assert rows[0] == list(embedded.PURCHASE_COLUMNS) and len(rows) == 11
        assert sorted(r[6] for r in rows[1:]) == ["false"] * 5 + ["true"] * 5
        assert all(r[0] in embedded.PURCHASE_SEGMENTS and r[1].isdigit() and r[5] in embedded.PURCHASE_CHANNELS
                   for r in rows[1:])
        float(rows[1][2])
    code, _, err = run_tool(sample.main, f"--model_dir={table_run / 'run'}", "--num_samples=4",
                            f"--output={tmp_path / 's.npz'}")
    assert code == 2 and "written as csv only" in err and not (tmp_path / "s.npz").exists()


def test_export_signatures_return_decoded_columns(table_run):
    path, metadata = export.read_export(str(table_run / "export"))
    assert metadata["columns"]["age"] == "int64" and metadata["columns"]["segment"] == "string"
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["sample"](num_samples=tf.constant(6), seed=tf.constant(1, tf.int64))
    assert outputs["age"].dtype == tf.int64 and outputs["income"].dtype == tf.float32
    assert outputs["segment"].dtype == tf.string and outputs["churned"].dtype == tf.string
    assert outputs["churned"].numpy().astype(str).tolist() == [
        ["false", "true"][int(label)] for label in outputs["labels"].numpy()]
    expected = tabular.decode(outputs["samples"].numpy(), metadata["data_spec"]["table"])
    np.testing.assert_array_equal(outputs["age"].numpy(), expected["age"])
    np.testing.assert_array_equal(outputs["channel"].numpy().astype(str), expected["channel"])
    served = run_in_session(path, {"sample_labels": {"labels": np.array([1, 0, 1], np.int32),
                                                     "seed": np.int64(2)}})["sample_labels"]
    assert served["churned"].astype(str).tolist() == ["true", "false", "true"]
    assert served["age"].dtype == np.int64 and served["income"].dtype == np.float32
    decoded = tabular.decode(served["samples"], metadata["data_spec"]["table"])
    np.testing.assert_array_equal(served["segment"].astype(str), decoded["segment"])
    np.testing.assert_array_equal(served["visits"], decoded["visits"])
    source = sample.ExportSource(str(table_run / "export"))
    assert source.spec.table_blocks == tabular.table_blocks(metadata["data_spec"]["table"])


def test_blend_writes_a_csv_with_a_source_column(table_run, tmp_path):
    real = purchases_csv(tmp_path / "real.csv")
    output = tmp_path / "b.csv"
    code, out, err = run_tool(blend.main, f"--dataset=csv:{real}", f"--model_dir={table_run / 'run'}",
                              "--num_examples=40", "--ratio=0.5", f"--output={output}")
    assert code == 0, err
    rows = read_rows(output)
    assert rows[0] == list(embedded.PURCHASE_COLUMNS) + ["source"] and len(rows) == 41
    real_rows = {tuple(r) for r in read_rows(real)[1:]}
    tagged_real = [r for r in rows[1:] if r[-1] == "real"]
    assert tagged_real and {r[-1] for r in rows[1:]} <= {"real", "synthetic"}
    # real rows come back as they were (integers and categories exactly, money to the cent)
    def same(row, real_row):
        texts = all(row[i] == real_row[i] for i in (0, 1, 3, 5, 6))
        return texts and all(abs(float(row[i]) - float(real_row[i])) < 0.05 for i in (2, 4))

    matched = [r for r in tagged_real if any(same(r, q) for q in real_rows)]
    assert len(matched) == len(tagged_real)


def test_evaluate_reports_table_scores_beside_their_floor(table_run, tmp_path):
    report_dir = tmp_path / "report"
    code, out, err = run_tool(evaluate.main, f"--export_dir={table_run / 'export'}", "--num_samples=300",
                              "--real_examples=2000", f"--report_dir={report_dir}")
    assert code == 0, err
    report = json.loads((report_dir / "report.json").read_text())
    fidelity = report["fidelity"]
    # real held-out rows against as many training rows score near 1; a two-step generator does not
    assert fidelity["column_shapes"]["real_floor"] > 0.9 and fidelity["pair_trends"]["real_floor"] > 0.85
    assert fidelity["column_shapes"]["synthetic"] < fidelity["column_shapes"]["real_floor"]
    assert set(report["column_shapes"]["columns"]) == set(embedded.PURCHASE_COLUMNS)
    usefulness = report["usefulness"]
    assert usefulness["label"] == "churned" and 0 <= usefulness["train_on_synthetic_test_on_real"] <= 1
    assert 0.6 < usefulness["train_on_real_test_on_real"] <= 1
    assert report["memorisation"]["exact_copies"] >= 0
    page = (report_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "column_shapes" in page
    assert "column_shapes" in out


def test_vae_trains_on_a_csv_table(tmp_path):
    real = purchases_csv(tmp_path / "real.csv", num=64)
    code, _, err = run_train("--model=vae", f"--dataset=csv:{real}", "--likelihood=gaussian",
                             f"--model_dir={tmp_path / 'vae'}", *TINY)
    assert code == 0, err
    record = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert record["data_spec"]["table"]["label"] is None and record["data_spec"]["shape"] == [12]


@pytest.mark.parametrize("column, words", [
    (["integer"], "expected a kind"),
    ({"kind": "integer", "categories": ["a"]}, "categories=['a']; expected a list of 1 to 500 distinct integers"),
    ({"kind": "integer", "bounds": [1.5, 3]}, "low <= high, whole numbers"),
    ({"kind": "continuous", "bounds": [5, 1]}, "bounds=[5, 1]; expected [low, high] with low <= high"),
    ({"kind": "continuous", "bounds": [0, float("inf")]}, "finite numbers"),
    ({"kind": "continuous", "bounds": [0, 1e39]}, "beyond the float32 range"),
    ({"kind": "categorical", "categories": ["a", "a"]}, "distinct strings"),
    ({"kind": "categorical", "bounds": [0, 1]}, "bounds do not apply to a categorical column; it takes categories"),
    ({"kind": "boolean", "tokens": ["yes", "YES"]}, "the words for false and true"),
    ({"kind": "boolean", "tokens": ["no", "NA"]}, "the words for false and true"),
    ({"kind": "continuous", "missing": "yes"}, "missing='yes'; expected true"),
    ({"kind": "continuous", "decimals": 12}, "decimals=12; expected a whole number from 0 to 8"),
    ({"kind": "date"}, "has kind 'date'; accepted: continuous"),
    ({"kind": "datetime", "bounds": ["2020-01-01", "soon"]}, "'soon' is not a date or date-time; expected [low, high]"),
    ({"kind": "datetime", "bounds": ["2020-01-01", 2024]}, "2024 is not a date or date-time"),
    ({"kind": "datetime", "bounds": ["2020-01-01", "2020-02-30"]}, "'2020-02-30' is not a date or date-time"),
    ({"kind": "datetime", "bounds": ["2024-12-31", "2020-01-01"]}, "expected [low, high] with low <= high"),
    ({"kind": "datetime", "bounds": ["2020-01-01", "2024-12-31 00:00"]}, "are written in two formats (YYYY-MM-DD, "
                                                                         "YYYY-MM-DD hh:mm)"),
    ({"kind": "datetime", "decimals": 2}, "decimals do not apply to a datetime column; it takes bounds, missing"),
], ids=["list", "integer categories", "integer bounds", "reversed", "infinite", "float32", "repeated",
        "foreign key", "same words", "missing word", "missing flag", "decimals", "kind", "datetime text bound",
        "datetime number bound", "datetime calendar bound", "datetime reversed", "datetime two formats",
        "datetime decimals"])
def test_a_column_declaration_that_cannot_be_read_is_one_line(tmp_path, column, words):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": {"age": column}}))
    with pytest.raises(UsageError) as caught:
        tabular.read_schema(str(schema))
    assert words in str(caught.value) and f"--schema={schema}: column 'age'" in str(caught.value)


DATED = [["2024-03-01", "2024-03-01T12:30:00", "2024-03-01 12:30", "2024-03-01T12:30:00.25+02:00", "20240301"],
         ["2024-03-05", "2024-03-02T01:00:05", "", "2024-03-01T13:30:00.5+02:00", "20240305"],
         ["", "2023-12-31T23:59:59", "2024-03-03 00:00", "2024-03-02T00:00:00.125+02:00", "20231231"],
         ["2025-01-31", "NA", "2024-03-04 08:15", "2024-03-02T00:00:01.000+02:00", "20250131"]]


def test_dates_and_date_times_are_inferred_in_one_format_and_integers_stay_integers(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["day", "at", "local", "zoned", "number"], DATED)
    _, encoder = tabular.load_csv(str(path))
    specs = {spec["name"]: spec for spec in encoder["columns"]}
    assert {name: spec["kind"] for name, spec in specs.items()} == {
        "day": "datetime", "at": "datetime", "local": "datetime", "zoned": "datetime", "number": "integer"}
    formats = {name: (spec["format"], spec["fraction"], spec["offset"]) for name, spec in specs.items()
               if spec["kind"] == "datetime"}
    assert formats == {"day": ("%Y-%m-%d", 0, None), "at": ("%Y-%m-%dT%H:%M:%S", 0, None),
                       "local": ("%Y-%m-%d %H:%M", 0, None), "zoned": ("%Y-%m-%dT%H:%M:%S", 3, "+02:00")}
    assert [specs[name]["missing"] for name in ("day", "at", "local", "zoned")] == [True, True, True, False]
    # seconds since the epoch, the offset applied; the encoded values are quantile-normal, not seconds
    assert specs["day"]["quantiles"][0] == 1709251200.0 and specs["zoned"]["quantiles"][0] == 1709289000.25
    assert tabular.infer_kind(["2024-03-01", "2024-03-01 10:00"]) == "categorical"
    assert tabular.infer_kind(["2024-03-01T10:00Z", "2024-03-01T10:00+00:00"]) == "categorical"
    assert tabular.infer_kind(["2024-03-01", "2024-02-30"]) == "categorical"
    assert tabular.infer_kind(["2024", "1999"]) == "integer" and tabular.infer_kind(["2024.5", "3"]) == "continuous"
    assert tabular.infer_kind(["2024/03/01", "2024/03/02"]) == "categorical"


def test_dates_round_trip_to_the_same_csv_text_and_tf_decode_agrees(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["day", "at", "local", "zoned", "number"], DATED)
    arrays, encoder = tabular.load_csv(str(path))
    table = tabular.decode(arrays["x"], encoder, with_missing=True)
    assert table["day"].dtype == np.dtype("datetime64[D]") and table["at"].dtype == np.dtype("datetime64[s]")
    assert table["zoned"].dtype == np.dtype("datetime64[ms]")
    assert str(table["zoned"][0]) == "2024-03-01T10:30:00.250"  # UTC
    header, rows = tabular.rows_of(table, encoder)
    expected = [["" if tabular.is_missing(cell) else cell for cell in row] for row in DATED]
    # fractional seconds are written with the most digits the column shows
    for row, cell in zip(expected, ("12:30:00.250", "13:30:00.500")):
        row[3] = row[3].replace(cell.rstrip("0"), cell)
    assert header == ["day", "at", "local", "zoned", "number"] and rows == expected
    np.testing.assert_allclose(tabular.encode(table, encoder), arrays["x"], atol=1e-6)
    tensors = tabular.decode_tensors(tf.constant(arrays["x"]), encoder)
    for name in ("day", "at", "local", "zoned"):
        assert tensors[name].dtype == tf.float64
        np.testing.assert_array_equal(tensors[name].numpy(), tabular.epoch_seconds(table[name]))
    x = np.random.default_rng(0).normal(0, 2, (300, arrays["x"].shape[1])).astype(np.float32)
    drawn, tensors = tabular.decode(x, encoder), tabular.decode_tensors(tf.constant(x), encoder)
    for name in ("day", "at", "local", "zoned"):
        np.testing.assert_allclose(tensors[name].numpy(), tabular.epoch_seconds(drawn[name]), rtol=0, atol=1e-6)
    assert drawn["day"].min() >= np.datetime64("2024-03-01") and drawn["day"].max() <= np.datetime64("2025-01-31")
    assert (tabular.epoch_seconds(drawn["local"]) % 60 == 0).all() and (tabular.epoch_seconds(drawn["day"]) % 86400
                                                                         == 0).all()
    text = tabular.cell_text(drawn["zoned"], tabular.column_specs(encoder)["zoned"])
    assert all(len(cell) == len("2024-03-01T12:30:00.250+02:00") and cell.endswith("+02:00") for cell in text)


def test_a_private_fit_takes_datetime_bounds_and_their_format(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("joined,at,n\n2021-05-01,2021-05-01 10:00,1\n2019-01-01,2021-05-02 11:30,2\n"
                    ",2021-05-03 12:00,3\n2022-07-04,2021-05-04 13:15,4\n")
    schema = tmp_path / "schema.json"
    declared = {"joined": {"kind": "datetime", "bounds": ["2020-01-01", "2024-12-31"], "missing": True},
                "at": {"kind": "datetime", "bounds": ["2021-01-01 00:00", "2021-12-31 23:59"]},
                "n": {"kind": "integer", "bounds": [0, 10]}}
    schema.write_text(json.dumps({"columns": declared}))
    options = tabular.Options(schema=str(schema), private=tabular.Private(lambda n: 1.0, 0))
    arrays, encoder = tabular.load_csv(str(path), options)
    specs = {spec["name"]: spec for spec in encoder["columns"]}
    assert (specs["at"]["format"], specs["joined"]["format"]) == ("%Y-%m-%d %H:%M", "%Y-%m-%d")
    assert encoder["private"]["histograms"] == 3
    _, rows = tabular.rows_of(tabular.decode(arrays["x"], encoder, with_missing=True), encoder)
    assert [row[0] for row in rows] == ["2021-05-01", "2020-01-01", "", "2022-07-04"]  # clamped to the bounds
    assert [row[1] for row in rows] == ["2021-05-01 10:00", "2021-05-02 11:30", "2021-05-03 12:00", "2021-05-04 13:15"]
    drawn = tabular.decode(np.random.default_rng(1).normal(0, 3, (400, arrays["x"].shape[1])), encoder)
    assert np.datetime64("2020-01-01") <= drawn["joined"].min() and drawn["joined"].max() <= np.datetime64("2024-12-31")
    assert drawn["at"].max() <= np.datetime64("2021-12-31T23:59")
    path.write_text("joined,at,n\n2021-05-01,2021-05-01T10:00,1\n")
    with pytest.raises(DataError, match=r"line 2, column 'at': '2021-05-01T10:00' is written as YYYY-MM-DDThh:mm, "
                                        r"the column as YYYY-MM-DD hh:mm \(its declared bounds\)"):
        tabular.load_csv(str(path), options)
    schema.write_text(json.dumps({"columns": {**declared, "joined": "datetime"}}))
    with pytest.raises(UsageError, match=r"declare in --schema: joined \(\"bounds\": \[first date, last date\]"):
        tabular.load_csv(str(path), options)


def test_a_dataframe_with_datetime_columns_round_trips_through_frames(tmp_path):
    frame = pd.DataFrame({"day": pd.to_datetime(["2024-03-01", "2024-03-04", None, "2024-02-28"]),
                          "at": pd.to_datetime(["2024-03-01 12:30:05", "2024-03-04 00:00:00", "2024-01-01 08:00:00",
                                                None]),
                          "n": [1, 2, 3, 4]})
    path, schema, dtypes = frames.write(frame, str(tmp_path / "data"), None)
    assert json.loads(open(schema).read())["columns"] == {"day": "datetime", "at": "datetime", "n": "integer"}
    arrays, encoder = tabular.load_csv(path, tabular.Options(schema=schema))
    back = frames.to_frame(tabular.decode(arrays["x"], encoder, with_missing=True), encoder, dtypes)
    pd.testing.assert_frame_equal(back, frame)
    np.testing.assert_array_equal(frames.encode(frame, encoder)["x"], arrays["x"])
    with pytest.raises(UsageError, match="column 'at' has dtype datetime64.*UTC.*, aware of a time zone; accepted: "
                                         "naive datetime64 columns"):
        frames.kind_of("at", frame["at"].dt.tz_localize("UTC").dtype)


def test_a_model_trained_on_dates_samples_them_in_the_file_format_and_range(tmp_path):
    days = np.datetime64("2024-01-01") + np.arange(40) * 3
    rows = [[str(day), f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i % 7:02d}", "xy"[i % 2]]
            for i, day in enumerate(days)]
    real = write_csv(tmp_path / "real.csv", ["day", "at", "tag"], rows)
    code, _, err = run_train("--model=gan", f"--dataset=csv:{real}", f"--model_dir={tmp_path / 'run'}", *TINY)
    assert code == 0, err
    output = tmp_path / "s.csv"
    code, _, err = run_tool(sample.main, f"--model_dir={tmp_path / 'run'}", "--num_samples=20", f"--output={output}")
    assert code == 0, err
    sampled = read_rows(output)
    assert sampled[0] == ["day", "at", "tag"] and len(sampled) == 21
    first, last = min(row[1] for row in rows), max(row[1] for row in rows)
    for row in sampled[1:]:
        assert len(row[0]) == 10 and str(days[0]) <= row[0] <= str(days[-1]), row
        assert len(row[1]) == 19 and row[1][10] == " " and first <= row[1] <= last, row
        np.datetime64(row[0]), np.datetime64(row[1])
    # Evaluate measures dates as numbers; an export returns them as seconds since the epoch.
    code, _, err = run_tool(evaluate.main, f"--model_dir={tmp_path / 'run'}", "--num_samples=20")
    assert code == 0, err
    code, _, err = run_tool(export.main, f"--model_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}")
    assert code == 0, err
    outputs = run_in_session(str(tmp_path / "export" / "1"), {"sample": {"num_samples": 4, "seed": 1}})["sample"]
    assert outputs["day"].dtype == np.float64
    assert days[0].astype("datetime64[s]").astype(np.int64) <= outputs["day"].min()
