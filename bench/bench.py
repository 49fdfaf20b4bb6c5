#!/usr/bin/env python
"""Benchmark: the post's training loop, fastai's Learner and a plain PyTorch loop against `mnist_basics.fast.fast_fit`.

Run it from the repository root, with fastai's data folder holding MNIST_SAMPLE (or $MNIST_BASICS_DATA pointing at it):

    FASTAI_HOME=/tmp/fh python bench/bench.py                 # 20 epochs, median of 3 repeats (a few minutes)
    FASTAI_HOME=/tmp/fh python bench/bench.py --repeats 5 --json results.json
    FASTAI_HOME=/tmp/fh python bench/bench.py --quick         # 1 epoch, 1 repeat: only checks that everything runs

What it prints:
1. The machine: CPU model, cores, Python, torch (and its thread count), fastai, load average.
2. A markdown table. For each model (`linear` = `linear1`, `simple_net`) and each way of training it
   (lr=1, batch size 256, the same seed every repeat):
     - post loop:          the post's loop as written (fastai `DataLoader` over `list(zip(x, y))`, std-1 `randn` start,
                           `train_epoch`/`calc_grad`, `validate_epoch` every epoch, default threads, no denormal flush);
     - fastai Learner:     `nn.Linear`/`nn.Sequential`, `Learner(..., opt_func=SGD, loss_func=mnist_loss,
                           metrics=batch_accuracy).fit(epochs, lr=1)`, silenced;
     - PyTorch DataLoader: `TensorDataset` + `torch.utils.data.DataLoader` + the same `nn` model + `torch.optim.SGD`;
     - mnist_basics:       the library, `fast_fit` from a std-0.1 start (what `mnist_train` does),
   the median wall time, how many times slower than mnist_basics it is, the exact validation accuracy over all 2,038
   images (`exact_accuracy`, sigmoid > 0.5, the same for every method) and the process's peak RSS after the row's first run.
   Then the floor: for each model, only the matrix products `fast_fit` does (the same shapes, one thread, the same
   number of epochs, with validation), nothing else, timed in the same rounds; its FLOP count comes from the shapes.
   Then rows for loading the data (decoding the PNGs vs reading the warm cache) and for start-up (a whole
   `mnist_train --model net --json` process, and `python -c 'import torch'` for reference).
3. The floor's FLOP count and rate, and how many times the floor's time mnist_basics takes (× floor).
4. One line per target of the speed issue with the measured value and PASS or MISS. Nothing is asserted: the
   numbers depend on the machine and on what else it is doing. The rows run interleaved, round by round, so that
   load from other jobs hits every method alike; the ratios are fairer than the absolute times.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')  # raised while fastai imports

import torch
from torch import nn
from fastai.data.load import DataLoader
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import SGD
from fastai.torch_core import set_seed
import fastai, fastai.callback.progress  # noqa: F401 (adds `Learner.no_bar`)

from mnist_basics.data import load_mnist, load_stacks
from mnist_basics.linear import linear1, mnist_loss, batch_accuracy, train_epoch, validate_epoch, exact_accuracy
from mnist_basics.net import simple_net, linear_params, net_params, flush_denormal, num_threads
from mnist_basics.fast import fast_fit
from mnist_basics.train import peak_rss_mb

LR, BS = 1.0, 256
MODELS = {'linear': (linear1, linear_params), 'simple_net': (simple_net, net_params)}  # name -> (model, parameter maker)
LIB = 'mnist_basics'
LAYER_SIZES = {'linear': [28*28, 1], 'simple_net': [28*28, 30, 1]}  # inputs, then outputs of each linear layer
FLOOR = 'floor'  # the model column of the floor rows; their method column is f'{model}: matrix products only'
MNIST_TRAIN = str(Path(sys.executable).parent/'mnist_train')


def seed_everything(seed):
    "The same random start, batch order and shuffling for every run"
    torch.manual_seed(seed)
    set_seed(seed)  # python's `random` (fastai's DataLoader shuffles with it), numpy, torch


def nn_model(model):
    "The PyTorch version of `model`: nn.Linear, or Linear-ReLU-Linear like `simple_net`"
    if model == 'linear': return nn.Linear(28*28, 1)
    return nn.Sequential(nn.Linear(28*28, 30), nn.ReLU(), nn.Linear(30, 1))


def as_lesson_model(net):
    "`net` called the way the lesson's models are, `model(xb, **params)` with params = {}, for `exact_accuracy`"
    return (lambda xb: net(xb)), {}


# ----------------------------------------------------------------------------- the four ways to train
# Each takes the model name, the data, the number of epochs and the seed, and returns (seconds, model, params).
# Timed: everything after seeding (parameters, data loaders, optimiser, the epochs with that method's own validation
# after each epoch). Not timed: loading the data (timed on its own rows) and the final accuracy.

def post_loop(model, data, epochs, seed):
    "The post's loop as written"
    fn, make_params = MODELS[model]
    seed_everything(seed)
    t0 = time.perf_counter()
    params = make_params()  # randn, std 1.0: the post's init_params
    dl = DataLoader(list(zip(data.train_x, data.train_y)), batch_size=BS, shuffle=True)
    valid_dl = DataLoader(list(zip(data.valid_x, data.valid_y)), batch_size=BS)
    for epoch in range(epochs):
        train_epoch(fn, params, dl, LR)
        validate_epoch(fn, params, valid_dl)
    return time.perf_counter() - t0, fn, params


def fastai_learner(model, data, epochs, seed):
    "fastai's Learner with fastai's SGD, the lesson's loss and metric, progress bar and logging off"
    seed_everything(seed)
    t0 = time.perf_counter()
    net = nn_model(model)
    dls = DataLoaders(DataLoader(list(zip(data.train_x, data.train_y)), batch_size=BS, shuffle=True),
                      DataLoader(list(zip(data.valid_x, data.valid_y)), batch_size=BS))
    learn = Learner(dls, net, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, lr=LR)
    return (time.perf_counter() - t0, *as_lesson_model(net))


def torch_dataloader(model, data, epochs, seed):
    "Plain PyTorch: TensorDataset, DataLoader, nn model, optim.SGD; the exact accuracy after each epoch"
    seed_everything(seed)
    t0 = time.perf_counter()
    net = nn_model(model)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train_x, data.train_y), batch_size=BS, shuffle=True)
    for epoch in range(epochs):
        for xb, yb in dl:
            loss = mnist_loss(net(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        exact_accuracy(*as_lesson_model(net), data.valid_x, data.valid_y)  # per-epoch validation, as the others do
    return (time.perf_counter() - t0, *as_lesson_model(net))


def library(model, data, epochs, seed):
    "The library: `fast_fit` from a std-0.1 start, as `mnist_train` trains"
    fn, make_params = MODELS[model]
    seed_everything(seed)
    t0 = time.perf_counter()
    params = make_params(std=0.1)
    fast_fit(params, data, epochs=epochs, lr=LR, bs=BS, log=None)
    return time.perf_counter() - t0, fn, params


METHODS = {'post loop': post_loop, 'fastai Learner': fastai_learner, 'PyTorch DataLoader': torch_dataloader, LIB: library}


def training_row(method, model, data, epochs, seed):
    "A row's run: train with `method`, then the exact validation accuracy, computed the same way for every method"
    seconds, fn, params = METHODS[method](model, data, epochs, seed)
    return dict(seconds=seconds, accuracy=exact_accuracy(fn, params, data.valid_x, data.valid_y))


# ----------------------------------------------------------------------------- the floor: the matrix products alone

def floor_method(model): return f'{model}: matrix products only'


def matrix_product_flops(model, n_train, n_valid, epochs):
    """The FLOP of `fast_fit`'s matrix products, counted from the shapes (a multiply-add is 2 FLOP).
    A linear layer with `i` inputs and `o` outputs costs 2·b·i·o FLOP per b images for each product: the forward
    W@a, the weight gradient g@aᵀ and, for every layer but the first, the gradient for its input Wᵀ@g.
    Validation runs the forward products over the validation set once per epoch."""
    sizes = LAYER_SIZES[model]
    layers = list(zip(sizes, sizes[1:]))
    train = sum((3 if k else 2)*2*n_train*i*o for k, (i, o) in enumerate(layers))
    valid = sum(2*n_valid*i*o for i, o in layers)
    return epochs*(train + valid)


def matmul_floor(model, data, epochs, seed):
    """Only the matrix products `fast_fit` does for `model` (same shapes and layout, same batches, one thread,
    subnormals flushed), with fixed random weights: nothing else, so no training loop can be faster"""
    torch.manual_seed(seed)
    sizes = LAYER_SIZES[model]
    x, valid_xT = data.train_x, data.valid_x.T.contiguous()
    t0 = time.perf_counter()
    Ws = [torch.randn(o, i)*0.1 for i, o in zip(sizes, sizes[1:])]  # out×in, as fast_fit stores them
    grads = [torch.empty_like(W) for W in Ws]
    with flush_denormal(), num_threads(1), torch.no_grad():
        for epoch in range(epochs):
            for i in range(0, len(x), BS):
                acts = [x[i:i+BS].T]                           # 784×b, a view, as in mlp_step
                for W in Ws: acts.append(W @ acts[-1])         # forward
                g = acts.pop()                                 # stands in for ∂loss/∂z
                for W, gW in zip(reversed(Ws), reversed(grads)):
                    a = acts.pop()
                    g_in = W.T @ g if acts else None           # no input gradient for the first layer
                    torch.mm(g, a.T, out=gW)                   # weight gradient
                    g = g_in
            a = valid_xT
            for W in Ws: a = W @ a                             # validation: forward over all 2,038 images
    seconds = time.perf_counter() - t0
    return dict(seconds=seconds, gflop=matrix_product_flops(model, len(x), valid_xT.shape[1], epochs)/1e9)


# ----------------------------------------------------------------------------- data loading and start-up

def timed(f):
    t0 = time.perf_counter(); f(); return dict(seconds=time.perf_counter() - t0)


def decode_pngs(path): return timed(lambda: load_stacks(path, cache=False))  # reads all 14,434 PNGs
def warm_cache(path): return timed(lambda: load_stacks(path))                   # reads .mnist_basics_cache.pt


def run_process(cmd):
    "Wall time of the process `cmd` (environment inherited); an error with its stderr if it fails"
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode: raise RuntimeError(f'{" ".join(cmd)} exited with {r.returncode}:\n{r.stderr[-2000:]}')
    return seconds, r.stdout


def startup_mnist_train(epochs):
    "A whole `mnist_train --model net --json` process: its time, and the accuracy it reports"
    seconds, out = run_process([MNIST_TRAIN, '--model', 'net', '--epochs', str(epochs), '--json'])
    summary = json.loads(out.strip().splitlines()[-1])
    return dict(seconds=seconds, accuracy=summary['valid_accuracy'], peak_rss_mb=summary['peak_rss_mb'])


def startup_import_torch(): return dict(seconds=run_process([sys.executable, '-c', 'import torch'])[0], peak_rss_mb=None)


# ----------------------------------------------------------------------------- machine, rows, table, targets

def machine():
    "What the numbers were measured on"
    cpu = platform.processor()
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): pass
    return dict(cpu=cpu or 'unknown', cores=os.cpu_count(),
                usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(),
                platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads(),
                fastai=fastai.__version__, loadavg=load_average())


def load_average():
    try: return os.getloadavg()
    except OSError: return None


def make_rows(data, epochs, seed):
    "(model column, method column, run) for every row of the table, in the order they run in each round"
    rows = [(model, method, lambda model=model, method=method: training_row(method, model, data, epochs, seed))
            for model in MODELS for method in METHODS]
    rows += [(FLOOR, floor_method(model), lambda model=model: matmul_floor(model, data, epochs, seed)) for model in MODELS]
    rows += [('data', 'decode PNGs', lambda: decode_pngs(data.path)),
             ('data', 'warm cache', lambda: warm_cache(data.path)),
             ('start-up', f'mnist_train --model net --epochs {epochs} --json', lambda: startup_mnist_train(epochs)),
             ('start-up', "python -c 'import torch'", startup_import_torch)]
    return rows


def run_rounds(rows, repeats):
    "Run every row once per round, `repeats` rounds, rotating the order so that no row always runs first"
    results = {(model, method): dict(model=model, method=method, runs=[]) for model, method, _ in rows}
    for r in range(repeats):
        k = r % len(rows)
        for model, method, run in rows[k:] + rows[:k]:
            res = results[(model, method)]
            res['runs'].append(run())
            if len(res['runs']) == 1: res['peak_rss_mb'] = res['runs'][0].get('peak_rss_mb', peak_rss_mb())
        print(f'round {r+1}/{repeats} done, load average {load_average()}', file=sys.stderr, flush=True)
    for res in results.values():
        res['times'] = [x['seconds'] for x in res['runs']]
        res['median_s'], res['min_s'] = statistics.median(res['times']), min(res['times'])
        accs = [x['accuracy'] for x in res['runs'] if 'accuracy' in x]
        res['accuracy'] = accs[0] if accs else None
        res['accuracies'] = accs
        if 'gflop' in res['runs'][0]: res['gflop'] = res['runs'][0]['gflop']; res['gflop_per_s'] = res['gflop']/res['median_s']
        del res['runs']
    for model in MODELS:  # x times slower than the library, same model
        lib, floor = results[(model, LIB)], results[(FLOOR, floor_method(model))]
        for method in METHODS: results[(model, method)]['ratio'] = results[(model, method)]['median_s']/lib['median_s']
        floor['ratio'] = floor['median_s']/lib['median_s']
        lib['x_floor'] = lib['median_s']/floor['median_s']  # the library's time in floors
    return list(results.values())


def fmt(x, spec, missing='–'): return missing if x is None else format(x, spec)


def print_table(results):
    print('| model | method | median s | min s | × mnist_basics | val acc (2038 images) | peak RSS MiB ¹ |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for r in results:
        rss = fmt(r.get('peak_rss_mb'), '.1f') + (' ²' if r['model'] == 'start-up' and r.get('peak_rss_mb') else '')
        print(f"| {r['model']} | {r['method']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {fmt(r.get('ratio'), '.1f')} "
              f"| {fmt(r['accuracy'], '.4f')} | {rss} |")


def print_floor(results):
    print('\nFloor (the same matrix products as mnist_basics, alone, in the same rounds; FLOP counted from the shapes):')
    for model in MODELS:
        r = next(x for x in results if x['model'] == FLOOR and x['method'] == floor_method(model))
        lib = next(x for x in results if x['model'] == model and x['method'] == LIB)
        print(f"- {model}: {r['gflop']:.2f} GFLOP in {r['median_s']:.3f} s ({r['gflop_per_s']:.1f} GFLOP/s); "
              f"mnist_basics takes {lib['median_s']:.3f} s = {lib['x_floor']:.2f}× floor")


def targets(results):
    "(description, measured, comparison, target, unit) per target of the speed issue"
    get = {(r['model'], r['method']): r for r in results}
    m = lambda model, method: get[(model, method)]['median_s']
    startup = next(r for r in results if r['method'].startswith('mnist_train'))
    return [
        ('simple_net: post loop / mnist_basics', m('simple_net', 'post loop')/m('simple_net', LIB), '>=', 25, '×'),
        ('simple_net: fastai Learner / mnist_basics', m('simple_net', 'fastai Learner')/m('simple_net', LIB), '>=', 2.5, '×'),
        ('linear: post loop / mnist_basics', m('linear', 'post loop')/m('linear', LIB), '>=', 5, '×'),
        ('simple_net: mnist_basics / its floor', get[('simple_net', LIB)]['x_floor'], '<=', 1.5, '×'),
        ('data: decode PNGs / warm cache', m('data', 'decode PNGs')/m('data', 'warm cache'), '>=', 10, '×'),
        (f"start-up: {startup['method']}", startup['median_s'], '<=', 3, ' s'),
        ('accuracy: linear, mnist_basics', get[('linear', LIB)]['accuracy'], '>=', 0.97, ''),
        ('accuracy: simple_net, mnist_basics', get[('simple_net', LIB)]['accuracy'], '>=', 0.975, ''),
    ]


def print_targets(tgts, quick, n_valid):
    print('\nTargets (medians; reported, never asserted):')
    for desc, value, op, target, unit in tgts:
        ok = value >= target if op == '>=' else value <= target
        shown = f'{value:.5f} ({round(value*n_valid)}/{n_valid} right)' if unit == '' else f"{value:{'.1f' if target >= 5 else '.2f'}}{unit}"
        print(f"- {desc}: {shown} (target {op} {target}{unit}): {'PASS' if ok else 'MISS'}")
    if quick: print('  (--quick: 1 epoch and 1 repeat, so these say nothing about the 20-epoch targets)')


def print_notes(results, epochs, repeats, seed, base_rss):
    print(f"\nEach training row: {epochs} epoch(s), lr={LR}, batch size {BS}, seed {seed} every repeat; median of {repeats} "
          "interleaved repeat(s). Timed: set-up (parameters, loaders, optimiser) and the epochs with each method's own "
          "per-epoch validation; not the data loading (its own rows) or the final accuracy. "
          "× mnist_basics: median / the library's median for the same model (for a floor row: the model it counts). "
          "× floor: the library's median / the floor's median, both measured in the same rounds.")
    print('¹ peak resident memory (VmHWM) of this process after the row\'s first run: a high-water mark, so it includes '
          'everything that ran before (rows run in table order in the first round); only a rise shows a row\'s own need. '
          f'Before the first row (torch, fastai and the data loaded) it was {base_rss:.1f} MiB.')
    print('² the mnist_train process\'s own peak, as it reports it (peak_rss_mb, first repeat).')
    unstable = [f"{r['model']}/{r['method']}" for r in results if len(set(r['accuracies'])) > 1]
    if unstable: print(f"Note: accuracy differed between repeats with the same seed for: {', '.join(unstable)}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=3, help='repeats per row; the table shows medians (default 3)')
    p.add_argument('--epochs', type=int, default=20, help='epochs per training run (default 20)')
    p.add_argument('--seed', type=int, default=42, help='seed for every run (default 42)')
    p.add_argument('--quick', action='store_true', help='1 epoch, 1 repeat: a fast check that every row runs')
    p.add_argument('--json', metavar='FILE', help='also write the results to FILE as JSON')
    args = p.parse_args(argv)
    if args.quick: args.epochs, args.repeats = 1, 1
    if args.repeats < 1 or args.epochs < 1: p.error('--repeats and --epochs must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    mach = machine()
    print(f"Machine: {mach['cpu']}, {mach['cores']} cores ({mach['usable_cores']} usable), {mach['platform']}")
    print(f"Python {mach['python']}, torch {mach['torch']} ({mach['torch_threads']} threads, "
          f"{mach['torch_interop_threads']} inter-op), fastai {mach['fastai']}; load average at start {mach['loadavg']}")
    data = load_mnist()
    load_stacks(data.path)  # the first call writes the cache if it is missing, so 'warm cache' and mnist_train read it
    print(f'Data: {data}\n', flush=True)
    base_rss = peak_rss_mb()
    results = run_rounds(make_rows(data, args.epochs, args.seed), args.repeats)
    print_table(results)
    print_floor(results)
    tgts = targets(results)
    print_targets(tgts, args.quick, len(data.valid_x))
    print_notes(results, args.epochs, args.repeats, args.seed, base_rss)
    total = time.perf_counter() - t_start
    print(f'\nLoad average at end {load_average()}; benchmark took {total:.0f} s.')
    if args.json:
        out = dict(machine=mach, settings=dict(epochs=args.epochs, repeats=args.repeats, seed=args.seed, lr=LR, bs=BS, quick=args.quick),
                   data=str(data.path), rows=results, total_s=total, peak_rss_mb_before_rows=base_rss,
                   targets=[dict(target=d, measured=v, op=op, value=t, unit=u.strip(), met=v >= t if op == '>=' else v <= t)
                            for d, v, op, t, u in tgts])
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
