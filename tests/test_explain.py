"""Why Kaplan and Chinchilla disagree: counting, compute range and protocol, measured on one sweep."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import workflows


def _sweep(rng: np.random.Generator) -> pd.DataFrame:
    """Two setups differing in warmup only, each an IsoFLOP design at four budgets; a = 0.45 and 0.51."""
    rows = []
    for setup, warmup, beta in (("A", "long", 0.28), ("B", "short", 0.36)):
        for budget in (1e17, 4e17, 1.6e18, 6.4e18):
            centre = np.sqrt(budget / 120)
            for n in centre * np.geomspace(0.25, 4, 5):
                d = budget / (6 * n)
                loss = (1.8 + 400 / n**0.34 + 400 / d**beta) * np.exp(0.004 * rng.standard_normal())
                rows.append({"setup": setup, "warmup": warmup, "N": n, "N_nonembed": n, "N_total": n + 3e7,
                             "D": d, "C": budget, "loss": loss})
    return pd.DataFrame(rows)


def test_cli_explain_measures_each_cause(tmp_path, capsys):
    from bayes_scaling.cli import main

    data = tmp_path / "sweep.csv"
    _sweep(np.random.default_rng(0)).to_csv(data, index=False)
    report = tmp_path / "report"
    assert main(["explain", str(data), "--by", "setup", "--counts", "N_total,N_nonembed", "--window", "3",
                 "--draws", "300", "--tune", "300", "--chains", "2", "--seed", "1", "--json",
                 "--report", str(report)]) == 0
    out = json.loads(capsys.readouterr().out)
    counting = {row["count"]: row for row in out["counting"]}
    assert set(counting) == {"N_total", "N_nonembed"}
    # adding a constant to N flattens the N term at small sizes: counting with it raises no a above the other
    assert counting["N_nonembed"]["a"] > counting["N_total"]["a"]
    assert len(out["windows"]) == 2 and out["windows"][0]["C"] < out["windows"][1]["C"]
    setups = {row["setup"]: row for row in out["protocol"]}
    assert setups["B"]["a"] > setups["A"]["a"]  # the truth: 0.51 against 0.45
    for row in setups.values():
        assert row["a_lower"] < row["a"] < row["a_upper"]
    (effect,) = out["effects"]
    assert (effect["factor"], effect["from"], effect["to"], effect["pairs"]) == ("warmup", "long", "short", 1)
    assert effect["delta_a"] > 0 and 0 <= effect["p_moves"] <= 1  # a(short) - a(long): +0.06 in truth
    assert [line.split(":")[0] for line in out["verdict"]] == ["Parameter counting", "Compute range", "Protocol"]
    html = (report / "index.html").read_text()
    assert "Why Kaplan and Chinchilla disagree" in html and (report / "a_by_compute.png").is_file()


def test_a_by_compute_plot():
    import matplotlib.pyplot as plt

    from bayes_scaling import plots

    windows = pd.DataFrame({"C": [1e17, 1e18, 1e19], "a": [0.6, 0.55, 0.5], "a_lower": [0.5, 0.5, 0.45],
                            "a_upper": [0.7, 0.6, 0.55]})
    ax = plots.plot_a_by_compute(windows)
    assert ax.get_xscale() == "log" and {0.73, 0.5} <= {line.get_ydata()[0] for line in ax.get_lines()}
    plt.close("all")


def test_explain_input_errors():
    frame = _sweep(np.random.default_rng(1))
    with pytest.raises(ValueError, match="column 'N_embed' is not in the data"):
        workflows.explain(frame, counts=["N_total", "N_embed"])
    with pytest.raises(ValueError, match="two or more parameter-count columns"):
        workflows.explain(frame, counts=["N_total"], window=100)
    with pytest.raises(ValueError, match="window must be at least 2"):
        workflows.explain(frame, window=1)
