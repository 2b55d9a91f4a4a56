"""The public reference sweeps: where each comes from, what it holds, and how its source files become a table.

Every dataset is a :class:`Dataset` entry in :data:`CATALOG`. Its prepared table has columns ``N``
(parameters), ``D`` (training tokens), ``C`` (training FLOPs, 6·N·D) and ``loss`` (nats per token), plus
the dataset's grouping and run-id columns. A prepared copy (``<name>/data.csv``, the layout of the
project's ``shared/data`` folder) is read as it is; the original source files, fetched from the
authors' repositories at a pinned commit and checked against SHA-256 sums, are converted by the
entry's ``convert`` function (see :mod:`bayes_scaling.datasets.fetch`).

Some sweeps also logged the loss along training: their entry's ``curves`` is a second table of the same dataset
(``kind="curves"``, one row per logged point, its own prepared file and source files), loaded by
:func:`bayes_scaling.datasets.load_curves` for :func:`bayes_scaling.curves.fit_curves`.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CATALOG", "Dataset", "DatasetError", "SourceFile", "canonical_sha256", "notebook_tables"]

TOKENS_PER_STEP_CLARK = 256 * 2048  # sequences x tokens per step (our reading of Clark et al. 2022)


class DatasetError(ValueError):
    """A dataset is unknown, cannot be found or fetched, or its files fail their checksum."""


#: The columns every loaded sweep has (``Dataset.required`` of a ``kind="sweep"`` dataset).
SWEEP_COLUMNS = ("N", "D", "C", "loss")


@dataclass(frozen=True)
class SourceFile:
    """One original file: where it lives publicly and how it is checked.

    ``sha256`` is the sum of the file's bytes. A file whose bytes are not pinned (a notebook, whose
    outputs and metadata are not the data) has ``content_sha256`` instead: the sums of the canonical
    JSON of the tables extracted from it, by table name.
    """

    path: str
    url: str
    sha256: str | None = None
    content_sha256: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Dataset:
    """A public sweep.

    Attributes
    ----------
    name : str
        Registry name, ``load(name)``.
    title : str
        What the runs are.
    citation : str
        The paper to cite.
    origin : str
        Repository and commit the source files come from.
    license : str
        The data's licence as its repository states it.
    loss : str
        Which loss the ``loss`` column holds (units: nats per token).
    groups : tuple of str
        Columns that split the table into separate sweeps (fit per group, or hierarchically).
    run_id : str
        Column naming each run.
    default_query : str
        A :meth:`pandas.DataFrame.query` selecting the rows suited to a plain L(N, D) fit ("" for all).
    notes : str
        Quirks a user must know.
    rows : int
        Rows of the prepared table.
    shared_sources : mapping
        Source-path prefix -> the dataset whose vetted copy holds those files (the same files at the same commit,
        e.g. gadre2024_downstream's model records are gadre2024's); downloads fetch them into this dataset's folder.
    complete : callable, optional
        Adds columns of constants (e.g. each task's chance error and test items) to every loaded table, however
        it was found.
    kind : {"sweep", "curves"}
        ``"sweep"``: one row per run with ``N``, ``D``, ``C``, ``loss`` (for :func:`bayes_scaling.load_sweep`);
        ``"curves"``: one row per logged point of training-loss curves, ``step``, ``loss`` and the run
        (``run_id``; ``lr`` too where the source logs it), for :func:`bayes_scaling.curves.fit_curves`.
    table : str
        The prepared table's file name in the dataset's folder (``data.csv``; a ``curves`` table has its own).
    manifest_key : str
        The key of the source files in ``sources.json`` (default: the name; a ``curves`` table's is
        ``<name>/curves``).
    curves : Dataset, optional
        The same runs' losses along training, where the source logged them (``kind="curves"``; see
        :func:`bayes_scaling.datasets.load_curves`).
    schedules : str
        For a ``curves`` table: the schedule set of :mod:`bayes_scaling.schedules` that gives each run's learning
        rate at every step ("" where the source does not say; give each run's schedule yourself).
    """

    name: str
    title: str
    citation: str
    origin: str
    license: str
    loss: str
    groups: tuple[str, ...]
    run_id: str
    default_query: str
    notes: str
    rows: int
    convert: Callable[[Path], pd.DataFrame] | None = field(default=None, repr=False)
    shared_sources: Mapping[str, str] = field(default_factory=dict)
    complete: Callable[[pd.DataFrame], pd.DataFrame] | None = field(default=None, repr=False)
    kind: str = "sweep"
    table: str = "data.csv"
    manifest_key: str = ""
    curves: Dataset | None = field(default=None, repr=False)
    schedules: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        """The columns every loaded table of this dataset has."""
        if self.kind == "curves":
            return (*self.groups, self.run_id, "step", "loss")
        return SWEEP_COLUMNS

    def vetted_copy(self, root: Path, source_path: str) -> Path:
        """Where the vetted copy of a source file lives under a ``shared/data``-style ``root``."""
        owner = next((name for prefix, name in self.shared_sources.items() if source_path.startswith(prefix)),
                     self.name)
        return root / owner / source_path

    @property
    def sources(self) -> tuple[SourceFile, ...]:
        """The checksummed source files (empty where no original file can be fetched and converted)."""
        return tuple(SourceFile(**item) for item in _manifest().get(self.manifest_key or self.name, []))

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly description."""
        return {
            "name": self.name, "title": self.title, "citation": self.citation, "origin": self.origin,
            "license": self.license, "loss": self.loss, "groups": list(self.groups), "run_id": self.run_id,
            "default_query": self.default_query, "rows": self.rows, "kind": self.kind,
            "downloadable": bool(self.sources),
            "notes": self.notes, "table": self.table, "schedules": self.schedules,
            "curves": None if self.curves is None else self.curves.to_dict(),
        }


def _manifest() -> dict[str, list[dict[str, str]]]:
    text = resources.files("bayes_scaling.datasets").joinpath("sources.json").read_text()
    return json.loads(text)


# ---------------------------------------------------------------------------------------------- converters
def _chinchilla(folder: Path) -> pd.DataFrame:
    src = pd.read_csv(folder / "source.csv")
    n, c = src["Model Size"].astype(float), src["Training FLOP"].astype(float)
    return pd.DataFrame({"N": n, "D": c / (6 * n), "C": c, "loss": src["loss"].astype(float)})


_CLARK_LOSSES = ("loss_c4", "loss_curation_corpus", "loss_lambada", "loss_pile", "loss_validation",
                 "loss_wikitext103")


def _clark_points(folder: Path) -> pd.DataFrame:
    """Every evaluation of every run after step 0 with all six eval losses (the ``curves`` table)."""
    with gzip.open(folder / "source.csv.gz", "rt") as handle:
        src = pd.read_csv(handle)
    losses = list(_CLARK_LOSSES)
    src = src[(src["step"] > 0) & src[losses].notna().all(axis=1)]
    src = src.sort_values(["hyper_id", "step"], kind="stable")
    n = src["dense_parameter_count"].astype(float)
    d = src["step"].astype(float) * TOKENS_PER_STEP_CLARK
    out = pd.DataFrame({
        "hyper_id": src["hyper_id"], "router_type": src["router_type"],
        "model_size_label": src["model_size_label"], "num_experts": src["num_experts"], "k": src["k"],
        "routing_frequency": src["routing_frequency"], "flop_increase": src["flop_increase"],
        "seed": src["seed"], "step": src["step"], "N": n, "P_total": src["total_parameter_count"].astype(float),
        "D": d, "C": 6 * n * d, "loss": src["loss_validation"],
        **{col: src[col] for col in losses},
        **{col: src[col] for col in ("d_model", "num_blocks", "num_heads", "kqv_size", "flops_per_step")},
    })
    return out.reset_index(drop=True)


def _clark(folder: Path) -> pd.DataFrame:
    """The last complete evaluation of each run (the sweep)."""
    return _clark_points(folder).groupby("hyper_id", sort=True).tail(1).reset_index(drop=True)


_GADRE_EVALS = {
    "openlm": "loss_openlm", "c4_val": "loss_c4_val", "paloma_c4_en": "loss_paloma_c4_en",
    "paloma_dolma_100_programing_languages": "loss_paloma_dolma_100_programming_languages",
    "paloma_falcon-refinedweb": "loss_paloma_refinedweb", "paloma_ptb": "loss_paloma_ptb",
    "paloma_redpajama": "loss_paloma_redpajama", "de-en": "loss_c4_german",
}


def _gadre(folder: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((folder / "source" / "models").glob("*.json")):
        record = json.loads(path.read_text())
        hp = record["hyperparameters"]
        row = {
            "name": record["name"], "dataset": record["dataset_name"],
            "model": Path(hp["model"]).stem, "N": float(hp["params"]), "N_nonembed": float(hp["params_no_embed"]),
            "D": float(hp["tokens"]),
        }
        for result in record["results"]:
            column = _GADRE_EVALS.get(result["val_data"][0].split("/")[-2])  # the eval shard's folder
            if column is not None:
                row[column] = float(result["loss"])
            if column == "loss_c4_val":
                row["loss_c4_val_lo95"] = float(result["loss_sequences_lower_95"])
                row["loss_c4_val_hi95"] = float(result["loss_sequences_upper_95"])
        row["C"] = 6 * row["N"] * row["D"]
        row["loss"] = row.get("loss_c4_val", math.nan)
        row["chinchilla_multiplier"] = hp["chinchilla_multiplier"]
        row["tokens_per_param"] = row["D"] / row["N"]
        row.update({key: hp.get(key) for key in ("lr", "wd", "warmup", "global_bs", "cd", "z_loss", "qk_norm")})
        rows.append(row)
    return pd.DataFrame(rows)


#: Gadre et al.'s 46 downstream tasks (and below, the 17-task subset where small models beat chance), as listed in
#: ``scaling/constants.py`` of github.com/mlfoundations/scaling @ a003c4913793ac2ae7ef87b28ecb562955d026d5. Per task:
#: (random-baseline accuracy in %, test items), the ``Random baseline`` and ``#datapoints`` columns of
#: ``exp_data/eval_metadata.csv`` at the same commit (checked against the shared copy by the tests).
_GADRE_TASKS: dict[str, tuple[int, int]] = {
    "agi_eval_lsat_ar": (25, 230), "agi_eval_lsat_rc": (25, 268), "agi_eval_lsat_lr": (25, 510),
    "agi_eval_sat_en": (25, 206), "arc_easy": (25, 2376), "arc_challenge": (25, 2376), "bbq": (50, 58492),
    "bigbench_conceptual_combinations": (25, 103), "bigbench_conlang_translation": (0, 164),
    "bigbench_cs_algorithms": (0, 1320), "bigbench_dyck_languages": (0, 1000),
    "bigbench_elementary_math_qa": (25, 38160), "bigbench_misconceptions": (50, 219),
    "bigbench_language_identification": (25, 10000), "bigbench_logical_deduction": (25, 1500),
    "bigbench_novel_concepts": (25, 32), "bigbench_operators": (0, 210), "bigbench_repeat_copy_logic": (0, 32),
    "bigbench_qa_wikidata": (0, 20321), "bigbench_strange_stories": (50, 174), "bigbench_strategy_qa": (50, 2289),
    "bigbench_understanding_fables": (25, 189), "boolq": (50, 3270), "commonsense_qa": (25, 1221), "copa": (50, 100),
    "coqa": (0, 7983), "enterprise_pii_classification": (50, 3395), "hellaswag": (25, 10042),
    "hellaswag_zeroshot": (25, 10042), "jeopardy": (0, 2117), "lambada_openai": (0, 5153), "logi_qa": (25, 651),
    "math_qa": (25, 2983), "mmlu": (25, 14042), "mmlu_zeroshot": (25, 14042), "openbook_qa": (25, 500),
    "piqa": (50, 1838), "pubmed_qa_labeled": (0, 1000), "simple_arithmetic_nospaces": (0, 1000),
    "simple_arithmetic_withspaces": (0, 1000), "siqa": (50, 1954), "squad": (0, 10570),
    "winogender_mc_female": (50, 60), "winogender_mc_male": (50, 60), "winograd": (50, 273), "winogrande": (50, 1267),
}
_GADRE_SUBSET = (
    "arc_easy", "bigbench_cs_algorithms", "bigbench_dyck_languages", "bigbench_novel_concepts",
    "bigbench_operators", "bigbench_qa_wikidata", "boolq", "commonsense_qa", "copa", "coqa", "hellaswag",
    "hellaswag_zeroshot", "lambada_openai", "piqa", "pubmed_qa_labeled", "squad", "winograd",
)


def _gadre_downstream(folder: Path) -> pd.DataFrame:
    """Top-1 error (1 - accuracy) on each task, the 46- and 17-task averages and their chance levels, per model."""
    models = _gadre(folder)[["name", "dataset", "model", "N", "D", "C", "loss"]]
    meta = pd.read_csv(folder / "source" / "eval_metadata.csv").set_index("Eval Task")
    rows = []
    for path in sorted((folder / "source" / "evals").glob("evaluation_*_heavy.json")):
        accuracy = json.loads(path.read_text())["eval_metrics"]["icl"]
        name = path.name.removeprefix("evaluation_").removesuffix("_heavy.json")
        rows.append({"name": name, **{f"err_{task}": 1.0 - float(accuracy[task]) for task in _GADRE_TASKS}})
    errors = pd.DataFrame(rows)
    chance = {task: 1.0 - float(meta.loc[task, "Random baseline"]) / 100.0 for task in _GADRE_TASKS}
    summary = pd.DataFrame({
        "name": errors["name"],
        "err_avg": errors[[f"err_{t}" for t in _GADRE_TASKS]].mean(axis=1),
        "err_avg_subset": errors[[f"err_{t}" for t in _GADRE_SUBSET]].mean(axis=1),
        "random_err_avg": float(np.mean([chance[t] for t in _GADRE_TASKS])),
        "random_err_avg_subset": float(np.mean([chance[t] for t in _GADRE_SUBSET])),
    })
    table = models.merge(summary, on="name", validate="one_to_one").merge(errors, on="name", validate="one_to_one")
    return table.reset_index(drop=True)


def _gadre_task_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add each task's chance error (``random_err_<task>``) and test items (``items_err_<task>``) where missing."""
    extra = {}
    for task, (baseline, items) in _GADRE_TASKS.items():
        if f"err_{task}" in frame.columns:
            extra.setdefault(f"random_err_{task}", 1.0 - baseline / 100.0)
            extra.setdefault(f"items_err_{task}", items)
    extra = {k: v for k, v in extra.items() if k not in frame.columns}
    if not extra:
        return frame
    return pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)  # one block, not 92 inserts


def _li2025(folder: Path) -> pd.DataFrame:
    src = pd.read_csv(folder / "source.csv")
    out = pd.DataFrame({
        "model": src["model"], "N": src["N"].astype(float), "N_nonembed": src["N_no_emb"].astype(float),
        "D": src["D"].astype(float), "C": src["C"].astype(float), "loss": src["loss"].astype(float),
        "peak_lr": src["peak_lr"], "total_steps": src["total_steps"], "sweep": src["sweep"],
        **{col: src[col].astype(float) for col in ("C_no_emb", "C_6ND", "C_6ND_no_emb")},
    }).drop_duplicates().reset_index(drop=True)
    best = out.groupby(["model", "D"])["loss"].transform("min")
    out.insert(7, "best_lr", out["loss"] == best)
    return out


#: Columns of li2025_misfitting's checkpoints table, in the order of the prepared copy (``data_all_checkpoints.csv``).
_LI2025_CHECKPOINT_COLUMNS = ("model", "N", "N_nonembed", "D", "C", "loss", "peak_lr", "total_steps", "current_steps",
                              "portion_steps_elapsed", "final", "sweep", "C_no_emb", "C_6ND", "C_6ND_no_emb")


def _li2025_checkpoints(folder: Path) -> pd.DataFrame:
    """Every evaluated checkpoint of every run (the ``curves`` table).

    The source less rows that repeat another row in every kept column (open_lm's epoch counters dropped).
    """
    src = pd.read_csv(folder / "source_all_checkpoints.csv")
    out = pd.DataFrame({
        "model": src["model"], "N": src["N"], "N_nonembed": src["N_no_emb"], "D": src["D"], "C": src["C"],
        "loss": src["loss"].astype(float), "peak_lr": src["peak_lr"], "total_steps": src["total_steps"],
        "current_steps": src["current_steps"], "portion_steps_elapsed": src["portion_steps_elapsed"],
        "final": src["current_steps"] == src["total_steps"], "sweep": src["sweep"],
        **{col: src[col] for col in ("C_no_emb", "C_6ND", "C_6ND_no_emb")},
    })
    return out.drop_duplicates().reset_index(drop=True)


def li2025_run_name(model: str, total_steps: int, peak_lr: float) -> str:
    """The name of one li2025_misfitting run (a model trained for ``total_steps`` at ``peak_lr``)."""
    return f"{model}_steps{int(total_steps)}_lr{float(peak_lr):g}"


def _li2025_curve_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add each checkpoint's run (``run``: model, planned steps and peak learning rate) and ``step``.

    A table without the columns they come from is left as it is (:func:`~bayes_scaling.datasets.load_curves` then
    names what is missing).
    """
    extra = {}
    if "run" not in frame.columns and {"model", "total_steps", "peak_lr"} <= set(frame.columns):
        extra["run"] = [li2025_run_name(m, s, lr) for m, s, lr in
                        zip(frame["model"], frame["total_steps"], frame["peak_lr"], strict=True)]
    if "step" not in frame.columns and "current_steps" in frame.columns:
        extra["step"] = frame["current_steps"].astype(int)
    return frame.assign(**extra) if extra else frame


_MARIN_MIXES = {"comma": "comma", "dclm": "dclm", "nemotron": "nemotron"}
_BUDGET = re.compile(r"(\d+(?:\.\d+)?e[+-]?\d+)")


def _marin(folder: Path) -> pd.DataFrame:
    frames = []
    for mix in _MARIN_MIXES:
        src = pd.read_csv(folder / f"source_isoflop-{mix}.csv")
        name = src["Name"].astype(str)
        valid = name.str.contains("validation-optimal")
        label = name.map(lambda s: float(_BUDGET.search(s).group(1)))
        n = src["parameter_count"].astype(float)
        d = src["throughput/total_tokens"].astype(float)
        frames.append(pd.DataFrame({
            "dataset": mix, "name": name, "N": n, "D": d, "C": 6 * n * d,
            "C_marin": src["throughput/total_gflops"].astype(float) * 1e9, "budget_label": label,
            "validation_optimal": valid, "loss": src["eval/paloma/macro_loss"].astype(float),
            "batch_size": src["trainer.train_batch_size"], "steps": src["trainer.num_train_steps"],
            "layers": src["model.num_layers"], "hidden_dim": src["model.hidden_dim"],
            "budget_C": np.where(valid, label, 3 * label),
        }))
    return pd.concat(frames, ignore_index=True)


_PORIAN_FILES = ("summary_df", "summary_df_att", "summary_df_kaplan_tuned_hparams", "summary_df_owt2")
_PORIAN_DATASETS = {"rw": "refinedweb", "owt2": "openwebtext2"}


def _porian(folder: Path) -> pd.DataFrame:
    # The pickles are unpickled only after their SHA-256 sums matched the vetted originals
    # (fetch.py checks every source file before conversion); their only globals are pandas/numpy classes.
    rows = []
    for stem in _PORIAN_FILES:
        summary = pd.read_pickle(folder / "source" / f"{stem}.pickle.xz")
        for _, entry in summary.iterrows():
            keys = {
                "dataset": _PORIAN_DATASETS.get(entry["dataset"], entry["dataset"]), "hparams": entry["hparams"],
                "warmup": entry["warmup"], "decay": entry["decay"], "param_count": entry["param_count"],
                "loss_type": entry["val"],
            }
            setup = "/".join([keys["dataset"], f"{keys['hparams']}-hparams", f"{keys['warmup']}-warmup",
                              f"{keys['decay']}-decay", f"{keys['param_count']}-count", f"{keys['loss_type']}-loss"])
            for _, point in entry["data"].iterrows():
                sizes, losses = np.atleast_1d(point["orig_n"]), np.atleast_1d(point["orig_loss"])
                c = float(point["flops"])
                for n, loss in zip(sizes.astype(float), losses.astype(float), strict=True):
                    if not (np.isfinite(n) and np.isfinite(loss)):  # a budget no size reached
                        continue
                    rows.append({"setup": setup, **keys, "C": c, "N": n, "D": c / (6 * n), "loss": loss,
                                 "source_file": stem})
    return pd.DataFrame(rows)


_MAPS = ("NAMES_TO_VAL_LOSSES", "TOKENS_MAP", "PARAMS_MAP")
_NOTEBOOK = "parametric_fit.ipynb"
_SIZE_M = re.compile(r"(\d+)m")
_SIZE_B_DECIMAL = re.compile(r"(\d)b(\d+)")
_SIZE_B = re.compile(r"(\d+)b")
_SUFFIX = re.compile(r"(?P<body>[0-9bm]+?)(?P<c4>c4)?(?P<variant>v2|opt2|opt)?(?:seed(?P<seed>\d))?(?P<dedup>dedup)?")


def canonical_sha256(value: object) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces): what a table extract is checked by."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def notebook_tables(content: bytes) -> list[dict[str, dict]]:
    """The code cells of a notebook that assign all of NAMES_TO_VAL_LOSSES, TOKENS_MAP and PARAMS_MAP.

    Each is returned as ``{map name: literal value}``; cells are parsed with :mod:`ast` (comments and
    commented-out entries drop out, nothing is executed).
    """
    notebook = json.loads(content)
    found = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        maps = {}
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id in _MAPS):
                try:
                    maps[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
        if set(maps) == set(_MAPS):
            found.append(maps)
    return found


def _size(token: str) -> int | None:
    """Tokens of a Muennighoff size label: ``100m``, ``12b``, ``1b25`` (1.25B); None if not a label."""
    if match := _SIZE_M.fullmatch(token):
        value = int(match.group(1))
        return value * 10**6 if value < 1000 else None
    if match := _SIZE_B_DECIMAL.fullmatch(token):
        whole, decimals = match.groups()
        return int(whole) * 10**9 + int(decimals) * 10 ** (9 - len(decimals))
    if match := _SIZE_B.fullmatch(token):
        return int(match.group(1)) * 10**9
    return None


def muennighoff_table(tables: Mapping[str, Mapping[str, dict]]) -> pd.DataFrame:
    """The run table from the notebook's two table sets (see the dataset's notes for the parsing rules)."""
    everything = tables["cell_1_all_points"]
    paper = {k for k, v in tables["cell_25_outliers_removed"]["NAMES_TO_VAL_LOSSES"].items() if v != 0}
    params = everything["PARAMS_MAP"]
    rows = []
    for name, loss in everything["NAMES_TO_VAL_LOSSES"].items():
        if loss == 0:  # the notebook's mark for an unfinished run
            continue
        keys = [k for k in params if name.startswith(k)]
        if not keys:
            raise DatasetError(f"run {name!r}: no parameter count in PARAMS_MAP matches its name")
        params_key = min(keys, key=len)
        match = _SUFFIX.fullmatch(name[len(params_key):])
        if match is None:
            raise DatasetError(f"run {name!r}: cannot read tokens and unique tokens from its name")
        body = match.group("body")
        splits = [(body[:i], body[i:]) for i in range(1, len(body))]
        splits = [(d, u) for d, u in splits if _size(d) and _size(u) and _size(u) <= _size(d)]
        if len(splits) != 1:
            raise DatasetError(f"run {name!r}: {len(splits)} ways to read tokens/unique tokens, expected one")
        (tokens_key, unique_key), = splits
        n, d, u = float(params[params_key]), float(_size(tokens_key)), float(_size(unique_key))
        dedup = bool(match.group("dedup"))
        rows.append({
            "name": name, "dataset": "c4_dedup" if dedup else "c4", "N": n, "D": d, "U": u, "epochs": d / u,
            "C": 6 * n * d, "loss": float(loss),
            "variant": "dedup" if dedup else (match.group("variant") or "default"),
            "seed": int(match.group("seed") or 0), "in_paper_fit": name in paper and not dedup,
            "params_key": params_key, "tokens_key": tokens_key, "unique_key": unique_key,
        })
    return pd.DataFrame(rows).sort_values(["dataset", "N", "D", "U", "seed"], kind="stable").reset_index(drop=True)


def muennighoff_extract(content: bytes, expected: Mapping[str, str]) -> dict[str, dict]:
    """The two vetted table sets from the notebook, found by their canonical checksums."""
    by_sum = {canonical_sha256(tables): tables for tables in notebook_tables(content)}
    missing = [name for name, digest in expected.items() if digest not in by_sum]
    if missing:
        raise DatasetError(
            f"the notebook has no cell whose tables match the vetted extract {', '.join(missing)} "
            f"(found {len(by_sum)} candidate cells); it differs from the pinned original"
        )
    return {name: by_sum[digest] for name, digest in expected.items()}


def _muennighoff(folder: Path) -> pd.DataFrame:
    if (folder / "source.json").is_file():  # the vetted extract (the shared copies' layout)
        return muennighoff_table(json.loads((folder / "source.json").read_text()))
    source = CATALOG["muennighoff2023_datablations"].sources[0]
    return muennighoff_table(muennighoff_extract((folder / source.path).read_bytes(), source.content_sha256 or {}))


#: OLMo 1 7B's parameters and tokens per optimizer step (2,048 sequences of 2,048 tokens; Groeneveld et al. 2024).
_OLMO_N = 6_888_095_744
_OLMO_TOKENS_PER_STEP = 2048 * 2048
#: Task (as the source names its accuracy column) -> chance error (1 - 1/choices).
_OLMO_TASKS = {"piqa_len_norm": 0.5, "arc_easy_acc": 0.75, "hellaswag_len_norm": 0.75, "copa_acc": 0.5,
               "sst2_acc": 0.5, "commitment_bank_acc": 2 / 3, "rte_len_norm": 0.5, "winogrande_acc": 0.5,
               "sciq_acc": 0.75}


def _olmo1(folder: Path) -> pd.DataFrame:
    """OLMo 1 7B checkpoints (two runs): C4 loss (ln perplexity) and the error and chance error of each task."""
    src = pd.read_csv(folder / "source.csv")
    src = src.assign(model=src["model_name"].astype(str).str.strip())
    src = src[src["model"].isin(["OLMo-7B", "OLMo-7B-Twin-2T"])]
    src = src.sort_values(["model", "Step"], kind="stable").reset_index(drop=True)
    n = float(_OLMO_N)
    d = src["Step"].astype(float) * _OLMO_TOKENS_PER_STEP
    out = pd.DataFrame({"model": src["model"], "N": n, "step": src["Step"].astype(int), "D": d, "C": 6 * n * d,
                        "loss": np.log(src["c4_en-validation/Perplexity"].astype(float))})
    for task, chance in _OLMO_TASKS.items():
        err = 1.0 - src[f"downstream/{task}"].astype(float)
        out[f"err_{task}"] = err
        out[f"random_err_{task}"] = np.where(err.notna(), chance, np.nan)
    return out


#: multipower2025's model sizes (the folders of its source files) and the three curves its authors fit on.
_MULTIPOWER_SIZES = (25, 100, 400)
_MULTIPOWER_FIT = ("constant_24000", "cosine_24000", "wsdcon_9")


def _multipower(folder: Path) -> pd.DataFrame:
    """Luo et al.'s 27 curves (3 sizes x 9 schedules), unchanged, with the model, schedule and role added."""
    parts = []
    for size in _MULTIPOWER_SIZES:
        for path in sorted((folder / "source" / f"csv_{size}").glob("*.csv")):
            src = pd.read_csv(path)
            parts.append(pd.DataFrame({
                "model": f"{size}M", "schedule": path.stem, "step": src["step"].astype(int),
                "lr": src["lr"].astype(float), "loss": src["loss"].astype(float),
                "role_in_paper": "fit" if path.stem in _MULTIPOWER_FIT else "test"}))
    return pd.concat(parts, ignore_index=True)


def _with_curves(sweep: Dataset, **fields: Any) -> Dataset:
    """``sweep`` with its ``curves`` table, described by ``fields`` where it differs from the sweep.

    The same dataset (name, citation, licence, loss), ``kind="curves"``, its sources under ``<name>/curves`` in
    ``sources.json``; ``fields`` give the title, rows, table, run id, converter and so on. The sweep's default query,
    completion and shared sources are not inherited unless ``fields`` give them.
    """
    defaults = {"default_query": "", "complete": None, "shared_sources": {}}
    curves = replace(sweep, kind="curves", manifest_key=f"{sweep.name}/curves", curves=None,
                     **{**defaults, **fields})
    return replace(sweep, curves=curves)


#: li2025_misfitting's checkpoints: each run's loss every 128 steps and at its last step, along its own cosine
#: schedule. The learning rates are not in the data; :func:`bayes_scaling.schedules.li2025_misfitting`
#: rebuilds them from the repository's sweep configuration.
_LI2025_CURVES: dict[str, Any] = dict(
    title="(Mis)Fitting checkpoints: 240 open_lm runs' C4 loss along training, each its own cosine schedule",
    origin="github.com/hadasah/scaling_laws @ 1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1 (data/scaling_results.csv)",
    groups=(), run_id="run", rows=4843, convert=_li2025_checkpoints, complete=_li2025_curve_columns,
    table="data_all_checkpoints.csv", schedules="li2025_misfitting",
    notes="One row per checkpoint; run = <model>_steps<planned steps>_lr<peak lr>, step = current_steps. A "
    "checkpoint before the end is a point on a cosine planned for total_steps, not the final loss of a shorter "
    "run. The learning rate is not logged: `--schedules li2025_misfitting` (schedules.li2025_misfitting) rebuilds "
    "it from the repository's sweep configuration (50 warmup steps, cosine to 0.1 x peak at total_steps). 13 runs "
    "of the 17M sweep 2024_11_10-23_08_29 log 27 steps twice with different losses (see the sweep's notes): kept "
    "as published; fit_curves refuses a run that logs a step twice, so leave them out. Two runs of the 70M sweep "
    "log a step (256) past their planned 250, 0.6 nats above their final loss: kept, and refused by fit_curves as "
    "beyond the schedule (query 'step <= total_steps').",
)
#: clark2022_routing's evaluations every 10,000 steps of 250k (the sweep is each run's last one).
_CLARK_CURVES: dict[str, Any] = dict(
    title="Dense and routed (MoE) LMs' validation loss every 10k steps of 250k: 223 runs",
    default_query="router_type == 'Dense'", rows=5553, convert=_clark_points, table="data_curves.csv",
    notes="One row per evaluation after step 0 (all six eval losses present). The learning-rate schedule is not "
    "in the data (the paper trains every run 250k steps with a cosine decay): give each run's schedule "
    "(`--schedule RUN=cosine:peak=...,steps=250000`); a wrong peak is absorbed by the law's scale parameters "
    "only approximately. 25 points a run, so the decay's shape is weakly measured.",
)


CATALOG: Mapping[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="chinchilla_epoch",
            title="Chinchilla Approach-3 runs (57M-16B params) reconstructed by Epoch AI from the paper's figure",
            citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556; "
            "Besiroglu, Erdil, Barnett, You 2024, Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
            origin="github.com/epoch-research/analyzing-chinchilla @ 92258837425e1b5f2851d624287f0120583a3d0e",
            license="not stated (figure data from the paper)",
            loss="final training loss, nats/token",
            groups=(), run_id="", default_query="", rows=245, convert=_chinchilla,
            notes="D is derived as C/(6N). Epoch fits 240 rows (drops the 5 highest-loss runs at C=1e19).",
        ),
        Dataset(
            name="gadre2024",
            title="Over-training testbed: 104 open_lm models, 10.6M-6.9B params, 5-640 tokens/param, 3 datasets",
            citation="Gadre et al. 2024, Language models scale reliably with over-training and on downstream "
            "tasks, arXiv:2403.08540",
            origin="github.com/mlfoundations/scaling @ a003c4913793ac2ae7ef87b28ecb562955d026d5 (exp_data/models)",
            license="MIT",
            loss="C4 validation loss, nats/token (7 other eval losses in loss_* columns)",
            groups=("dataset",), run_id="name", default_query="", rows=104, convert=_gadre,
            notes="Group by 'dataset' (c4_original, rpj, rw_original); the paper holds out the 1.4B and 6.9B runs.",
        ),
        Dataset(
            name="gadre2024_downstream",
            title="Downstream top-1 error of the 104 gadre2024 models on 46 in-context tasks (17-task subset)",
            citation="Gadre et al. 2024, Language models scale reliably with over-training and on downstream "
            "tasks, arXiv:2403.08540",
            origin="github.com/mlfoundations/scaling @ a003c4913793ac2ae7ef87b28ecb562955d026d5 (exp_data/evals, "
            "exp_data/eval_metadata.csv, exp_data/models)",
            license="MIT",
            loss="C4 validation loss, nats/token (as gadre2024); err_* columns: 1 - accuracy per task",
            groups=("dataset",), run_id="name", default_query="", rows=104, convert=_gadre_downstream,
            shared_sources={"source/models/": "gadre2024"}, complete=_gadre_task_columns,
            notes="err_avg / err_avg_subset: the paper's 46- and 17-task averages; random_err_*: chance; "
            "items_err_<task>: the task's test items. Small models sit at chance on most tasks; fit the link from "
            "loss to error with bayes_scaling.downstream (fit_tasks for many tasks at once).",
        ),
        Dataset(
            name="olmo1_checkpoints",
            title="OLMo 1 7B along training (two runs, 973 checkpoints): C4 loss 4.5 -> 2.37 and 9 task accuracies",
            citation="Groeneveld et al. 2024, OLMo: Accelerating the Science of Language Models, arXiv:2402.00838; "
            "aggregated by Choshen, Zhang, Andreas 2024, A Hitchhiker's Guide to Scaling Law Estimation, "
            "arXiv:2410.11840",
            origin="github.com/IBM/ColPret @ 16f23bbe054277ddc4afd07a972dd7cfbe3f48c3 (aggregated_eval/olmo.csv)",
            license="MIT",
            loss="ln(C4 validation perplexity), nats/token; err_* columns: 1 - accuracy per task",
            groups=("model",), run_id="", default_query="model == 'OLMo-7B'", rows=973, convert=_olmo1,
            notes="Checkpoints of one run, not independent models: neighbours share most of their training and the "
            "learning rate changes along the run. N is fixed; D = step x 4,194,304 tokens. random_err_<task>: "
            "chance, where the task was evaluated. For the loss -> benchmark link along training "
            "(bayes_scaling.downstream). The source logs 11 OLMo-7B-Twin-2T checkpoints (steps 158k-168k) with "
            "accuracies above 1 and a C4 loss of 3.21: kept as published (a link fit refuses them, naming the "
            "rows); drop rows with err_* < 0 before fitting.",
        ),
        _with_curves(Dataset(
            name="li2025_misfitting",
            title="(Mis)Fitting sweep: open_lm 57M-1.18B params, 0.1B-21B tokens, several learning rates",
            citation="Li, Kudugunta, Zettlemoyer 2025, (Mis)Fitting Scaling Laws: A Survey of Scaling Law "
            "Fitting Techniques in Deep Learning, ICLR 2025, arXiv:2502.18969",
            origin="github.com/hadasah/scaling_laws @ 1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1",
            license="not stated",
            loss="C4 eval loss, nats/token",
            groups=(), run_id="model", default_query="best_lr", rows=253, convert=_li2025,
            notes="Several learning rates per (model, D): fit the best_lr rows (87) or model the LR effect. "
            "Losses along training: load_curves('li2025_misfitting').",
        ), **_LI2025_CURVES),
        Dataset(
            name="marin_isoflop",
            title="Marin IsoFLOP ladders: 157M-11.8B params, 1e18-1e21 FLOPs, three data mixes",
            citation="Marin project (marin-community), Scaling Ladders, 2025-26; W&B export by "
            "Open-Athena/scaling-law-analysis",
            origin="github.com/Open-Athena/scaling-law-analysis @ 3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc",
            license="not stated",
            loss="Paloma macro-averaged loss, nats/token",
            groups=("dataset",), run_id="name", default_query="", rows=273, convert=_marin,
            notes="Group IsoFLOP curves by 'dataset' and 'budget_C'; 'validation_optimal' marks extra single runs.",
        ),
        Dataset(
            name="muennighoff2023_datablations",
            title="Data-constrained C4 runs: 7M-8.7B params, D from U unique tokens (1-9000 epochs), seed replicas",
            citation="Muennighoff et al. 2023, Scaling Data-Constrained Language Models, NeurIPS 2023, "
            "arXiv:2305.16264",
            origin="github.com/huggingface/datablations @ 13701315b163f1c54642b94ad237b2699187c3ee "
            "(utils/parametric_fit.ipynb, cells 1 and 25)",
            license="Apache-2.0",
            loss="final C4 validation loss, nats/token",
            groups=("dataset",), run_id="name", default_query="in_paper_fit", rows=308, convert=_muennighoff,
            notes="Column U (unique tokens) maps to unique_tokens (law 'data_constrained'). The table lives in "
            "notebook cells: a download is checked by the canonical checksums of the extracted tables, not "
            "the notebook's bytes. D and U are parsed from the run names (e.g. 146m5b9100m: 146M params, "
            "5.9B tokens, 100M unique).",
        ),
        Dataset(
            name="porian2024",
            title="IsoFLOP points of 15 training setups: open_lm 5M-900M params, 1.25e16-2.56e19 FLOPs",
            citation="Porian, Wortsman, Jitsev, Schmidt, Carmon 2024, Resolving Discrepancies in Compute-Optimal "
            "Scaling of Language Models, NeurIPS 2024, arXiv:2406.19146",
            origin="github.com/formll/resolving-scaling-law-discrepancies @ "
            "0dc60d91b8a525858a3067fc9e4a46ff5374cc6f (data/summary_df*.pickle.xz)",
            license="MIT",
            loss="validation or smoothed training loss (column loss_type), nats/token",
            groups=("setup",), run_id="", default_query="decay == 'chinchilla' and param_count == 'standard'",
            rows=1745, convert=_porian,
            notes="Setups share training runs; except decay='chinchilla', points of one size come from one run's "
            "curve. width/depth/N_total/N_nonembed are only in a prepared copy.",
        ),
        Dataset(
            name="multipower2025",
            title="Training-loss curves of 25M, 100M and 400M models under nine learning-rate schedules",
            citation="Luo et al. 2025, A Multi-Power Law for Loss Curve Prediction Across Learning Rate "
            "Schedules, ICLR 2025, arXiv:2503.12811",
            origin="github.com/thu-yao-01-luo/MultiPowerLaw @ 8da9f1902602f3391b971a811e3cc51604541769 "
            "(loss_curve_repo/csv_{25,100,400})",
            license="MIT",
            loss="training loss, nats/token, logged every 128 steps after warmup",
            groups=("model",), run_id="schedule", default_query="", rows=6265, convert=_multipower,
            kind="curves",
            notes="Loss curves, not a sweep: fit them with bayes_scaling.curves.fit_curves (CLI `bayes-scaling "
            "curve fit`) and schedules.multipower2025() for every step's rate (warmup included). Model sizes are "
            "nominal and tokens per step are not published, so there is no N or D. role_in_paper marks the three "
            "curves the authors fit on (constant_24000, cosine_24000, wsdcon_9).",
        ),
        _with_curves(Dataset(
            name="clark2022_routing",
            title="Dense and routed (MoE) LMs: 15M-1.3B dense params, 1-512 experts, ~131B tokens each",
            citation="Clark et al. 2022, Unified Scaling Laws for Routed Language Models, ICML 2022, "
            "arXiv:2202.01169",
            origin="github.com/google-deepmind/scaling_laws_for_routing @ 42da0c392b127df2c01fa7b705f72396050d05e5",
            license="CC-BY 4.0",
            loss="MassiveText validation loss, nats/token",
            groups=("router_type",), run_id="hyper_id", default_query="router_type == 'Dense'", rows=223,
            convert=_clark,
            notes="Every run trains 250k steps, so D barely varies: use it for L(N) (law 'params'). D is derived "
            "as steps x 524,288 tokens. Losses every 10k steps: load_curves('clark2022_routing').",
        ), **_CLARK_CURVES),
    )
}
