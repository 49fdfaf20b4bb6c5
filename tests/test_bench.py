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
    res = json.loads(fn.read_text())
    training = [row for row in res['rows'] if row['model'] in ('linear', 'simple_net')]
    assert len(training) == 8
    for row in training + [row for row in res['rows'] if row['method'].startswith('mnist_train')]:
        assert 0.5 < row['accuracy'] <= 1, row
