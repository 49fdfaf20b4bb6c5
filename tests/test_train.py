"The mnist_train command and model files: bad settings, unwritable --save, bad model files, divergence."
import json, math, os, subprocess, sys
from pathlib import Path
import pytest, torch
from mnist_basics.data import load_mnist, MnistData
from mnist_basics.net import fit, simple_net, net_params, linear_params
from mnist_basics.linear import exact_accuracy
from mnist_basics.train import mnist_train, save_model, load_model

from conftest import REAL_SAMPLE

CMD = str(Path(sys.executable).parent/'mnist_train')

pytestmark = pytest.mark.real_sample  # trains on the real sample (see conftest.isolated_env)

@pytest.fixture(scope='module')
def small_data():
    "The real sample, cut to 1,000 training and 300 validation images so that runs take a moment"
    d = load_mnist(REAL_SAMPLE)
    s = MnistData.__new__(MnistData)
    idx = torch.randperm(len(d.train_x), generator=torch.Generator().manual_seed(0))[:1000]
    s.path, s.train_x, s.train_y = d.path, d.train_x[idx], d.train_y[idx]
    s.valid_x, s.valid_y = d.valid_x[::7], d.valid_y[::7]
    return s

def run_cli(capsys, *args):
    "Call mnist_train in-process with `args`; (exit code, stdout, stderr)"
    with pytest.raises(SystemExit) as e: mnist_train(*args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err

@pytest.mark.parametrize('kwargs, message', [
    (dict(model='resnet'), "unknown model 'resnet': choose one of linear, net"),
    (dict(epochs=0), 'epochs must be a positive integer, got 0'),
    (dict(epochs=-3), 'epochs must be a positive integer, got -3'),
    (dict(lr=0.), 'lr must be a positive finite number, got 0.0'),
    (dict(lr=-1.), 'lr must be a positive finite number, got -1.0'),
    (dict(lr=float('nan')), 'lr must be a positive finite number, got nan'),
    (dict(lr=float('inf')), 'lr must be a positive finite number, got inf'),
    (dict(bs=0), r'bs \(batch size\) must be a positive integer, got 0'),
])
def test_bad_settings_exit_2_before_training(capsys, kwargs, message):
    args = dict(model='net', epochs=1, lr=1., bs=256, seed=0, data=None, save=None, json=False) | kwargs
    with pytest.raises(SystemExit) as e: mnist_train(**args)
    out = capsys.readouterr()
    assert e.value.code == 2
    assert 'mnist_train: error:' in out.err
    import re; assert re.search(message, out.err), out.err
    assert 'Epoch' not in out.out

@pytest.mark.parametrize('where', ['missing_folder', 'folder', 'readonly'])
def test_unwritable_save_fails_before_training(capsys, tmp_path, where):
    if where == 'missing_folder': target, message = tmp_path/'nope'/'m.pt', 'does not exist'
    elif where == 'folder': target, message = tmp_path, 'it is a folder'
    else:
        ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o500)
        target, message = ro/'m.pt', 'is not writable'
        if os.access(ro, os.W_OK): target = Path('/proc')/'m.pt'  # root may write anywhere but in /proc
    with pytest.raises(SystemExit) as e: mnist_train(model='linear', epochs=1, save=str(target))
    out = capsys.readouterr()
    assert e.value.code == 2 and message in out.err and str(target) in out.err
    assert 'Epoch' not in out.out

def test_cli_json_and_save(tmp_path):
    "The real console script: one line per epoch, JSON last, and a model file that loads with the same accuracy"
    fn = tmp_path/'lin.pt'
    r = subprocess.run([CMD, '--model', 'linear', '--epochs', '2', '--json', '--save', str(fn), '--seed', '3'],
                       capture_output=True, text=True, check=True)
    lines = r.stdout.strip().splitlines()
    assert [l.split(':')[0] for l in lines[:-1]] == ['Epoch 0 accuracy', 'Epoch 1 accuracy']
    summary = json.loads(lines[-1])
    for k in 'model epochs lr bs seed dataset n_train n_valid valid_accuracy seconds peak_rss_mb'.split(): assert k in summary
    assert (summary['model'], summary['epochs'], summary['seed'], summary['n_valid']) == ('linear', 2, 3, 2038)
    name, model, params, meta = load_model(fn)
    d = load_mnist()
    with torch.no_grad(): said_3 = (d.valid_x@params['weights'] + params['bias']).view(-1) > 0  # counted by hand, not by exact_accuracy
    wrong = (said_3 != (d.valid_y.view(-1) == 1)).sum().item()
    assert name == 'linear' and summary['n_wrong'] == wrong and summary['valid_accuracy'] == pytest.approx(1 - wrong/2038, abs=1e-6)
    assert summary['valid_accuracy'] > 0.9 and meta['accuracy'] == summary['valid_accuracy']
    assert not list(tmp_path.glob('*.tmp'))

def test_cli_error_exit_code():
    r = subprocess.run([CMD, '--model', 'nope'], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr

def test_load_model_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='model file not found: .*absent.pt'): load_model(tmp_path/'absent.pt')

def test_load_model_not_a_model(tmp_path):
    fn = tmp_path/'junk.pt'; fn.write_bytes(b'this is not a torch file')
    with pytest.raises(ValueError, match=r'junk.pt is not a mnist_basics model file \(unreadable'): load_model(fn)

def test_load_model_plain_tensor(tmp_path):
    fn = tmp_path/'t.pt'; torch.save(torch.zeros(3), fn)
    with pytest.raises(ValueError, match='t.pt is not a mnist_basics model file: expected'): load_model(fn)

class Evil:
    def __reduce__(self): return (os.system, ('echo pwned',))

def test_load_model_refuses_arbitrary_pickles(tmp_path):
    fn = tmp_path/'evil.pt'; torch.save({'format': 'mnist_basics', 'obj': Evil()}, fn)
    with pytest.raises(ValueError, match='refused because loading them could run code'): load_model(fn)

def test_load_model_wrong_shapes(tmp_path):
    fn = tmp_path/'wrong.pt'
    save_model(fn, 'net', linear_params())  # a linear model's tensors saved under the name 'net'
    with pytest.raises(ValueError, match="do not fit model 'net'"): load_model(fn)
    p = net_params(); p['w1'] = torch.zeros(784, 31)
    save_model(fn, 'net', p)
    with pytest.raises(ValueError, match=r"expected shapes .*'w1': torch.Size\(\[784, 30\]\)"): load_model(fn)

def test_load_model_unknown_name(tmp_path):
    fn = tmp_path/'m.pt'; save_model(fn, 'transformer', linear_params())
    with pytest.raises(ValueError, match="unknown model 'transformer'"): load_model(fn)

def test_save_model_interrupted_keeps_old_file(tmp_path, monkeypatch):
    fn = tmp_path/'m.pt'; save_model(fn, 'linear', linear_params(), note='old')
    def boom(obj, f, *a, **k): f.write(b'half a model'); raise KeyboardInterrupt  # writes part of the file, then fails
    monkeypatch.setattr(torch, 'save', boom)
    with pytest.raises(KeyboardInterrupt): save_model(fn, 'linear', linear_params(), note='new')
    monkeypatch.undo()
    assert load_model(fn)[3]['note'] == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['m.pt']

def test_divergence_names_the_epoch(small_data):
    import copy
    bad = copy.copy(small_data); bad.train_x = small_data.train_x.clone(); bad.train_x[5, 3] = math.nan
    with pytest.raises(FloatingPointError, match='diverged in epoch 0'):
        fit(simple_net, net_params(), bad, epochs=3, log=None)

def test_huge_lr_diverges_with_message(small_data):
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r'diverged in epoch \d+: the training loss is nan'):
        fit(simple_net, net_params(), small_data, epochs=5, lr=1e38, log=None)

def test_same_seed_same_numbers(small_data):
    "Same seed, same numbers; and the numbers are right: those of train_epoch over shuffled batches, and it learns"
    from mnist_basics.data import Batches
    from mnist_basics.linear import train_epoch
    def run(seed):
        torch.manual_seed(seed); return fit(simple_net, net_params(0.1), small_data, epochs=2, log=None)
    first = run(7)
    assert first == run(7)
    assert first != run(8)
    torch.manual_seed(7); params = net_params(0.1)
    dl = Batches(small_data.train_x, small_data.train_y, 256, shuffle=True)
    losses = [train_epoch(simple_net, params, dl, 1.) for _ in range(2)]
    assert [h['train_loss'] for h in first] == losses
    assert first[-1]['valid_accuracy'] == exact_accuracy(simple_net, params, small_data.valid_x, small_data.valid_y) > 0.9

def test_bad_data_exits_2_naming_the_path(capsys, tmp_path):
    code, out, err = run_cli(capsys, 'linear', 1, 1., 256, 0, 0.1, str(tmp_path/'nowhere'))
    assert code == 2 and 'mnist_train: error: MNIST data folder not found' in err and str(tmp_path/'nowhere') in err
    assert 'Epoch' not in out

def test_divergence_exits_1_naming_the_epoch(capsys):
    code, out, err = run_cli(capsys, 'net', 3, 1e38)
    assert code == 1 and 'mnist_train: error: training diverged in epoch' in err

def test_cli_json_history_per_epoch():
    "--json carries the history a user can plot: per epoch, seconds since training began, training loss, held-out accuracy"
    r = subprocess.run([CMD, '--model', 'linear', '--epochs', '3', '--json', '--seed', '1'], capture_output=True, text=True, check=True)
    lines = r.stdout.strip().splitlines()
    hist = json.loads(lines[-1])['history']
    assert [h['epoch'] for h in hist] == [0, 1, 2] and all(set(h) == {'epoch', 'seconds', 'train_loss', 'valid_accuracy'} for h in hist)
    secs = [h['seconds'] for h in hist]
    assert 0 <= secs[0] <= secs[1] <= secs[2] <= json.loads(lines[-1])['seconds']
    assert [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist] == lines[:-1]  # the lines it printed
    assert all(0 < h['train_loss'] < 1 for h in hist)
