"""CSV tables read a column at a time: the columnar reader against the line-by-line one, the
grammar of numbers, columns of categories held as codes, the quantile transform's fast paths and
sampled knots, and rows held compactly and expanded a batch at a time."""

import itertools
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from synthblend.datasets import pipeline, rows, sources, tabular

TEXTS = {
    "plain": "a,b,c\n1,x,2.5\n2,y,3.5\n",
    "quoted": 'a,b\n1,"x, with a comma"\n2,"two\nlines"\n3,"say ""hi"""\n',
    "bom_and_spaces": "\ufeffa , b\n 1 ,  x \n2,\ty\t\n",
    "blank_lines": "a,b\n1,x\n\n2,y\n\n",
    "missing_tokens": "a,b\n1,NA\n,n/a\nNaN,nULl\nNone,?\n",
    "one_column": "a\n1\n\n  \n2\n",
    "wide_unicode": "name,city\nZoë,Zürich\n李,北京\n",
    "crlf": "a,b\r\n1,x\r\n2,\"y\r\nz\"\r\n",
    "whitespace_line": "a,b\n1,x\n   \n2,y\n",
}


def cells_of(path, reader):
    header, columns = reader(str(path))
    return header, {name: columns[name].to_pylist() for name in header}


@pytest.mark.parametrize("name", list(TEXTS))
def test_the_columnar_reader_reads_what_the_line_reader_reads(tmp_path, name):
    path = tmp_path / "table.csv"
    path.write_bytes(TEXTS[name].encode())
    line_header, line_rows = tabular.read_csv(str(path))
    expected = {column: [row[i] for row in line_rows] for i, column in enumerate(line_header)}
    assert cells_of(path, tabular.read_columns) == (line_header, expected)
    assert tabular.holds_quote(str(path)) == ('"' in TEXTS[name])


@pytest.mark.parametrize("content, words", [
    ("a,b\n1,2\n3\n", "line 3 has 1 cells, the header has 2"),
    ("a,b\n1,2\n", None),
    (b"a,b\n1,\xff\n", "line 2 is not UTF-8"),
    ("a,a\n1,2\n", "appears twice"),
    ("a,b\n", "only a header row"),
])
def test_a_file_the_columnar_reader_refuses_gets_the_line_readers_message(tmp_path, content, words):
    path = tmp_path / "table.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if words is None:
        assert tabular.read_columns(str(path))[0] == ["a", "b"]
        return
    with pytest.raises(tabular.DataError, match=re.escape(words)):
        tabular.read_columns(str(path))


def test_arrows_numbers_are_the_numbers_python_reads_finite_in_ascii():
    # Every string of up to three characters from the pieces of numbers, and some longer forms.
    pieces = "0123456789.eE+-xXpPinfaINFA_ d"
    tokens = ["".join(chars) for chars in itertools.product(pieces, repeat=3)] + [
        "1.5e-3", "+.5", "-5.", "1e400", "0x1p3", "1_000", "١٢", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "+12", "007", "0x1F", "1e5", "1.0"]
    for token in (token for token in tokens if token == token.strip()):  # cells are stripped when read
        number = tabular.number_values([token])
        assert (number is not None) == tabular.is_number(token), token
        integer = tabular.integer_values([token])
        assert (integer is not None) == tabular.is_integer(token), token
        if integer is not None:
            assert integer[0] == int(token)
        if number is not None:
            assert number[0] == float(token)


def test_kinds_are_inferred_from_whole_columns():
    assert tabular.infer_kind(["1", "0", "1"]) == "boolean"
    assert tabular.infer_kind(["Yes", "no"]) == "boolean"
    assert tabular.infer_kind(["+3", "-4", "5"]) == "integer"
    assert tabular.infer_kind(["0x10", "3"]) == "categorical"
    assert tabular.infer_kind(["1", "2.5"]) == "continuous"
    assert tabular.infer_kind(["1", "inf"]) == "categorical"
    assert tabular.infer_kind(["a", "1"]) == "categorical"


def test_coded_columns_count_fill_and_look_up_as_string_arrays_do():
    strings = np.array(["b", "a", "c", "b", "a", "b"])
    coded = tabular.Coded.of(pa.array(strings.tolist()))
    assert np.array_equal(np.asarray(coded), strings) and len(coded) == 6
    assert np.array_equal(coded.distinct(), np.unique(strings))
    assert np.array_equal(coded[np.array([1, 4])].distinct(), ["a"])
    assert coded.most_frequent() == "b"
    assert tabular.Coded.of(pa.array(["z", "y", "z", "y"])).most_frequent() == "y"  # ties: the first sorted
    mask = np.array([True, False, False, False, False, True])
    assert np.array_equal(np.asarray(coded.filled(mask, "d")), np.where(mask, "d", strings))
    assert np.array_equal(tabular.category_indices(coded, ["c", "b", "a"]), [1, 2, 0, 1, 2, 1])
    with pytest.raises(KeyError, match="'c'"):
        tabular.category_indices(coded, ["a", "b"])
    # A value the rows no longer hold does not count.
    assert np.array_equal(tabular.category_indices(coded[strings != "c"], ["a", "b"]), [1, 0, 1, 0, 1])


def reference_normal(values, quantiles):
    """The quantile-normal transform as two interpolations, one from each side."""
    knots = np.asarray(quantiles, np.float64)
    levels = np.linspace(0.0, 1.0, len(knots))
    values = np.asarray(values, np.float64)
    u = 0.5 * (np.interp(values, knots, levels) - np.interp(-values, -knots[::-1], -levels[::-1]))
    return tabular.normal_ppf(tabular.EPS + (1 - 2 * tabular.EPS) * np.clip(u, 0.0, 1.0))


@pytest.mark.parametrize("kind", ["integers", "continuous", "rounded", "two_values"])
def test_the_quantile_transform_equals_two_sided_interpolation(kind):
    generator = np.random.default_rng(3)
    data = {"integers": generator.integers(-5, 20, 5000), "continuous": generator.normal(size=5000),
            "rounded": np.round(generator.exponential(size=5000), 1),
            "two_values": generator.integers(0, 2, 5000) * 7}[kind]
    knots = np.quantile(data.astype(np.float64), np.linspace(0, 1, 1000)).tolist()
    probes = np.concatenate([data, generator.integers(-40, 40, 200)]) if data.dtype.kind == "i" else np.concatenate(
        [data, generator.normal(size=200) * 5, np.asarray(knots)])
    np.testing.assert_allclose(tabular.to_normal(probes, knots), reference_normal(probes, knots), atol=1e-12)


def test_long_columns_take_knots_from_a_sample_keeping_their_extremes():
    values = np.random.default_rng(0).lognormal(0.0, 1.0, tabular.QUANTILE_SAMPLE * 3)
    knots = np.asarray(tabular.column_quantiles(values))
    assert len(knots) == tabular.NUM_QUANTILES and np.all(np.diff(knots) >= 0)
    assert knots[0] == values.min() and knots[-1] == values.max()
    # Inside the tails, each knot's level is within 0.5% of its exact level.
    levels = np.searchsorted(np.sort(values), knots[10:-10]) / len(values)
    np.testing.assert_allclose(levels, np.linspace(0, 1, tabular.NUM_QUANTILES)[10:-10], atol=0.005)
    assert knots.tolist() == tabular.column_quantiles(values)  # the same sample every time
    assert np.array_equal(tabular.column_quantiles(values[:1000]), np.quantile(values[:1000], np.linspace(0, 1, 1000)))


MIXED = ("age,plan,score,active,when,label\n" + "\n".join(
    f"{20 + i % 50},{['basic', 'pro', 'team'][i % 3] if i % 11 else ''},{i * 0.37 % 9:.2f},"
    f"{'yes' if i % 4 else 'no'},2024-01-{1 + i % 28:02d},{'abc'[i % 3]}" for i in range(300)) + "\n")


def test_compact_rows_expand_to_the_dense_encoding_in_numpy_and_tensorflow(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    options = tabular.Options(label="label")
    dense, encoder = tabular.load_csv(str(path), options)
    compact, same = tabular.load_csv(str(path), options, compact=True)
    assert same == encoder and set(compact) == {"numbers", "codes", "y"}
    assert compact["numbers"].dtype == np.float32 and compact["codes"].dtype == np.int32
    assert compact["numbers"].shape[1] + compact["codes"].shape[1] == len(encoder["blocks"])
    blocks = tabular.table_blocks(encoder)
    np.testing.assert_array_equal(tabular.expand(compact["numbers"], compact["codes"], blocks), dense["x"])
    np.testing.assert_array_equal(compact["y"], dense["y"])
    np.testing.assert_array_equal(tabular.expand_tensors(compact["numbers"], compact["codes"], blocks).numpy(),
                                  dense["x"])
    row = tabular.expand_tensors(compact["numbers"][7], compact["codes"][7], blocks).numpy()
    np.testing.assert_array_equal(row, dense["x"][7])


def test_a_csv_source_holds_compact_rows_and_yields_the_dense_examples(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    data, spec = sources.load(f"csv:{path}", table=tabular.Options(label="label"))
    dense, _ = tabular.load_csv(str(path), tabular.Options(label="label"))
    held = rows.rows_of(data)
    assert set(held.tensors) == {"numbers", "codes", "y"} and held.vectorised
    assert spec.shape == (dense["x"].shape[1],) and spec.num_examples == 300
    examples = next(iter(data.batch(300)))
    np.testing.assert_array_equal(examples["x"].numpy(), dense["x"])
    np.testing.assert_array_equal(examples["y"].numpy(), dense["y"])
    # Batches drawn by position expand each gathered batch: each is some rows of the table.
    kept, kept_spec, _, _ = sources.hold_out(data, spec, 0.1)
    assert rows.rows_of(kept).vectorised and kept_spec.num_examples == 270
    batch = next(iter(pipeline.training_dataset(kept, kept_spec, batch_size=32,
                                                scale=pipeline.scaling(kept_spec, None), seed=0)))
    assert batch["x"].shape == (32, dense["x"].shape[1])
    found = {row.tobytes() for row in dense["x"]}
    assert all(row.tobytes() in found for row in batch["x"].numpy())


def test_the_text_of_a_table_is_let_go_once_parsed(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    header, cells = tabular.read_columns(str(path))
    kinds = {name: tabular.infer_kind(tabular.present_cells(cells[name], tabular.missing_mask(cells[name])))
             for name in header}
    tabular.table_arrays(str(path), header, cells, kinds, "label", "impute")
    assert cells == {}


def test_missing_tokens_are_found_in_any_case():
    tokens = ["NA", "na", "nA", "N/a", "NAN", "nan", "NULL", "nUlL", "None", "NONE", "?", "", "x", "0", "nana"]
    mask = tabular.missing_mask(tokens)
    assert mask.tolist() == [tabular.is_missing(token) for token in tokens]
    assert pc.sum(pa.array(mask)).as_py() == 12


def test_a_scan_keeps_numeric_columns_as_written_and_strips_the_others():
    padded = [" 1", "2 ", "3"]
    text, mask, numbers = tabular.scan_column(padded)
    assert text.to_pylist() == ["1", "2", "3"] and numbers is None and not mask.any()
    text, mask, numbers = tabular.scan_column(["4", "-5", "+6"])
    assert numbers[0] == "integer" and numbers[1].tolist() == [4, -5, 6] and not mask.any()
    assert tabular.scan_column(["1.5", "2"])[2][0] == "continuous"
    text, mask, numbers = tabular.scan_column(["NA", " x ", "3"])
    assert numbers is None and mask.tolist() == [True, False, False] and text.to_pylist() == ["NA", "x", "3"]
    # 0/1 columns are boolean words, left to the kind inference.
    assert tabular.scan_column(["0", "1", "1"])[2] is None


def test_a_column_whose_first_cells_are_numbers_is_still_read_whole():
    many = [str(i) for i in range(3 * tabular.PROBE)]
    assert tabular.integer_values(many) is not None
    assert tabular.integer_values(many + ["x"]) is None and tabular.number_values(many + ["x"]) is None
    assert tabular.integer_values(["x"] + many) is None
    assert tabular.number_values(many[:-1] + ["0.5"])[-1] == 0.5
    assert tabular.infer_kind(many + ["0.5"]) == "continuous"


def test_decimals_are_read_from_the_texts_own_buffers():
    assert tabular.column_decimals(["1.25", "3", "4.5"]) == 2
    assert tabular.column_decimals(["1.", "2", ".5"]) == 1
    assert tabular.column_decimals(["1e3", "2.5"]) is None
    assert tabular.column_decimals(["0." + "1" * 12]) == tabular.MAX_DECIMALS
    assert tabular.column_decimals([]) == 0
    # A slice of a column, in two chunks: only its own cells count.
    sliced = pa.array(["9.1234", "1.5", "2"]).slice(1)
    assert tabular.column_decimals(pa.chunked_array([sliced, pa.array(["3.25"])])) == 2
    assert tabular.column_decimals(pa.chunked_array([pa.array(["3.25"]), sliced])) == 2


def test_a_table_loads_the_same_with_its_cells_padded(tmp_path):
    rows_ = [(str(i % 7), f"{i * 0.25:.2f}", ["a", "b", "c"][i % 3], ["no", "yes"][i % 2]) for i in range(60)]
    plain, padded = tmp_path / "plain.csv", tmp_path / "padded.csv"
    plain.write_text("n,x,c,b\n" + "".join(",".join(row) + "\n" for row in rows_))
    padded.write_text("n,x,c,b\n" + "".join(",".join(f" {cell}  " for cell in row) + "\n" for row in rows_))
    (plain_arrays, plain_encoder), (padded_arrays, padded_encoder) = (
        tabular.load_csv(str(path), tabular.Options(label="b")) for path in (plain, padded))
    assert plain_encoder == padded_encoder
    assert [spec["kind"] for spec in plain_encoder["columns"]] == ["integer", "continuous", "categorical"]
    np.testing.assert_array_equal(plain_arrays["x"], padded_arrays["x"])
    np.testing.assert_array_equal(plain_arrays["y"], padded_arrays["y"])
