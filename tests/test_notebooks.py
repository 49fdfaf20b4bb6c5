"Run every notebook top to bottom in a real Jupyter kernel, as a reader's 'Run All' does (nbdev_test runs cells in-process)."
import os
from pathlib import Path
import nbformat, pytest
from nbclient import NotebookClient


NBS = sorted((Path(__file__).resolve().parent.parent/'nbs').glob('*.ipynb'))

pytestmark = pytest.mark.real_sample  # notebooks use the reader's default data: fastai's MNIST_SAMPLE

@pytest.mark.parametrize('nb_path', NBS, ids=[p.name for p in NBS])
def test_notebook_runs_in_kernel(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    # allow_errors: every cell runs, and every failing cell is reported below (else execute() raises at the first)
    NotebookClient(nb, timeout=900, kernel_name='python3', allow_errors=True,
                   resources={'metadata': {'path': str(nb_path.parent)}}).execute()
    errors = [f"cell {c.get('id')}: {o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == 'code'
              for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert not errors, '\n'.join(errors)
