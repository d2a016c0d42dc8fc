"""The notebooks run top to bottom, in order, on the embedded synthetic corpus (each picks up the previous one's
outputs in a shared working folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = ["01_musdb_demucs_inference", "02_features_and_gate", "03_build_dataset", "04_train_ddsp"]


def test_notebook_folder_holds_exactly_the_documented_notebooks():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == ORDER


@pytest.mark.slow
def test_notebooks_run_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSP_DEMUCS_NOTEBOOK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("DDSP_DEMUCS_NOTEBOOK_STEPS", "20")
    monkeypatch.setenv("DDSP_DEMUCS_SEPARATOR", "fallback")  # no network here: do not wait for a download
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name in ORDER:
        book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        client = nbclient.NotebookClient(
            book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()  # raises CellExecutionError naming the failing cell
        errors = [
            o
            for cell in book.cells
            if cell.cell_type == "code"
            for o in cell.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, f"{name}: {errors}"
    assert (tmp_path / "work" / "dataset" / "manifest.json").is_file()
    assert (tmp_path / "work" / "train" / "checkpoints" / "last.ckpt").is_file()
