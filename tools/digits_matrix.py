#!/usr/bin/env python
"""The ten-digit CNN's claims under the kernel matrix: for each setting of `tools/kernel_matrix.py`, seeds 0-2 of the default
command (`mnist_train --digits all --model cnn --json`), of the one-epoch run (batch 128, lr 0.02, no shifts) and of the same
run of `quick_cnn_model` (appendix 92_speed, section 6); medians.

    python tools/digits_matrix.py --data mnist_png.tgz                      # settings default, avx2, aten-default, threads-1
    python tools/digits_matrix.py --data mnist_png.tgz --settings avx2     # one setting

The claims checked (printed PASS or MISS, never asserted): the default command's median final accuracy is at least 0.995,
and each one-epoch run's at least 0.99. Needs full MNIST (a few minutes per setting on 2 cores).
"""
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_matrix import SETTINGS

ONE_EPOCH = r'''
import json, sys, torch
from mnist_basics.data import load_mnist
from mnist_basics.digits import cnn_k_model, fit_model_k
from mnist_basics.fast import quick_cnn_model
data = load_mnist(sys.argv[1], digits='all')
torch.manual_seed(int(sys.argv[2]))
model = quick_cnn_model(data.train_x) if sys.argv[3] == 'quick' else cnn_k_model()
print(json.dumps(fit_model_k(model, data, epochs=1, bs=128, lr=2e-2, max_shift=0, log=None)[-1]['valid_accuracy']))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True, help='full MNIST folder or .tgz')
    ap.add_argument('--settings', nargs='*', default=['default', 'avx2', 'aten-default', 'threads-1'], choices=list(SETTINGS))
    a = ap.parse_args()
    bin_ = Path(sys.executable).parent
    print('| setting | default command: accuracies (median) | one epoch: accuracies (median) | quick_cnn_model, one epoch: accuracies (median) |\n'
          '|---|---|---|---|', flush=True)
    ok = True
    for name in a.settings:
        env = dict(os.environ, **SETTINGS[name], PYTHONWARNINGS='ignore')
        run = lambda cmd: subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1]
        full = [json.loads(run([str(bin_/'mnist_train'), '--digits', 'all', '--model', 'cnn', '--data', a.data, '--seed', str(s), '--json']))['valid_accuracy']
                for s in (0, 1, 2)]
        one, quick = ([json.loads(run([sys.executable, '-c', ONE_EPOCH, a.data, str(s), m])) for s in (0, 1, 2)] for m in ('cnn_k', 'quick'))
        mf, mo, mq = statistics.median(full), statistics.median(one), statistics.median(quick)
        ok &= mf >= 0.995 and mo >= 0.99 and mq >= 0.99
        cells = [f"{', '.join(f'{x:.4f}' for x in v)} ({statistics.median(v):.4f})" for v in (full, one, quick)]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    print(f"\nClaims (median ≥ 0.995 after the default command, ≥ 0.99 after each one-epoch run) under every setting: {'PASS' if ok else 'MISS'}")


if __name__ == '__main__': main()
