"""The bayes-scaling command line: in-process for fits, a subprocess for the no-traceback error path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.datasets import demo_path
from bayes_scaling.laws import DEFAULT_LAW

FAST = ["--draws", "300", "--tune", "300", "--chains", "2", "--seed", "3"]


def test_fit_json_then_forecast_json(tmp_path, capsys):
    out = tmp_path / "fit.nc"
    assert main(["fit", str(demo_path()), "--law", "chinchilla", "--out", str(out), "--json", *FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["law"] == "chinchilla"
    assert set(payload["params"]) == {"E", "A", "B", "alpha", "beta", "sigma", "nu"}
    assert set(payload["params"]["alpha"]) == {"mean", "sd", "lower", "upper", "r_hat", "ess_bulk"}
    assert 0.25 < payload["params"]["alpha"]["mean"] < 0.45
    assert {"max_r_hat", "min_ess_bulk", "divergences"} <= set(payload["diagnostics"])
    assert out.exists()

    assert main(["forecast", str(out), "--N", "1e11", "--D", "2e12", "--N", "1e9", "--D", "2e10", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert len(points) == 2
    for p in points:
        assert p["pred_lower"] < p["lower"] <= p["median"] <= p["upper"] < p["pred_upper"]
    assert points[0]["median"] < points[1]["median"]

    # the saved fit is never replaced without --force
    assert main(["fit", str(demo_path()), "--out", str(out), *FAST]) == 2
    assert "exists; add --force" in capsys.readouterr().err

    # human-readable table
    assert main(["forecast", str(out), "--N", "1e11", "--D", "2e12"]) == 0
    text = capsys.readouterr().out
    assert "pred_lower" in text and "nats/token" in text


def test_fit_with_a_scatter_growing_toward_the_edges(capsys):
    assert main(["fit", str(demo_path()), "--scatter", "edges", *FAST]) == 0
    text = capsys.readouterr().out
    assert "sigma_edge_tpp" in text and "sigma_edge_N" in text
    assert "scatter grows toward the sweep's edges along tokens_per_param, N" in text
    # the extrapolation term is stated with its prior, and the default design's drift with its interval
    assert "extrapolation term (directional):" in text and "folds and the shared prior" in text
    assert "  drift " in text and "log-loss per sweep width, 90% [" in text
    assert main(["fit", str(demo_path()), "--scatter", "edges", "--group", "N", *FAST]) == 2
    assert "--scatter edges is for single fits" in capsys.readouterr().err


def test_demo_answers_the_question_in_words(capsys):
    assert main(["demo", *FAST]) == 0
    text = capsys.readouterr().out
    assert "What loss will a 100B model trained on 2T tokens reach?" in text
    assert "A 100B-parameter model trained on 2T tokens is expected to reach a loss of" in text
    assert "predictive interval" in text


def test_command_line_defaults_are_the_python_defaults():
    import inspect

    from bayes_scaling.cli import common, recipes
    from bayes_scaling.recipes import compare_recipes

    assert common.LAW == DEFAULT_LAW == "chinchilla_saturating"
    assert recipes.RECIPES_LAW == inspect.signature(compare_recipes).parameters["law"].default


def test_laws_lists_every_law(capsys):
    assert main(["laws", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"chinchilla", "kaplan", "compute", "data_constrained"} <= set(listed)
    assert listed["chinchilla"]["formula"] == "L = E + A / N^alpha + B / D^beta"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("N,D\n1,2\n", "missing required column 'loss'"),
        ("N,D,loss\n" + "1e9,2e10,abc\n" * 6, "column 'loss' (nats per token) must be numeric; rows 1, 2"),
        ("N,D,loss\n" + "-1e9,2e10,3\n" * 6, "column 'N' (parameters) must be > 0"),
        ("", "is empty"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "bayes_scaling.cli", "fit", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_fit_file_and_bad_arguments(tmp_path, capsys):
    assert main(["forecast", str(tmp_path / "none.nc"), "--N", "1e9", "--D", "1e10"]) == 2
    assert "no such fit file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["forecast", "x.nc", "--N", "-5"])
    assert exc.value.code == 2


def test_fit_other_law_with_priors_file(tmp_path, capsys):
    priors = tmp_path / "priors.toml"
    priors.write_text('a = 0.6\n[alpha]\ndist = "LogNormal"\nmu = -1.1\nsigma = 0.3\n')
    assert main(["fit", str(demo_path()), "--law", "allocation", "--priors", str(priors), "--json", *FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["law"] == "allocation"
    assert payload["params"]["a"]["mean"] == pytest.approx(0.6) and payload["params"]["a"]["r_hat"] is None
    beta, alpha = payload["params"]["beta"]["mean"], payload["params"]["alpha"]["mean"]
    assert beta / (alpha + beta) == pytest.approx(0.6, abs=0.01)

    bad = tmp_path / "bad.json"
    bad.write_text('{"gamma": 1}')
    assert main(["fit", str(demo_path()), "--law", "kaplan", "--priors", str(bad), *FAST]) == 2
    assert "law 'kaplan' has no parameter 'gamma'; its parameters are alpha_N" in capsys.readouterr().err


def test_fit_kaplan_json(capsys):
    assert main(["fit", str(demo_path()), "--law", "kaplan", "--json", *FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["params"]) == {"N_c", "D_c", "alpha_N", "alpha_D", "sigma", "nu"}
    assert payload["diagnostics"]["mean_tree_depth"] > 0


def test_column_mapping_units_and_strict(tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(demo_path()).rename(columns={"N": "n_params", "D": "tokens", "loss": "val"})
    df["val"] = df["val"] / np.log(2)  # bits per token
    path = tmp_path / "bits.csv"
    df.to_csv(path, index=False)
    args = ["fit", str(path), "--columns", "val=loss", "--loss-units", "bits", "--law", "params",
            "--draws", "20", "--tune", "20", "--chains", "2", "--seed", "1"]
    status = main([*args, "--strict"])
    captured = capsys.readouterr()
    assert "note: read column 'val' as loss, column 'n_params' as N, column 'tokens' as D" in captured.err
    assert status == 1 and "error: diagnostics failed for params" in captured.err  # 20 draws cannot converge
    assert main(args) == 0
    assert main(["fit", str(path), "--columns", "val"]) == 2
    assert "--columns must look like" in capsys.readouterr().err


def test_cli_defaults_are_the_library_defaults():
    """The CLI reads its defaults from the library, so the two cannot drift apart."""
    import inspect

    from bayes_scaling.cli import build_parser
    from bayes_scaling.comparison import DEFAULT_LAWS, DEFAULT_REGIONS
    from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
    from bayes_scaling.inference import Sampling

    parser = build_parser()
    args = parser.parse_args(["fit", "x.csv"])
    default = Sampling()
    assert (args.draws, args.tune, args.chains, args.seed, args.sampler) == (
        default.draws, default.tune, default.chains, default.seed, default.sampler)
    fit_defaults = inspect.signature(bs.fit).parameters
    assert args.law == fit_defaults["law"].default and args.likelihood == fit_defaults["likelihood"].default
    assert args.method == fit_defaults["method"].default
    assert args.geometry == fit_defaults["geometry"].default == "slopes"
    assert parser.parse_args(["fit", "x.csv", "--geometry", "natural"]).geometry == "natural"
    plan = parser.parse_args(["plan", "compute", "f.nc", "--C", "1e22"])
    assert plan.flops_per_token == FLOPS_PER_PARAM_TOKEN
    assert inspect.signature(bs.forecast).parameters["prob"].default is None  # None: the one default below
    assert plan.prob == bs.intervals.default_prob() == 0.9
    assert parser.parse_args(["compare", "x.csv"]).laws == ",".join(DEFAULT_LAWS)
    assert DEFAULT_REGIONS  # the compare command falls back to these when no --region is given
