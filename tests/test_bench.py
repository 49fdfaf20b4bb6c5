"bench/bench.py runs end to end (--quick) and reports every row; its timings are never checked."
import json, subprocess, sys, os
from pathlib import Path
import pytest


BENCH = Path(__file__).resolve().parent.parent/'bench'/'bench.py'

pytestmark = pytest.mark.real_sample  # trains on the real sample (see conftest.isolated_env)

def test_bench_quick(tmp_path):
    fn = tmp_path/'bench.json'
    r = subprocess.run([sys.executable, str(BENCH), '--quick', '--json', str(fn)], capture_output=True, text=True,
                       env=dict(os.environ), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {tuple(c.strip() for c in l.strip('|').split('|')[:2]) for l in r.stdout.splitlines() if l.startswith('| ')}
    for model in ('linear', 'simple_net'):
        for method in ('post loop', 'fastai Learner', 'PyTorch DataLoader', 'mnist_basics'): assert (model, method) in rows, r.stdout
    assert {('data', 'decode PNGs'), ('data', 'warm cache'), ('start-up', "python -c 'import torch'")} <= rows, r.stdout
    assert any(m == 'start-up' and k.startswith('mnist_train --model net') for m, k in rows), r.stdout
    assert 'Machine:' in r.stdout and 'Targets' in r.stdout
    assert any(t['target'] == 'simple_net: mnist_basics / its floor' and t['op'] == '<=' for t in json.loads(fn.read_text())['targets'])
    res = json.loads(fn.read_text())
    training = [row for row in res['rows'] if row['model'] in ('linear', 'simple_net')]
    assert len(training) == 8
    n_valid = 2038
    library = [row for row in training if row['method'] == 'mnist_basics'] + [row for row in res['rows'] if row['method'].startswith('mnist_train')]
    assert len(library) == 3, res['rows']
    for row in training + library:
        # an exact accuracy over the 2,038 validation images, well above the 0.504 of a model that always says 7
        assert 0.6 < row['accuracy'] <= 1 and row['accuracy']*n_valid == pytest.approx(round(row['accuracy']*n_valid), abs=1e-3), row
    for row in library: assert row['accuracy'] > 0.95, row  # fast_fit from a std-0.1 start: above 0.97 after one epoch
