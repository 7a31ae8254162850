"""Tables: reading CSV files, kind inference and schemas, missing values, the quantile-normal
encoder and its NumPy and TensorFlow decoders, the embedded purchases table, and the train,
sample, export and blend commands on tables, and bad input."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool
from synthblend.datasets import embedded, sources, tabular
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
     "kind 'number'; accepted: continuous, integer, categorical, boolean, ignore"),
    ("label_missing", "a,b\n1,2\n3,4\n", {"label": "c"}, UsageError, "label column 'c' is not a column"),
    ("label_continuous", "a,b\n1.5,2\n3.5,4\n", {"label": "a"}, UsageError,
     "label column 'a' is continuous; a label must be"),
    ("all_constant", "a,b\n1,x\n1,x\n", {}, DataError, "every column is constant"),
    ("non_utf8", b"a,b\n1,caf\xe9\n", {}, DataError, "line 2 is not UTF-8"),
    ("boolean_stray", "a,b\n1,yes\n2,maybe\n", {"columns": {"b": "boolean"}}, DataError,
     "'maybe', which is not a boolean"),
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
], ids=["list", "integer categories", "integer bounds", "reversed", "infinite", "float32", "repeated",
        "foreign key", "same words", "missing word", "missing flag", "decimals", "kind"])
def test_a_column_declaration_that_cannot_be_read_is_one_line(tmp_path, column, words):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"columns": {"age": column}}))
    with pytest.raises(UsageError) as caught:
        tabular.read_schema(str(schema))
    assert words in str(caught.value) and f"--schema={schema}: column 'age'" in str(caught.value)
