"Shared fixtures for the tests of `mnist_basics.data`: small synthetic MNIST_SAMPLE-like folders and archives."
import os, shutil, tarfile
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

import mnist_basics.data as data

# The real fastai MNIST_SAMPLE, read-only to the tests: resolved once, before any test changes $FASTAI_HOME
# (and without `fastai_data_dir`, which would create a config.ini in a fastai folder that has none).
_home = Path(os.getenv('FASTAI_HOME', '~/.fastai')).expanduser()
REAL_SAMPLE = (data.fastai_data_dir() if (_home/'config.ini').is_file() else _home/'data')/'mnist_sample'

SMALL = {'train/3': 3, 'train/7': 4, 'valid/3': 2, 'valid/7': 1}  # a different count per folder, so mix-ups show


def digit_pixels(seed: int) -> np.ndarray:
    "A 28×28 uint8 image, different for every `seed`"
    return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


def write_png(fn, pixels=None, seed=0, mode='L', size=(28, 28), fmt='PNG') -> Path:
    "Save an image at `fn`: `pixels` if given, else random ones from `seed`, in `mode`, `size` and `fmt`"
    fn = Path(fn)
    fn.parent.mkdir(parents=True, exist_ok=True)
    if pixels is None: pixels = np.random.default_rng(seed).integers(0, 256, size[::-1], dtype=np.uint8)
    im = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert(mode)
    im.save(fn, format=fmt)
    return fn


def _make_digits(root, counts=None) -> Path:
    """Write a folder laid out like MNIST_SAMPLE at `root`: `counts` maps 'train/3', 'train/7', 'valid/3', 'valid/7'
    to how many 28×28 'L' PNGs each gets (an int gives every folder that many; default `SMALL`).
    Every image is different; folder `k`'s image `i` is `digit_pixels(seed_of(k, i))`."""
    root = Path(root)
    if counts is None: counts = SMALL
    if isinstance(counts, int): counts = {f'{s}/{d}': counts for s in data.SPLITS for d in data.DIGITS}
    for k, n in counts.items():
        (root/k).mkdir(parents=True, exist_ok=True)
        for i in range(n): write_png(root/k/f'{i:03d}.png', digit_pixels(seed_of(k, i)))
    (root/'labels.csv').write_text('name,label\n')  # like MNIST_SAMPLE; the library ignores it
    return root


def seed_of(key: str, i: int) -> int:
    "The seed `make_digits` uses for image `i` of folder `key` ('train/3', ...)"
    return 1000*list(SMALL).index(key) + i


def _make_tgz(src, fn) -> Path:
    "Pack folder `src` into the gzip-compressed tar `fn`, under one top-level folder named like `src`"
    src, fn = Path(src), Path(fn)
    fn.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fn, 'w:gz') as tf: tf.add(src, arcname=src.name)
    return fn


@pytest.fixture
def make_digits():
    "`make_digits(root, counts=None)`: write a synthetic MNIST_SAMPLE-like folder (see `_make_digits`)"
    return _make_digits


@pytest.fixture
def make_tgz():
    "`make_tgz(src, fn)`: pack folder `src` into `fn` (see `_make_tgz`)"
    return _make_tgz


@pytest.fixture
def digits(tmp_path):
    "A small synthetic data folder, `tmp_path/'mnist'`, with `SMALL` images per digit folder"
    return _make_digits(tmp_path/'mnist')


def pytest_configure(config):
    config.addinivalue_line('markers', 'real_sample: the test uses the real MNIST_SAMPLE from the $FASTAI_HOME the tests started with')


@pytest.fixture(autouse=True)
def isolated_env(request, tmp_path_factory, monkeypatch):
    """Every test gets no $MNIST_BASICS_DATA and, unless marked `real_sample`, an empty $FASTAI_HOME and a `download`
    that fails loudly, so no test reads the real fastai folder by accident or touches the network."""
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    if request.node.get_closest_marker('real_sample'):
        if not (REAL_SAMPLE/'train').is_dir():
            pytest.fail(f'the real MNIST_SAMPLE is not at {REAL_SAMPLE}: seed $FASTAI_HOME from mnist_sample.tgz (see README)')
        return
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path_factory.mktemp('fastai_home')))
    def no_download(url): raise AssertionError(f'unexpected download of {url}')
    monkeypatch.setattr(data, 'download', no_download)


@pytest.fixture(scope='session')
def real_sample(tmp_path_factory):
    "A private copy of the real MNIST_SAMPLE (without any cache file), made once per session"
    if not (REAL_SAMPLE/'train'/'3').is_dir(): pytest.fail(f'the real MNIST_SAMPLE is not at {REAL_SAMPLE}: seed $FASTAI_HOME (see README)')
    dest = tmp_path_factory.mktemp('real')/'mnist_sample'
    shutil.copytree(REAL_SAMPLE, dest, ignore=shutil.ignore_patterns(data.CACHE_NAME + '*'))
    return dest


def synthetic_mnist(n_train:int=300, n_valid:int=100, seed:int=0):
    """An `MnistData` without files: 3s brighter on the left half, 7s on the right, plus noise (easy to learn);
    3s first, as `xy` builds them, with an even split of 3s and 7s."""
    from mnist_basics.data import MnistData
    g = torch.Generator().manual_seed(seed)
    def make(n):
        y = torch.tensor([1]*(n//2) + [0]*(n - n//2))
        x = torch.rand(n, 28, 28, generator=g)*0.4
        x[y == 1, :, :14] += 0.6
        x[y == 0, :, 14:] += 0.6
        return x.view(n, 784), y.unsqueeze(1)
    d = MnistData.__new__(MnistData)
    d.path = Path('synthetic')
    (d.train_x, d.train_y), (d.valid_x, d.valid_y) = make(n_train), make(n_valid)
    return d


def synthetic_digits(digits=('0', '1', '2'), n_train:int=60, n_valid:int=30, seed:int=0, path='synthetic'):
    """An `MnistData` of three digits or more without files: class `c` brighter in its own band of rows, plus noise;
    targets are class indices, as `xy_digits` builds them."""
    from mnist_basics.data import MnistData
    g, k = torch.Generator().manual_seed(seed), len(digits)
    def make(n):
        y = torch.arange(n) % k
        x = torch.rand(n, 28, 28, generator=g)*0.4
        for c in range(k): x[y == c, c*28//k:(c + 1)*28//k] += 0.6
        return x.view(n, 784), y
    d = MnistData.__new__(MnistData)
    d.path, d.digits = Path(path), tuple(digits)
    (d.train_x, d.train_y), (d.valid_x, d.valid_y) = make(n_train), make(n_valid)
    return d


REAL_ADAMW, REAL_ONE_CYCLE = torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR  # before any test patches them

def one_cycle(lr, total):
    "The learning rates torch's OneCycleLR(max_lr=lr, total_steps=total, pct_start=0.25) gives AdamW, step by step"
    opt = REAL_ADAMW([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = REAL_ONE_CYCLE(opt, max_lr=lr, total_steps=total, pct_start=0.25)
    lrs = []
    for _ in range(total): lrs.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
    return lrs
