"All ten digits (issue 11): both folder layouts, choosing digits, the ten-digit stand-in, the cache, ten-class models and the command."
import json, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pytest, torch
import mnist_basics.data as data
from mnist_basics.data import (parse_digits, check_layout, layout_of, find_data, load_mnist, load_stacks, cache_name, make_standin,
                               ALL_DIGITS, DIGITS, FULL_SPLITS, SPLITS, MnistData)
from conftest import write_png, digit_pixels

FULL = {'training': 3, 'testing': 2}  # images per digit folder in the small full-MNIST-like folder

def make_full(root, digits=ALL_DIGITS, counts=FULL) -> Path:
    "A tiny folder laid out like full MNIST: training/<digit>, testing/<digit>; every image different"
    root = Path(root)
    for s, n in counts.items():
        for d in digits:
            for i in range(n): write_png(root/s/d/f'{i}.png', digit_pixels(1000*int(d) + 100*(s == 'testing') + i))
    return root

@pytest.fixture
def full(tmp_path): return make_full(tmp_path/'mnist_png')

# 1. Choosing digits
@pytest.mark.parametrize('given, expected', [(None, ('3', '7')), ('all', ALL_DIGITS), ('ALL', ALL_DIGITS), ('7,3', ('3', '7')),
                                             ('0, 1,2', ('0', '1', '2')), ([9, 0], ('0', '9')), (('3', '7'), ('3', '7'))])
def test_parse_digits(given, expected): assert parse_digits(given) == expected

@pytest.mark.parametrize('given, message', [('3,12', "unknown digit '12'"), ('3,x', "unknown digit 'x'"), ('3,,7', "unknown digit ''"),
                                            ('3,7,3', 'the digit 3 is listed twice'), ([1, 1], 'the digit 1 is listed twice'),
                                            ('5', 'need at least two digits'), ([], 'need at least two digits')])
def test_parse_digits_refuses(given, message):
    with pytest.raises(ValueError, match=f'^digits: {message}'): parse_digits(given)

# 2. Layouts
def test_full_layout_checked(full):
    assert layout_of(full) == FULL_SPLITS and check_layout(full, 'all') == full and check_layout(full) == full

def test_missing_digit_folder_named(full):
    import shutil; shutil.rmtree(full/'testing'/'5')
    with pytest.raises(FileNotFoundError, match='not laid out like full MNIST: expected a folder testing/5 in it'): check_layout(full, 'all')
    assert check_layout(full, '3,7') == full  # the digits asked for are all there

def test_neither_layout(tmp_path):
    (tmp_path/'flat'/'3').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='not laid out like full MNIST: expected folders training/ and testing/.*or like MNIST_SAMPLE'):
        check_layout(tmp_path/'flat', 'all')
    with pytest.raises(FileNotFoundError, match='not laid out like MNIST_SAMPLE: expected a folder train/3.*or like full MNIST'):
        check_layout(tmp_path/'flat')

def test_sample_layout_has_only_3s_and_7s(digits):
    with pytest.raises(FileNotFoundError, match='expected a folder train/0 .*MNIST_SAMPLE holds only 3s and 7s'): check_layout(digits, 'all')

# 3. Loading
def test_load_all_ten(full):
    d = load_mnist(full, digits='all')
    assert d.digits == ALL_DIGITS and d.n_classes == 10
    assert d.train_x.shape == (30, 784) and d.valid_x.shape == (20, 784) and d.train_y.shape == (30,)
    assert d.train_y.tolist() == [c for c in range(10) for _ in range(3)]
    assert d.valid_y.tolist() == [c for c in range(10) for _ in range(2)]  # the held-out split is testing/
    expected = torch.from_numpy(digit_pixels(1000*4 + 100 + 1)).float().view(-1)/255
    assert torch.equal(d.valid_x[4*2 + 1], expected)
    assert repr(d) == 'MnistData(mnist_png, digits 0,1,2,3,4,5,6,7,8,9: 30 train, 20 valid)'

def test_subset_class_indices_follow_sorted_digits(full):
    d = load_mnist(full, digits='9,0,5')
    assert d.digits == ('0', '5', '9') and d.train_y.tolist() == [0]*3 + [1]*3 + [2]*3

def test_two_digits_from_full_layout_are_the_lessons_targets(full):
    d = load_mnist(full, digits='3,7')
    assert d.train_y.shape == (6, 1) and d.train_y.view(-1).tolist() == [1]*3 + [0]*3  # 3 → 1, 7 → 0, as `xy`

def test_cache_per_digit_set(full):
    cold = load_stacks(full, digits='all')
    assert (full/cache_name('all')).is_file() and cache_name('all') == '.mnist_basics_cache_0123456789.pt'
    assert not (full/data.CACHE_NAME).exists()
    warm = load_stacks(full, digits='all')
    assert warm.keys() == cold.keys() and all(torch.equal(warm[k], cold[k]) for k in cold)
    assert list(cold)[:2] == ['training/0', 'training/1'] and len(cold) == 20
    write_png(full/'training'/'4'/'new.png', digit_pixels(7))  # a new file: the cache is stale
    assert len(load_stacks(full, digits='all')['training/4']) == 4

def test_tgz_of_full_layout(full, make_tgz, tmp_path):
    fn = make_tgz(full, tmp_path/'arch'/'mnist_png.tgz')
    assert load_mnist(str(fn), digits='all').train_x.shape == (30, 784)

def test_env_and_default_lookup(full, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(full))
    assert load_mnist(digits='0,1').path == full
    monkeypatch.delenv(data.DATA_ENV)
    home = data.fastai_data_dir(); home.mkdir(parents=True, exist_ok=True); full.rename(home/'mnist_png')  # fastai's cache of URLs.MNIST
    assert find_data(digits='all') == home/'mnist_png'

# 4. Offline: the ten-digit stand-in
def test_offline_ten_digit_standin(monkeypatch):
    def offline(url): raise ConnectionError(f'no network for {url}')
    monkeypatch.setattr(data, 'download', offline)
    with pytest.warns(UserWarning, match="full MNIST is not on this machine .* stand-in for all ten digits"):
        d = load_mnist(digits='all')
    assert d.path == data.fastai_data_dir()/'mnist_standin_all' and layout_of(d.path) == FULL_SPLITS
    assert d.train_x.shape == (4000, 784) and d.valid_x.shape == (1000, 784)
    assert d.train_y.bincount().tolist() == [400]*10
    with pytest.warns(UserWarning, match='stand-in'): assert load_mnist(digits='1,2').train_x.shape == (800, 784)
    with pytest.raises(ConnectionError): load_mnist(digits='all', standin=False)
