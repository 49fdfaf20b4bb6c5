#!/usr/bin/env python
"""Run the notebooks under several "CPUs": kernel instruction sets and thread counts that change floating-point rounding.

A reader's CPU is not ours. PyTorch (ATen), MKL and oneDNN pick their vectorised kernels from what the CPU offers,
and the thread count changes the order of additions in reductions, so the same seed can give a slightly different
model on another machine. Every claim a notebook asserts must hold under every setting here.

    python tools/kernel_matrix.py                       # every setting, every notebook (nbdev_test); a summary table
    python tools/kernel_matrix.py --settings avx2       # one setting (CI runs this one after the default run)
    python tools/kernel_matrix.py --measure             # also: the CNN's mistakes for seeds 0-2 and mnist_train's seed
    python tools/kernel_matrix.py --list                # the settings and their environment variables

Run it from the repository root with the venv's python (it calls `nbdev_test` next to that python). It exits non-zero
if any notebook fails under any setting.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

# name -> environment variables. 'avx2' is what an AVX2-only CPU (most laptops) runs; on a CPU with AVX-512 it changes
# MKL's, ATen's and oneDNN's kernels, and on a CPU without AVX-512 it changes nothing, so CI can always run it.
SETTINGS = {
    'default': {},
    'avx2': dict(MKL_ENABLE_INSTRUCTIONS='AVX2', ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2'),
    'aten-default': dict(ATEN_CPU_CAPABILITY='default'),   # PyTorch's own kernels without explicit vector instructions
    'threads-1': dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'),
    'threads-2': dict(OMP_NUM_THREADS='2', MKL_NUM_THREADS='2'),
}

# What `--measure` runs under each setting: the CNN headline (seeds 0, 1, 2 of `fit_cnn`) and what a user sees first
# (`train('cnn')` with the command's default seed). Prints one JSON line.
MEASURE = r'''
import json, torch
from mnist_basics.data import load_mnist
from mnist_basics.cnn import cnn_params, fit_cnn, cnn_forward
from mnist_basics.linear import exact_accuracy
from mnist_basics.train import train
data = load_mnist()
wrong = {}
for seed in (0, 1, 2):
    torch.manual_seed(seed); p = cnn_params()
    fit_cnn(p, data, log=None)
    wrong[seed] = round((1 - exact_accuracy(cnn_forward, p, data.valid_x, data.valid_y))*len(data.valid_x))
wrong['mnist_train'] = train('cnn', data=data, log=None, device='cpu')['n_wrong']
print(json.dumps(dict(capability=torch.backends.cpu.get_cpu_capability(), wrong=wrong)))
'''


def env_for(name:str) -> dict:
    "The process environment with setting `name` applied"
    return {**os.environ, **SETTINGS[name], 'MPLBACKEND': 'Agg'}


def run_notebooks(name:str, nbdev_test:Path, path:str|None) -> tuple:
    "(passed, seconds, last lines of output) of `nbdev_test` under setting `name`"
    cmd = [str(nbdev_test)] + (['--path', path] if path else [])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env_for(name), capture_output=True, text=True)
    return r.returncode == 0, time.perf_counter() - t0, (r.stdout + r.stderr).strip().splitlines()[-30:]


def measure(name:str) -> dict:
    "The CNN's mistakes (of 2,038) for seeds 0-2 and for `train('cnn')` under setting `name`"
    r = subprocess.run([sys.executable, '-c', MEASURE], env=env_for(name), capture_output=True, text=True)
    if r.returncode: return dict(error=r.stderr.strip().splitlines()[-1:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--settings', default=','.join(SETTINGS), help='comma-separated names (default: all)')
    ap.add_argument('--path', help='one notebook or folder for nbdev_test (default: every notebook)')
    ap.add_argument('--measure', action='store_true', help='also measure the CNN under each setting')
    ap.add_argument('--no-notebooks', action='store_true', help='skip nbdev_test (with --measure)')
    ap.add_argument('--list', action='store_true', help='print the settings and exit')
    args = ap.parse_args()
    if args.list:
        for k, v in SETTINGS.items(): print(f"{k:13} {' '.join(f'{a}={b}' for a, b in v.items()) or '(environment as it is)'}")
        return 0
    names = [n.strip() for n in args.settings.split(',') if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown: ap.error(f"unknown setting(s) {', '.join(unknown)}: choose from {', '.join(SETTINGS)}")
    nbdev_test = Path(sys.executable).parent/'nbdev_test'
    if not args.no_notebooks and not nbdev_test.exists(): ap.error(f'{nbdev_test} not found: run with the venv python')
    failed, rows = [], []
    for name in names:
        row = [name]
        if not args.no_notebooks:
            ok, secs, tail = run_notebooks(name, nbdev_test, args.path)
            row.append(f"{'pass' if ok else 'FAIL'} ({secs:.0f} s)")
            if not ok: failed.append(name); print(f'== {name}: nbdev_test failed\n' + '\n'.join(tail), flush=True)
        if args.measure: row.append(json.dumps(measure(name)))
        print(' | '.join(row), flush=True); rows.append(row)
    print('\nsetting | ' + ('notebooks | ' if not args.no_notebooks else '') + ('CNN mistakes of 2,038' if args.measure else ''))
    for row in rows: print(' | '.join(row))
    if failed: print(f"failed under: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__': sys.exit(main())
