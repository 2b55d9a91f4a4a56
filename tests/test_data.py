from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data import DataError, load_sweep


def frame(rows: int = 8) -> pd.DataFrame:
    n = np.geomspace(1e7, 1e9, rows)
    return pd.DataFrame({"N": n, "D": 20 * n, "loss": np.linspace(4.0, 2.5, rows)})


def test_valid_frame_gets_default_compute_and_keeps_extra_columns():
    df = frame()
    df["run"] = [f"r{i}" for i in range(len(df))]
    sweep = load_sweep(df)
    assert np.allclose(sweep.column("C"), 6 * df["N"] * df["D"])
    assert list(sweep.frame["run"]) == list(df["run"])
    assert len(sweep) == 8
    # the caller's frame is not modified
    assert "C" not in df.columns


def test_given_compute_column_is_kept():
    df = frame()
    df["C"] = 1e20
    assert np.all(load_sweep(df).column("C") == 1e20)


def test_missing_column_named():
    with pytest.raises(DataError, match=r"missing required column 'loss'.*found columns 'N', 'D'"):
        load_sweep(frame().drop(columns="loss"))


def test_non_numeric_value_names_column_and_row():
    df = frame().astype({"D": object})
    df.loc[2, "D"] = "lots"
    message = r"column 'D' \(tokens\) must be numeric; row 3 holds non-numeric values such as 'lots'"
    with pytest.raises(DataError, match=message):
        load_sweep(df)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_not_finite_value_names_rows(bad):
    df = frame()
    df.loc[[1, 4], "loss"] = bad
    with pytest.raises(DataError, match=r"column 'loss' .* must be finite; rows 2, 5"):
        load_sweep(df)


@pytest.mark.parametrize("column", ["N", "D", "loss"])
def test_non_positive_value_names_rows(column):
    df = frame()
    df.loc[0, column] = 0
    df.loc[3, column] = -1
    with pytest.raises(DataError, match=rf"column '{column}' .* must be > 0; rows 1, 4"):
        load_sweep(df)


def test_too_few_rows():
    with pytest.raises(DataError, match="at least 6 runs"):
        load_sweep(frame().head(5))


def test_unique_tokens_above_d_rejected():
    df = frame()
    df["unique_tokens"] = df["D"] / 2
    df.loc[6, "unique_tokens"] = df.loc[6, "D"] * 3
    with pytest.raises(DataError, match=r"'unique_tokens' must not exceed D.*row 7"):
        load_sweep(df)


def test_csv_files(tmp_path):
    good = tmp_path / "sweep.csv"
    frame().to_csv(good, index=False)
    assert load_sweep(good).source == str(good)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_sweep(empty)
    with pytest.raises(DataError, match="no such file"):
        load_sweep(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a directory"):
        load_sweep(tmp_path)


def test_wrong_type():
    with pytest.raises(DataError, match="expected a pandas DataFrame or a CSV path"):
        load_sweep([1, 2, 3])


def test_law_requirement_names_missing_column():
    sweep = load_sweep(frame())
    with pytest.raises(DataError, match=r"law 'data_constrained' needs column 'unique_tokens'"):
        sweep.require(bs.get_law("data_constrained").columns, law="data_constrained")


def test_demo_sweep_is_valid_and_covers_70m_to_16b():
    sweep = load_sweep(bs.load_demo())
    assert len(sweep) == 72
    assert sweep.column("N").min() == pytest.approx(7e7)
    assert sweep.column("N").max() == pytest.approx(1.6e10)


def test_common_column_names_are_recognised_and_recorded():
    df = frame().rename(columns={"N": "params", "D": "Tokens", "loss": "val_loss"})
    df["FLOPs"] = 6 * df["params"] * df["Tokens"]
    sweep = load_sweep(df)
    assert sweep.renamed == {"params": "N", "Tokens": "D", "FLOPs": "C", "val_loss": "loss"}
    assert np.allclose(sweep.column("N"), frame()["N"])


def test_explicit_mapping_and_ambiguity():
    df = frame().rename(columns={"N": "width_params"})
    sweep = load_sweep(df, columns={"width_params": "N"})
    assert sweep.renamed == {"width_params": "N"}
    two = frame().drop(columns="loss").assign(val_loss=3.0, train_loss=3.1)
    with pytest.raises(DataError, match="could each be 'loss'; say which with columns="):
        load_sweep(two)
    with pytest.raises(DataError, match="names 'nope', not in the data"):
        load_sweep(frame(), columns={"nope": "N"})
    with pytest.raises(DataError, match="targets must be among"):
        load_sweep(frame(), columns={"N": "params"})


def test_misnamed_column_gets_a_hint():
    with pytest.raises(DataError, match=r"missing required column 'loss' \(did you mean 'losses'\? pass columns="):
        load_sweep(frame().rename(columns={"loss": "losses"}))


def test_duplicate_rows_warn_with_row_numbers():
    df = pd.concat([frame(), frame().iloc[[2]]], ignore_index=True)
    with pytest.warns(bs.DataWarning, match="row 9 repeat earlier rows exactly .* were dropped"):
        sweep = load_sweep(df)
    assert len(sweep) == 8
    # a re-run with another loss is a replicate, kept; so is the same run under another label
    kept = pd.concat([frame(), frame().iloc[[2]].assign(loss=lambda f: f["loss"] * 1.01)], ignore_index=True)
    labelled = pd.concat([frame().assign(mix="a"), frame().iloc[[2]].assign(mix="b")], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.DataWarning)
        assert len(load_sweep(kept)) == 9 and len(load_sweep(labelled)) == 9


def test_unit_mistakes_are_detected():
    millions = frame().assign(N=lambda f: f["N"] / 1e6)
    with pytest.raises(DataError, match=r"N looks like it is in millions.*--n-units millions"):
        load_sweep(millions)
    np.testing.assert_allclose(load_sweep(millions, n_units="millions").column("N"), frame()["N"])
    with pytest.raises(DataError, match=r"D looks like it is in billions.*--d-units billions"):
        load_sweep(frame().assign(D=20.0))
    assert len(load_sweep(frame().assign(D=20.0), check_units=False)) == len(frame())  # the user's call
    ppl = frame().assign(loss=lambda f: np.exp(f["loss"]))
    with pytest.raises(DataError, match=r"--loss-units perplexity .Python: loss_units='perplexity'"):
        load_sweep(ppl)
    np.testing.assert_allclose(load_sweep(ppl, loss_units="perplexity").column("loss"), frame()["loss"])
    bits = frame().assign(loss=lambda f: f["loss"] / np.log(2))
    np.testing.assert_allclose(load_sweep(bits, loss_units="bits").column("loss"), frame()["loss"])
    with pytest.raises(DataError, match="loss_units must be one of"):
        load_sweep(frame(), loss_units="furlongs")


def test_binary_file_is_not_a_csv(tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DataError):
        load_sweep(path)
