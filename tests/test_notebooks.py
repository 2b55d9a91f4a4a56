"""The notebooks execute top to bottom (small draws), committed without outputs.

They run one after another in one kernel, each from a namespace cleared by ``%reset -f``: what one notebook
defines is gone for the next (a notebook that relies on another's variables fails here as it would for a user),
while imported modules and the compiled models they cache stay, so a law compiled by one notebook is not compiled
again by the next (kernel start, imports and compiles were most of this test's time).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_at_least_three_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.fixture(scope="module")
def kernel():
    """One python3 kernel in the notebooks' folder, with small draws and a headless backend."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(NOTEBOOKS[0].parent),
                         env={**os.environ, "BAYES_SCALING_DRAWS": "200", "MPLBACKEND": "Agg"})
    yield manager
    manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel):
    book = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), "commit without outputs"
    book.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # nothing left from the notebook before
    client = NotebookClient(book, km=kernel, timeout=900, kernel_name="python3")
    client.execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
