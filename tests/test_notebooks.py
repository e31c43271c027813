"""The example notebooks run top to bottom on the bundled sample and draw every figure they
promise; the committed notebooks hold exactly the cells ``scripts/make_notebooks.py`` writes, and
were executed (``--execute``) with their outputs and figures kept."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
GENERATOR = ROOT / "scripts" / "make_notebooks.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A 1-bar matplotlib chart with axes and a title is already ~10 KB; an empty canvas is ~2 KB.
MIN_FIGURE_BYTES = 5_000

FIGURES = {
    "01_curate_and_mix.ipynb": ["01_cluster_sizes.png", "01_contamination.png",
                                "01_mix_composition.png", "01_rows_per_step.png",
                                "01_weight_by_reward.png"],
    "02_judge_and_pairs.ipynb": ["02_compare.png", "02_length_bias.png", "02_ratings_by_aspect.png",
                                 "02_ratings_by_model.png", "02_win_rates.png"],
    "03_train.ipynb": ["03_rlvr_reward.png", "03_sft_loss.png"],
}
NEEDS = {"03_train.ipynb": ["trl", "torch"]}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_draws_its_figures(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    for module in NEEDS.get(name, []):
        pytest.importorskip(module)
    # The kernel inherits the environment: its tempfile work folders land in tmp_path too.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on the first error

    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert errors == []
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn == FIGURES[name]
    for figure in drawn:
        data = (tmp_path / figure).read_bytes()
        assert data.startswith(PNG_MAGIC), figure
        assert len(data) > MIN_FIGURE_BYTES, f"{figure} is only {len(data)} bytes"


def cells(notebook):
    return [(cell.cell_type, cell.id, cell.source) for cell in notebook.cells]


def test_committed_notebooks_hold_the_cells_the_generator_writes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True,
                   capture_output=True, text=True)
    generated = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert generated == sorted(FIGURES)
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == generated
    stale = []
    for name in generated:
        fresh = nbformat.read(tmp_path / name, as_version=4)
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        if cells(fresh) != cells(committed) or (
                fresh.metadata.kernelspec != committed.metadata.kernelspec):
            stale.append(name)
    assert stale == [], f"run `python scripts/make_notebooks.py --execute`: {stale} differ from the generator"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_notebooks_are_executed_with_outputs_and_figures(name):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    # one run, top to bottom, every cell
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = [output for cell in code for output in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert any(o.output_type == "stream" and o.name == "stdout" and o.text.strip() for o in outputs)
    images = [base64.b64decode(o.data["image/png"]) for o in outputs
              if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= len(FIGURES[name])
    for image in images:
        assert image.startswith(PNG_MAGIC) and len(image) > MIN_FIGURE_BYTES
