"Run every notebook top to bottom in a real Jupyter kernel, as a reader's 'Run All' does (nbdev_test runs cells in-process)."
import os
from pathlib import Path
import nbformat, pytest
from nbclient import NotebookClient

from conftest import REAL_SAMPLE

NBS = sorted((Path(__file__).resolve().parent.parent/'nbs').glob('*.ipynb'))

@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    "Notebooks use the reader's default data: fastai's MNIST_SAMPLE in the $FASTAI_HOME these tests were started with"
    if not (REAL_SAMPLE/'train').is_dir(): pytest.fail(f'the real MNIST_SAMPLE is not at {REAL_SAMPLE}: seed $FASTAI_HOME (see README)')
    monkeypatch.delenv('MNIST_BASICS_DATA', raising=False)
    monkeypatch.setenv('MPLBACKEND', 'Agg')

@pytest.mark.parametrize('nb_path', NBS, ids=[p.name for p in NBS])
def test_notebook_runs_in_kernel(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': str(nb_path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert not errors
