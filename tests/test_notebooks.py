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


# nbdev_test runs notebooks in a pool of worker processes, so a notebook may run in a process where an earlier notebook
# imported fastai, which patches torch.Tensor (`__array_eq__`: then `test_eq(tensor, [3])` raises instead of comparing).
# The notebooks that never load fastai themselves run here with it loaded first, as they may under nbdev_test.
NO_FASTAI = ['91_backprop.ipynb', '96_exercises.ipynb', '97_solutions.ipynb']
AFTER_FASTAI = r'''
import sys
from pathlib import Path
import fastai.torch_core
from nbdev.test import test_nb
ok, _ = test_nb(Path(sys.argv[1]).resolve(), skip_flags=['notest', 'slow'])
sys.exit(0 if ok else 1)
'''

@pytest.mark.parametrize('name', NO_FASTAI)
def test_notebook_passes_after_fastai_is_loaded(name):
    import subprocess, sys
    nb_path = NBS[0].parent/name
    assert nb_path.exists()
    r = subprocess.run([sys.executable, '-c', AFTER_FASTAI, str(nb_path)], capture_output=True, text=True, timeout=600,
                       cwd=nb_path.parent, env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
