"""Regenerate ``sources.json`` (source files, public URLs, SHA-256 sums) from vetted local copies.

Usage: ``python -m bayes_scaling.datasets.make_sources ../shared/data``. Run it only when a dataset's pinned
commit changes; the sums it writes are what every later download is checked against.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from urllib.parse import quote

RAW = "https://raw.githubusercontent.com"
#: dataset -> (repository at a pinned commit, [(local path, path in the repository)])
ORIGINS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "chinchilla_epoch": ("epoch-research/analyzing-chinchilla/92258837425e1b5f2851d624287f0120583a3d0e",
                         [("source.csv", "data/svg_extracted_data.csv")]),
    "li2025_misfitting": ("hadasah/scaling_laws/1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1",
                          [("source.csv", "data/scaling_results_last_ckpt_only.csv")]),
    "marin_isoflop": ("Open-Athena/scaling-law-analysis/3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc",
                      [(f"source_isoflop-{mix}.csv", f"data/isoflops/extract/marin_202603/raw/isoflop-{mix}.csv")
                       for mix in ("comma", "dclm", "nemotron")]),
    "porian2024": ("formll/resolving-scaling-law-discrepancies/0dc60d91b8a525858a3067fc9e4a46ff5374cc6f",
                   [(f"source/{stem}.pickle.xz", f"data/{stem}.pickle.xz") for stem in
                    ("summary_df", "summary_df_att", "summary_df_kaplan_tuned_hparams", "summary_df_owt2")]),
    "olmo1_checkpoints": ("IBM/ColPret/16f23bbe054277ddc4afd07a972dd7cfbe3f48c3",
                          [("source.csv", "aggregated_eval/olmo.csv")]),
    "clark2022_routing": ("google-deepmind/scaling_laws_for_routing/42da0c392b127df2c01fa7b705f72396050d05e5",
                          [("source.csv.gz", "data/curves.csv.gz")]),
    # the curves tables of two sweeps (``Dataset.curves``; their key in sources.json is ``<name>/curves``)
    "li2025_misfitting/curves": ("hadasah/scaling_laws/1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1",
                                 [("source_all_checkpoints.csv", "data/scaling_results.csv")]),
    "clark2022_routing/curves": ("google-deepmind/scaling_laws_for_routing/42da0c392b127df2c01fa7b705f72396050d05e5",
                                 [("source.csv.gz", "data/curves.csv.gz")]),
    "multipower2025": ("thu-yao-01-luo/MultiPowerLaw/8da9f1902602f3391b971a811e3cc51604541769",
                       [(f"source/csv_{size}/{run}.csv", f"loss_curve_repo/csv_{size}/{run}.csv")
                        for size in (25, 100, 400)
                        for run in ("constant_24000", "constant_72000", "cosine_24000", "cosine_72000",
                                    "wsd_20000_24000", "wsdcon_18", "wsdcon_3", "wsdcon_9", "wsdld_20000_24000")]),
}
GADRE = "mlfoundations/scaling/a003c4913793ac2ae7ef87b28ecb562955d026d5"


def sha256(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


DATABLATIONS = "huggingface/datablations/13701315b163f1c54642b94ad237b2699187c3ee/utils/parametric_fit.ipynb"


def main(root: str) -> None:
    """Write sources.json from the vetted copies under ``root``."""
    from bayes_scaling.datasets.catalog import CATALOG, canonical_sha256

    base = Path(root)
    origins = dict(ORIGINS)
    models = sorted((base / "gadre2024" / "source" / "models").glob("*.json"))
    origins["gadre2024"] = (GADRE, [(f"source/models/{m.name}", f"exp_data/models/{m.name}") for m in models])
    evals = sorted((base / "gadre2024_downstream" / "source" / "evals").glob("*.json"))
    origins["gadre2024_downstream"] = (GADRE, [
        ("source/eval_metadata.csv", "exp_data/eval_metadata.csv"),
        *[(f"source/evals/{e.name}", f"exp_data/evals/{e.name}") for e in evals],
        *origins["gadre2024"][1],  # the model records: the same files as gadre2024's
    ])
    manifest = {
        name: [{"path": local, "url": f"{RAW}/{repo}/{quote(remote)}",
                "sha256": sha256(CATALOG[name.split("/")[0]].vetted_copy(base, local))}
               for local, remote in files]
        for name, (repo, files) in sorted(origins.items())
    }
    extract = json.loads((base / "muennighoff2023_datablations" / "source.json").read_text())
    manifest["muennighoff2023_datablations"] = [{
        "path": "parametric_fit.ipynb", "url": f"{RAW}/{DATABLATIONS}",
        "content_sha256": {name: canonical_sha256(tables) for name, tables in extract.items()},
    }]
    manifest = dict(sorted(manifest.items()))
    out = Path(__file__).with_name("sources.json")
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out}: {sum(map(len, manifest.values()))} files")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
