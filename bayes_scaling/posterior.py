"""The :class:`Fit` result: a law's posterior and everything needed to use it (summary, forecast, save/load).

:func:`bayes_scaling.fitting.fit` makes one; :func:`load` reads one back from disk. Analyses (forecasts,
planning, comparison) are functions of a ``Fit``.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import Sweep, centred_logs, load_sweep
from bayes_scaling.inference import Diagnostics, diagnose
from bayes_scaling.intervals import IntervalTable, check_prob, interval_table
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.likelihoods import get_noise_model
from bayes_scaling.model import OBSERVED, pooled_names
from bayes_scaling.priors import Prior, as_prior
from bayes_scaling.scatter import edge_names, scatter_at

__all__ = ["Fit", "FitFileError", "SummaryTable", "attach_observations", "load", "load_fit", "package_versions",
           "read_saved", "write_saved"]

_META_KEY = "bayes_scaling"
#: 2: the sweep is stored as the ``constant_data`` group (one variable per column, dimension ``run``); files of
#: format 1 (the sweep as JSON text in the metadata) still load.
_FORMAT_VERSION = 2
#: The group of a saved fit that holds its sweep.
SWEEP_GROUP = "constant_data"


class FitFileError(ValueError):
    """A saved fit cannot be read (missing, corrupted, or not written by bayes_scaling)."""


def package_versions() -> dict[str, str]:
    """Installed versions of this package and the libraries a fit depends on (kept in ``Fit.info``)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    # Read once a process: looking them up cost 90 ms a fit, more than a warm Laplace fit's sampling.
    out = {}
    for package in ("bayes_scaling", "pymc", "pytensor", "arviz", "nutpie", "numpy"):
        try:
            out[package] = metadata.version(package.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out.items())


#: Earlier name of the parameter table's class (now :class:`~bayes_scaling.intervals.IntervalTable`).
SummaryTable = IntervalTable


class Fit:
    """A law fitted to a sweep: the ArviZ posterior plus everything needed to use it.

    Attributes
    ----------
    law : ScalingLaw
    sweep : Sweep
    priors : dict of Prior
        The priors actually used (defaults merged with user overrides).
    likelihood : str
    reference : dict
        Reference scales ``N``, ``D``, ``C`` the parameters are centred on.
    idata : xarray.DataTree
        The ArviZ posterior (``posterior``, ``sample_stats``, ``log_likelihood``, ...).
    info : dict
        Seed, sampler, draws, timings and package versions.
    group : str or None
        For a fit pooled across groups (:func:`bayes_scaling.fit_hierarchical`): the column naming each run's
        group. Its group-level parameters then have a ``group`` dimension; :meth:`group_fit` gives one group's
        posterior as a plain fit for forecasts and plans.
    shared : tuple of str
        For a pooled fit: the parameters common to all groups.
    """

    def __init__(
        self,
        *,
        law: ScalingLaw,
        sweep: Sweep,
        priors: Mapping[str, Prior],
        likelihood: str,
        reference: Mapping[str, float],
        idata: Any,
        info: Mapping[str, Any] | None = None,
        group: str | None = None,
        shared: Sequence[str] = (),
    ) -> None:
        self.law = law
        self.sweep = sweep
        self.priors = dict(priors)
        self.likelihood = likelihood
        self.reference = dict(reference)
        self.idata = idata
        self.info = dict(info or {})
        self.group = group
        self.shared = tuple(shared)
        self._diagnostics: Diagnostics | None = None

    def __repr__(self) -> str:
        posterior = self.idata["posterior"]
        approximate = " APPROXIMATE (laplace)" if self.is_approximate else ""
        pooled = f" group={self.group!r} groups={len(self.groups)} shared={list(self.shared)}" if self.group else ""
        return (
            f"<Fit law={self.law.name!r} runs={len(self.sweep)} likelihood={self.likelihood!r} "
            f"chains={posterior.sizes.get('chain')} draws={posterior.sizes.get('draw')}{pooled}{approximate}>"
        )

    @property
    def groups(self) -> list[str]:
        """Group labels of a pooled fit (sorted); empty for a fit of one sweep."""
        if self.group is None:
            return []
        return [str(g) for g in self.idata["posterior"]["group"].values]

    def _require_single(self, what: str) -> None:
        if self.group is not None:
            raise ValueError(
                f"this fit is pooled across the groups of {self.group!r} ({', '.join(self.groups)}); {what} needs "
                "one group's posterior: use fit.group_fit(label)"
            )

    @property
    def is_approximate(self) -> bool:
        """Whether the posterior is an approximation (``method="laplace"``) rather than NUTS draws."""
        return self.info.get("method", "nuts") != "nuts"

    @property
    def noise_names(self) -> list[str]:
        """Names of the noise parameters (``sigma``, for Student-t ``nu``, and any growth of the scatter)."""
        return [*get_noise_model(self.likelihood).noise_names, *edge_names(self.info.get("scatter"))]

    def noise_at(self, points: pd.DataFrame, draws: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Noise draws at ``points``: ``sigma`` per draw and point (shape (draws, points)), ``nu`` per draw.

        The scatter is the same everywhere unless the fit's scatter grows toward the sweep's edges
        (``fit(scatter="edges")``, :mod:`bayes_scaling.scatter`). ``draws`` replaces the posterior's noise draws.
        """
        noise = dict(draws) if draws is not None else self.draws(self.noise_names)
        return scatter_at(noise, points, self.info.get("scatter"))

    @property
    def sampled_names(self) -> list[str]:
        """Parameters drawn by the sampler (fixed ones excluded; for a pooled fit, populations, spreads, offsets)."""
        noise = [n for n in self.noise_names if not self.priors[n].is_fixed]
        if self.group is not None:
            extra = ["sigma_seed"] if "sigma_seed" in self.idata["posterior"] else []
            return [*pooled_names(self.law, self.priors, self.shared, self.info.get("parameterization", "noncentred")),
                    *noise, *extra]
        return [n for n in self.law.param_names if not self.priors[n].is_fixed] + noise

    def draws(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Posterior draws as flat arrays (chains concatenated), by name."""
        posterior = self.idata["posterior"].to_dataset()
        names = list(names) if names is not None else list(posterior.data_vars)
        out = {}
        for name in names:
            if name not in posterior:
                raise KeyError(f"{name!r} is not in the posterior; it has {', '.join(posterior.data_vars)}")
            if "group" in posterior[name].dims:
                self._require_single(f"the draws of {name!r}, which vary by group,")
            out[name] = np.asarray(posterior[name].values, dtype=float).reshape(-1)
        return out

    def posterior_table(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Posterior draws as a table: one column per quantity, one row per draw (chains concatenated).

        Default quantities: the law's summary quantities (E, A, B, alpha, beta for Chinchilla), fixed ones left out.
        """
        if names is None:
            names = [n for n in self.law.summary_names if not (n in self.priors and self.priors[n].is_fixed)]
        return pd.DataFrame(self.draws(names))

    def log_mean(self, points: pd.DataFrame, *, draws: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Log of the law's mean loss at each point for each posterior draw: shape (draws, points).

        ``points`` holds the law's input columns; ``draws`` (parameter name -> array) replaces the posterior.
        """
        law = self.law
        missing = [c for c in law.columns if c not in points]
        if missing:
            raise ValueError(f"law {law.name!r} needs {', '.join(missing)} to forecast")
        params = draws if draws is not None else self.draws(law.param_names)
        x = centred_logs(law.inputs, {c: points[c].to_numpy() for c in points}, self.reference)
        p = {k: np.asarray(v)[:, None] for k, v in params.items()}
        xs = {k: v[None, :] for k, v in x.items()}
        return np.asarray(law.log_loss(np, p, xs))

    def log_likelihood(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-likelihood of each run's log-loss under each posterior draw: shape (draws, runs).

        ``frame`` holds the runs (the law's input columns and ``loss``); the density is that of the fit's noise
        model (:mod:`bayes_scaling.likelihoods`), the same as in the PyMC model.
        """
        mu = self.log_mean(frame)
        y = np.log(frame["loss"].to_numpy(dtype=float))[None, :]
        noise = {k: v if v.ndim == 2 else v[:, None] for k, v in self.noise_at(frame).items()}
        return get_noise_model(self.likelihood).logpdf(y - mu, noise)

    def diagnostics(self) -> Diagnostics:
        """R-hat, bulk ESS, divergences and tree depth of the sampled parameters (computed once)."""
        if self._diagnostics is None:
            self._diagnostics = diagnose(self.idata, self.sampled_names)
        return self._diagnostics

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Parameter table: mean, sd, equal-tailed interval at ``prob`` (``lower``/``upper``), R-hat and bulk ESS.

        Earlier releases gave an HDI as ``hdi_low``/``hdi_high``; those names still read the bounds (with a
        ``DeprecationWarning``), which are now equal-tailed like every other interval of the package.

        Rows are the law's classical parameters (e.g. E, A, B, alpha, beta for
        Chinchilla) followed by the noise parameters. A pooled fit's table is indexed by (parameter, group):
        shared parameters have group ``"(shared)"``, and ``<name>_tau`` rows give the spread across groups.
        """
        import arviz as az

        prob = check_prob(prob)
        if self.group is not None:
            return self._pooled_summary(prob)
        names = [*self.law.summary_names, *self.noise_names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # R-hat of a fixed parameter divides by zero
            table = az.summary(self.idata, var_names=names, ci_prob=prob, ci_kind="eti", round_to="none")
        table = table.astype(float)
        low, high = [c for c in table.columns if c.startswith("eti")][:2]
        table = table.rename(columns={low: "lower", high: "upper"})
        table = table[["mean", "sd", "lower", "upper", "r_hat", "ess_bulk"]]
        fixed = [n for n in names if self.priors.get(n) is not None and self.priors[n].is_fixed]
        table.loc[fixed, ["sd", "r_hat", "ess_bulk"]] = np.nan
        table.index.name = "parameter"
        return interval_table(table.loc[names], prob)

    def _pooled_summary(self, prob: float) -> pd.DataFrame:
        import arviz as az

        posterior = self.idata["posterior"]
        noise = [n for n in self.noise_names if n in posterior]
        spreads = [f"{n}_tau" for n in self.law.param_names if f"{n}_tau" in posterior]
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in [*self.law.summary_names, *noise, *spreads]:
                table = az.summary(self.idata, var_names=[name], ci_prob=prob, ci_kind="eti", round_to="none")
                table = table.astype(float)
                low, high = [c for c in table.columns if c.startswith("eti")][:2]
                labels = self.groups if "group" in posterior[name].dims else ["(shared)"]
                for label, (_, row) in zip(labels, table.iterrows(), strict=True):
                    rows.append({"parameter": name, "group": label, "mean": row["mean"], "sd": row["sd"],
                                 "lower": row[low], "upper": row[high], "r_hat": row["r_hat"],
                                 "ess_bulk": row["ess_bulk"]})
        return interval_table(pd.DataFrame(rows).set_index(["parameter", "group"]), prob)

    def group_fit(self, label: str) -> Fit:
        """The posterior of one group of a pooled fit as a plain :class:`Fit` (forecasts, planning).

        The group's runs are its sweep; shared parameters keep all their draws; its extrapolation term is the one
        learned from the group's own forward-chaining folds when the pooled fit was made.
        """
        import xarray as xr

        if self.group is None:
            raise ValueError("group_fit() needs a fit pooled across groups (bayes_scaling.fit_hierarchical)")
        if label not in self.groups:
            raise KeyError(f"no group {label!r}; groups: {', '.join(self.groups)}")
        posterior = self.idata["posterior"].to_dataset()
        keep = [*self.law.param_names, *self.law.derived, *[n for n in self.noise_names if n in posterior]]
        selected = xr.Dataset({
            name: posterior[name].sel(group=label, drop=True) if "group" in posterior[name].dims else posterior[name]
            for name in keep
        })
        tree = xr.DataTree.from_dict({"posterior": selected, "sample_stats": self.idata["sample_stats"].to_dataset()})
        sweep = self.sweep.subset(self.sweep.frame[self.group].astype(str).to_numpy() == label)
        info = {k: v for k, v in self.info.items() if k != "extrapolation_by_group"}
        info.update(hierarchical_group=label, group_column=self.group)
        term = self.info.get("extrapolation_by_group", {}).get(label)
        if term is not None:
            info["extrapolation"] = term
        result = Fit(law=self.law, sweep=sweep, priors=self.priors, likelihood=self.likelihood,
                     reference=self.reference, idata=tree, info=info)
        attach_observations(result, log_likelihood=len(sweep) <= 20_000)
        return result

    def forecast(self, *, N: Any = None, D: Any = None, C: Any = None, unique_tokens: Any = None,
                 experts: Any = None, prob: float | None = None, seed: int | None = 0) -> pd.DataFrame:
        """Forecast the loss at new points; see :func:`bayes_scaling.forecast.forecast`."""
        from bayes_scaling.forecast import forecast

        self._require_single("a forecast")

        return forecast(self, N=N, D=D, C=C, unique_tokens=unique_tokens, experts=experts, prob=prob, seed=seed)

    def to_dict(self, prob: float | None = None) -> dict[str, Any]:
        """JSON-friendly summary: law, parameters, diagnostics, info (pooled fits: parameters by group)."""
        prob = check_prob(prob)
        table = self.summary(prob)
        if self.group is not None:
            by_group: dict[str, dict[str, dict[str, float | None]]] = {}
            for (name, label), row in table.iterrows():
                by_group.setdefault(name, {})[label] = {key: _num(value) for key, value in row.items()}
            return {"law": self.law.name, "group_column": self.group, "groups": self.groups,
                    "shared": list(self.shared), "likelihood": self.likelihood, "runs": len(self.sweep),
                    "prob": prob, "interval": table.attrs["interval"], "params": by_group,
                    "diagnostics": self.diagnostics().to_dict(), "info": self.info}
        params = {
            name: {
                "mean": _num(row["mean"]),
                "sd": _num(row["sd"]),
                "lower": _num(row["lower"]),
                "upper": _num(row["upper"]),
                "r_hat": _num(row["r_hat"]),
                "ess_bulk": _num(row["ess_bulk"]),
            }
            for name, row in table.iterrows()
        }
        return {
            "law": self.law.name,
            "likelihood": self.likelihood,
            "runs": len(self.sweep),
            "prob": prob,
            "interval": table.attrs["interval"],
            "params": params,
            "diagnostics": self.diagnostics().to_dict(),
            "info": self.info,
        }

    # ------------------------------------------------------------------ save / load
    def _metadata(self) -> dict[str, Any]:
        return {
            "format_version": _FORMAT_VERSION,
            "law": self.law.name,
            "likelihood": self.likelihood,
            "priors": {k: v.to_dict() for k, v in self.priors.items()},
            "reference": self.reference,
            "sweep_columns": [str(c) for c in self.sweep.frame.columns],
            "sweep_source": self.sweep.source,
            "info": self.info,
            "group": self.group,
            "shared": list(self.shared),
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fit to a netCDF file; refuses to replace an existing file unless ``overwrite``.

        The file is written to a temporary name in the same folder and then published in one step (see
        :func:`bayes_scaling.outputs.write_file`): an interrupted save leaves nothing behind, and without
        ``overwrite`` a file that another process created in the meantime is never replaced.
        """
        import xarray as xr

        tree = self.idata.copy()
        meta = self._metadata()
        sweep = _sweep_dataset(self.sweep.frame)
        if sweep is None:  # column names netCDF cannot hold: the sweep goes into the metadata as JSON (format 1)
            meta["sweep"] = json.loads(self.sweep.frame.to_json(orient="split", index=False, double_precision=15))
        else:
            tree[SWEEP_GROUP] = xr.DataTree(sweep)
        return write_saved(path, tree, _META_KEY, meta, overwrite=overwrite)


def _sweep_dataset(frame: pd.DataFrame) -> Any:
    """The sweep as an xarray Dataset (one variable per column over ``run``), or None if netCDF cannot hold it."""
    import xarray as xr

    if any("/" in str(c) or str(c) in ("run", "") for c in frame.columns):
        return None
    data = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            data[str(column)] = ("run", values.to_numpy())
        else:  # labels: text, missing ones as empty strings
            data[str(column)] = ("run", np.array(["" if pd.isna(v) else str(v) for v in values], dtype=str))
    return xr.Dataset(data, coords={"run": np.arange(len(frame))})


def _sweep_frame(tree: Any, meta: Mapping[str, Any]) -> pd.DataFrame:
    """The saved sweep: from its group (format 2) or the metadata's JSON (format 1)."""
    if "sweep" in meta:
        return pd.DataFrame(**meta["sweep"])
    data = tree[SWEEP_GROUP].to_dataset()
    frame = pd.DataFrame({c: data[c].values for c in meta["sweep_columns"]})
    for column in frame.columns:
        if frame[column].dtype.kind in "OUS":
            frame[column] = frame[column].astype(object).where(frame[column] != "", np.nan)
    return frame


def attach_observations(result: Fit, *, log_likelihood: bool) -> None:
    """Add ``observed_data`` (log-loss per run) and, if asked, pointwise ``log_likelihood`` groups to its posterior."""
    import xarray as xr

    tree = result.idata
    runs = np.arange(len(result.sweep))
    observed = xr.Dataset({OBSERVED: ("run", np.log(result.sweep.column("loss")))}, coords={"run": runs})
    groups = {"observed_data": observed}
    if log_likelihood:
        posterior = tree["posterior"]
        shape = (posterior.sizes["chain"], posterior.sizes["draw"], len(runs))
        values = result.log_likelihood(result.sweep.frame).reshape(shape)
        groups["log_likelihood"] = xr.Dataset(
            {OBSERVED: (("chain", "draw", "run"), values)},
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values, "run": runs},
        )
    for name, dataset in groups.items():
        tree[name] = xr.DataTree(dataset)


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def write_saved(path: str | Path, idata: Any, key: str, meta: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write a posterior with its JSON metadata under ``key`` to netCDF.

    Atomic, and never replaces a file unless ``overwrite`` (see :func:`bayes_scaling.outputs.write_file`).
    """
    from bayes_scaling.outputs import write_file

    tree = idata.copy()
    text = json.dumps(meta)
    tree.attrs = {**{k: v for k, v in tree.attrs.items() if k != DIGEST}, key: text}
    tree.attrs[DIGEST] = content_digest(tree, text)
    return write_file(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"), overwrite=overwrite)


#: Attribute of a saved file holding :func:`content_digest` of its contents, checked on every load.
DIGEST = "bayes_scaling_sha256"


def content_digest(tree: Any, meta: str) -> str:
    """SHA-256 of every array (values, dtype, shape, coordinates) of every group of ``tree``, and of ``meta``.

    Stored in a saved file and recomputed on load: bytes damaged inside a posterior array leave a readable netCDF
    file with other numbers, which only a digest of the contents catches.
    """
    import hashlib

    digest = hashlib.sha256(meta.encode())
    for node in sorted(tree.subtree, key=lambda n: n.path):
        data = node.to_dataset()
        for name in sorted([*map(str, data.data_vars), *map(str, data.coords)]):
            values = np.asarray(data[name].values)
            text = values.dtype.kind in "OUS"  # netCDF may read text back as another string dtype
            items = [v for v in values.ravel().tolist() if v is not None and v == v and v != ""] if text else None
            if (text and not items) or (values.dtype.kind == "f" and np.isnan(values).all()):
                continue  # nothing stored (e.g. sampler messages that are all None, read back as NaN)
            digest.update(f"{node.path}/{name}:{'text' if text else values.dtype.str}:{values.shape}".encode())
            if text:
                digest.update("\x00".join(map(str, items)).encode())
            else:
                digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def read_saved(path: str | Path, key: str, *, what: str, label: str, hint: str = "") -> tuple[Any, dict[str, Any]]:
    """The posterior tree (without its metadata attribute) and the metadata of a file from :func:`write_saved`.

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, has no posterior, or lacks metadata under ``key``. ``what`` names the
        kind of file in messages ("fit"), ``label`` what a foreign file is not ("bayes_scaling fit"), ``hint`` how
        to make one.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"no such {what} file: {path}")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf").load()
    except Exception as exc:
        raise FitFileError(f"{path} is not a readable netCDF {what} file ({type(exc).__name__}: {exc})") from None
    raw = tree.attrs.get(key)
    if raw is None or "posterior" not in tree.children:
        raise FitFileError(f"{path} is a netCDF file but not a {label} (no {what} metadata or posterior){hint}")
    stored = tree.attrs.get(DIGEST)
    tree.attrs = {k: v for k, v in tree.attrs.items() if k not in (key, DIGEST)}
    if stored is not None and stored != content_digest(tree, raw):
        raise FitFileError(f"{path} is damaged: its contents no longer match the checksum written when it was saved "
                           f"(bytes changed inside the file); refit or restore a copy")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FitFileError(f"{path} holds damaged {what} metadata: {exc}") from None
    return tree, meta


def load_fit(path: str | Path) -> Fit:
    """Read a fit of a law written by :meth:`Fit.save` (nothing else: a link fit is refused).

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, corrupted, or not a fit of a law.
    """
    tree, meta = read_saved(path, _META_KEY, what="fit", label="bayes_scaling fit")
    try:
        law = get_law(meta["law"])
        frame = _sweep_frame(tree, meta)
        if SWEEP_GROUP in tree.children:
            tree = tree.copy()
            del tree[SWEEP_GROUP]  # the sweep lives in Fit.sweep (a save writes it again)
        sweep = load_sweep(frame, source=meta.get("sweep_source"), check_units=False,  # checked when fitted
                           drop_copies=False)
        priors = {k: as_prior(v, name=k) for k, v in meta["priors"].items()}
        return Fit(law=law, sweep=sweep, priors=priors, likelihood=meta["likelihood"], reference=meta["reference"],
                   idata=tree, info=meta.get("info", {}), group=meta.get("group"), shared=meta.get("shared", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise FitFileError(f"{path} holds damaged bayes_scaling metadata: {exc}") from None


#: The fit loader under its older name (:func:`bayes_scaling.load` reads every kind of saved file).
load = load_fit
