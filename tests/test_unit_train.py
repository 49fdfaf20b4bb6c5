"Unit tests of `mnist_basics.train`: settings checks at their boundaries, atomic saving, safe loading, and `train`."
import math, os, pickle, stat, tempfile
from pathlib import Path
import pytest, torch
import mnist_basics.train as tr
from mnist_basics.train import check_settings, check_writable, save_model, load_model, settings, train
from mnist_basics.linear import linear1, exact_accuracy
from mnist_basics.net import simple_net, linear_params, net_params
from mnist_basics.cnn import cnn_forward

from mnist_basics.digits import linear_k_params, net_k_params, exact_accuracy_k

from conftest import synthetic_mnist, synthetic_digits

torch.set_num_threads(1)

GOOD = dict(model='net', epochs=1, lr=1e-9, bs=1, std=1e-9)

@pytest.mark.parametrize('bad, message', [
    (dict(model='resnet'), "unknown model 'resnet': choose one of linear, net, cnn"),
    (dict(epochs=0), 'epochs must be a positive integer, got 0'),
    (dict(epochs=2.0), 'epochs must be a positive integer, got 2.0'),
    (dict(lr=0), 'lr must be a positive finite number, got 0'),
    (dict(lr=-1e-9), 'lr must be a positive finite number, got -1e-09'),
    (dict(lr=math.inf), 'lr must be a positive finite number, got inf'),
    (dict(lr=math.nan), 'lr must be a positive finite number, got nan'),
    (dict(lr='1'), "lr must be a positive finite number, got '1'"),
    (dict(bs=0), 'bs (batch size) must be a positive integer, got 0'),
    (dict(bs=32.0), 'bs (batch size) must be a positive integer, got 32.0'),
    (dict(std=0.), 'std must be a positive finite number, got 0.0'),
    (dict(std=-1), 'std must be a positive finite number, got -1'),
    (dict(std=math.inf), 'std must be a positive finite number, got inf'),
    (dict(std=math.nan), 'std must be a positive finite number, got nan'),
    (dict(std='0.1'), "std must be a positive finite number, got '0.1'"),
    (dict(seed=-1), 'seed must be an integer from 0 to 2**64 - 1, got -1'),
    (dict(seed=2**64), f'seed must be an integer from 0 to 2**64 - 1, got {2**64}'),
    (dict(seed=1.0), 'seed must be an integer from 0 to 2**64 - 1, got 1.0'),
])
def test_check_settings_names_the_bad_one(bad, message):
    "Each bad setting: a ValueError with its own message; the smallest good values pass"
    with pytest.raises(ValueError) as e: check_settings(**(GOOD | bad))
    assert str(e.value) == message

def test_check_settings_accepts_the_boundaries(tmp_path):
    for model in ('linear', 'net', 'cnn'): check_settings(**(GOOD | dict(model=model)))
    check_settings('linear', 1, 1, 1, std=1)  # ints for lr and std
    check_settings('linear', 1, 1., 1)  # std defaults to a good value
    check_settings('linear', 1, 1., 1, seed=0); check_settings('linear', 1, 1., 1, seed=2**64 - 1)  # the seeds torch takes
    check_settings('linear', 1, 1., 1, save=tmp_path/'m.pt')
    with pytest.raises(ValueError, match='does not exist'): check_settings('linear', 1, 1., 1, save=tmp_path/'no'/'m.pt')

def test_check_writable(tmp_path, monkeypatch):
    "A folder, a missing folder or an unwritable one: a ValueError saying which; a good path passes, leaving nothing"
    check_writable(tmp_path/'m.pt'); check_writable(str(tmp_path/'m.pt'))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError) as e: check_writable(tmp_path)
    assert str(e.value) == f"cannot save to {tmp_path}: it is a folder; give a file name such as {tmp_path/'model.pt'}"
    with pytest.raises(ValueError) as e: check_writable(tmp_path/'no'/'m.pt')
    assert str(e.value) == f"cannot save to {tmp_path/'no'/'m.pt'}: the folder {tmp_path/'no'} does not exist"
    def refuse(fn): raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(tr, '_temp_beside', refuse)   # the temporary file the save will make cannot be made
    with pytest.raises(ValueError) as e: check_writable(tmp_path/'m.pt')
    assert str(e.value) == f"cannot save to {tmp_path/'m.pt'}: the folder {tmp_path} is not writable (Permission denied)"

def test_check_writable_tries_a_file_in_the_target_folder(tmp_path, monkeypatch):
    "The early check makes the very temporary file the save will make, beside the target"
    seen, real = [], tr._temp_beside
    monkeypatch.setattr(tr, '_temp_beside', lambda fn: seen.append(fn) or real(fn))
    check_writable(tmp_path/'m.pt')
    assert seen == [tmp_path/'m.pt'] and list(tmp_path.iterdir()) == []

# ---- save_model, load_model ----

def test_save_and_load_round_trip(tmp_path):
    "save_model writes the format, name, plain CPU tensors and meta; load_model gives them back with the model"
    torch.manual_seed(0); params = net_params(n_hidden=5)
    fn = save_model(str(tmp_path/'m.pt'), 'net', params, accuracy=0.5, arch=dict(n_hidden=5))
    assert fn == tmp_path/'m.pt' and isinstance(fn, Path) and os.listdir(tmp_path) == ['m.pt']
    raw = torch.load(fn, weights_only=True)
    assert raw.keys() == {'format', 'model', 'params', 'meta'} and raw['format'] == 'mnist_basics' and raw['model'] == 'net'
    assert raw['meta'] == dict(accuracy=0.5, arch=dict(n_hidden=5)) and not any(v.requires_grad for v in raw['params'].values())
    name, model, loaded, meta = load_model(fn)
    assert (name, model, meta) == ('net', simple_net, dict(accuracy=0.5, arch=dict(n_hidden=5)))
    assert loaded.keys() == params.keys() and all(torch.equal(loaded[k], params[k].detach()) for k in params)
    assert load_model(str(fn))[0] == 'net'

def test_save_model_writes_a_temporary_file_beside_the_target_then_renames(tmp_path, monkeypatch):
    "While torch.save writes, the target is untouched and the bytes go to `m.pt.*.tmp` in the same folder"
    fn = save_model(tmp_path/'m.pt', 'linear', linear_params(), note='old')
    old, real, seen = fn.read_bytes(), torch.save, []
    def watching_save(obj, f):
        seen.append((sorted(os.listdir(tmp_path)), fn.read_bytes() == old)); real(obj, f)
    monkeypatch.setattr(torch, 'save', watching_save)
    save_model(fn, 'linear', linear_params(), note='new')
    (names, untouched), = seen
    assert untouched and len(names) == 2 and names[0] == 'm.pt' and names[1].startswith('m.pt.') and names[1].endswith('.tmp')
    assert os.listdir(tmp_path) == ['m.pt'] and load_model(fn)[3] == dict(note='new')

@pytest.mark.parametrize('error', [KeyboardInterrupt, OSError])
def test_save_model_failing_half_way_keeps_the_old_file(tmp_path, monkeypatch, error):
    "A save that writes part of the file and then fails (disk full, Ctrl-C) leaves the old file whole and no temporary file"
    fn = save_model(tmp_path/'m.pt', 'linear', linear_params(), note='old')
    old = fn.read_bytes()
    def half_then_fail(obj, f):
        f.write(b'half a model'); f.flush(); raise error('No space left on device')
    monkeypatch.setattr(torch, 'save', half_then_fail)
    with pytest.raises(error, match='No space left'): save_model(fn, 'linear', linear_params(), note='new')
    assert fn.read_bytes() == old and os.listdir(tmp_path) == ['m.pt']

def test_load_model_asks_torch_for_weights_only(tmp_path, monkeypatch):
    "torch.load is called with weights_only=True (whatever this torch's default) and onto the CPU unless told"
    fn = save_model(tmp_path/'m.pt', 'linear', linear_params())
    calls, real = [], torch.load
    monkeypatch.setattr(torch, 'load', lambda f, **kw: calls.append(kw) or real(f, **kw))
    load_model(fn); load_model(fn, device='meta')
    assert calls == [dict(weights_only=True, map_location='cpu'), dict(weights_only=True, map_location='meta')]

class Evil:
    def __reduce__(self): return (os.system, ('echo pwned',))

def test_load_model_errors(tmp_path, monkeypatch):
    "Missing, unreadable, code-carrying and foreign files: each refused with its own message naming the file"
    with pytest.raises(FileNotFoundError) as e: load_model(tmp_path/'absent.pt')
    assert str(e.value) == f'model file not found: {tmp_path/"absent.pt"}'
    with pytest.raises(ValueError) as e: load_model(tmp_path)
    assert str(e.value) == f'{tmp_path} is a folder, not a model file'
    fn = tmp_path/'evil.pt'; torch.save({'format': 'mnist_basics', 'obj': Evil()}, fn)
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == (f"{fn} is not a mnist_basics model file: it holds Python objects other than tensors and plain "
                            "values, refused because loading them could run code")
    fn = tmp_path/'junk.pt'; fn.write_bytes(pickle.dumps([1, 2]) + b'x')  # a pickle, but not a torch file
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value).startswith(f'{fn} is not a mnist_basics model file (unreadable: ') and 'could run code' not in str(e.value)
    def fails(f, **kw): raise pickle.UnpicklingError('first line ' + 'x'*300 + '\nsecond line')
    monkeypatch.setattr(torch, 'load', fails)
    with pytest.raises(ValueError) as e: load_model(tmp_path/'evil.pt')
    assert str(e.value) == f"{tmp_path/'evil.pt'} is not a mnist_basics model file (first line …)"  # cut at a word, not mid-word

@pytest.mark.parametrize('state', [
    [1, 2, 3], dict(format='other', model='net', params={}, meta={}), dict(model='net', params={}, meta={}),
    dict(format='mnist_basics', model='net', params=[1], meta={}), dict(format='mnist_basics', model=3, params={}, meta={}),
    dict(format='mnist_basics', model='net', params={}, meta=[1]),
], ids=['list', 'other-format', 'no-format', 'params-list', 'model-number', 'meta-list'])
def test_load_model_refuses_what_save_model_does_not_write(tmp_path, state):
    fn = tmp_path/'m.pt'; torch.save(state, fn)
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == f"{fn} is not a mnist_basics model file: expected what save_model writes (model name and state dict)"

def test_load_model_checks_name_shapes_and_architecture(tmp_path):
    p = linear_params()
    save_model(tmp_path/'u.pt', 'transformer', p)
    with pytest.raises(ValueError) as e: load_model(tmp_path/'u.pt')
    assert str(e.value) == f"{tmp_path/'u.pt'}: unknown model 'transformer'; this version knows linear, net, cnn"
    save_model(tmp_path/'s.pt', 'linear', dict(weights=p['weights'], bias=torch.zeros(2)))
    with pytest.raises(ValueError) as e: load_model(tmp_path/'s.pt')
    assert str(e.value) == (f"{tmp_path/'s.pt'}: the tensors do not fit model 'linear': expected shapes "
                            "{'weights': torch.Size([784, 1]), 'bias': torch.Size([1])}, found "
                            "{'weights': torch.Size([784, 1]), 'bias': torch.Size([2])}")
    torch.save(dict(format='mnist_basics', model='linear', params=dict(weights=p['weights'].detach(), bias=1.0), meta={}), tmp_path/'f.pt')
    with pytest.raises(ValueError, match="found {'weights': torch.Size\\(\\[784, 1\\]\\), 'bias': None}$"): load_model(tmp_path/'f.pt')
    save_model(tmp_path/'a.pt', 'net', net_params(), arch=dict(bogus=1))
    with pytest.raises(ValueError) as e: load_model(tmp_path/'a.pt')
    assert str(e.value) == f"{tmp_path/'a.pt'}: its architecture settings {{'bogus': 1}} do not fit model 'net'"
    save_model(tmp_path/'n.pt', 'net', net_params(n_hidden=4), arch=dict(n_hidden=4))
    assert load_model(tmp_path/'n.pt')[2]['w1'].shape == (784, 4)
    torch.save(dict(format='mnist_basics', model='linear', params={k: v.detach() for k, v in p.items()}), tmp_path/'bare.pt')
    assert load_model(tmp_path/'bare.pt')[::3] == ('linear', {})  # meta is optional

# ---- settings, train ----

def test_settings_fill_in_the_defaults():
    assert settings('linear') == (20, 1., 256) and settings('net') == (20, 1., 256) and settings('cnn') == (5, 1e-2, 128)
    assert settings('net', 3, 0.5, 64) == (3, 0.5, 64) and settings('cnn', bs=7) == (5, 1e-2, 7)
    with pytest.raises(ValueError) as e: settings('svm')
    assert str(e.value) == "unknown model 'svm': choose one of linear, net, cnn"

def test_train_seeds_the_start_and_passes_the_settings(monkeypatch):
    "train: starting weights from `seed` and `std`, the model's fitter called with the settings, a summary of the result"
    data, calls = synthetic_mnist(n_train=40, n_valid=30), []
    def fake_fit(params, ds, epochs, lr, bs, log):
        calls.append(({k: v.detach().clone() for k, v in params.items()}, ds, epochs, lr, bs, log))
        log('Epoch 0 accuracy: 0.0000')  # as every fitter does once per epoch: train() stamps the time and passes it on
        with torch.no_grad(): params['weights'].zero_(); params['weights'][:392] = 1; params['bias'].fill_(-300.)
        return [dict(epoch=0, train_loss=0.25, valid_accuracy=0.)]
    monkeypatch.setitem(tr.FITTERS, 'linear', fake_fit)
    monkeypatch.setattr(tr, 'default_device', lambda: torch.device('cpu', 0))  # not used: a device was given
    ticks = iter([10., 12.3456789])
    monkeypatch.setattr(tr.time, 'perf_counter', lambda: next(ticks))
    logged = []
    res = train('linear', epochs=3, lr=0.5, bs=8, seed=4, std=0.2, data=data, device='cpu', log=logged.append)
    (start, ds, *args), = calls
    assert logged == ['Epoch 0 accuracy: 0.0000'] and callable(args[-1]); args[-1] = 'LOG'
    torch.manual_seed(4); expected = linear_params(0.2)
    assert ds is data and args == [3, 0.5, 8, 'LOG'] and all(torch.equal(start[k], expected[k].detach()) for k in start)
    with torch.no_grad(): right = int(((linear1(data.valid_x, **res['params']) > 0) == (data.valid_y == 1)).sum())  # counted by hand
    assert 0 < right < 30
    summary = {k: v for k, v in res.items() if k not in ('params', 'history')}
    assert summary == dict(model='linear', epochs=3, lr=0.5, bs=8, seed=4, std=0.2, dataset='synthetic', n_train=40, n_valid=30,
                           valid_accuracy=right/30, n_wrong=30 - right, train_loss=0.25, device='cpu', seconds=2.346)  # an exact fraction (issue 22)
    assert res['history'] == [dict(epoch=0, train_loss=0.25, valid_accuracy=0., seconds=res['history'][0]['seconds'])]
    assert 0 <= res['history'][0]['seconds'] < 60 and res['params']['bias'].item() == -300.
    assert all(v.requires_grad for v in res['params'].values())

def test_train_defaults_and_real_training(monkeypatch, make_digits, tmp_path):
    "Defaults (net, 20 epochs, lr 1, bs 256, seed 100, std 0.1, default device); a data folder is loaded"
    seen = []
    monkeypatch.setitem(tr.FITTERS, 'net', lambda params, ds, **kw: seen.append((params, kw)) or [dict(train_loss=1.)])
    folder = make_digits(tmp_path/'digits', 3)
    res = train(data=folder, log=None)
    (params, kw), = seen
    torch.manual_seed(100); expected = net_params(0.1)
    assert callable(kw.pop('log'))  # train's own per-epoch time stamp, which passes lines on to `log`
    assert kw == dict(epochs=20, lr=1., bs=6) and all(  # bs 256, but no batch buffer larger than the 6 images
           torch.equal(params[k].detach(), expected[k]) for k in params)
    assert res['device'] == str(tr.default_device()) and res['n_train'] == 6 and res['dataset'] == str(folder)
    with pytest.raises(ValueError, match='std must be a positive finite number, got 0'): train('linear', std=0, data=folder)

def test_train_really_trains():
    "The real fitters, briefly: the linear model learns the synthetic digits"
    res = train('linear', epochs=2, data=synthetic_mnist(), log=None, device='cpu')
    assert res['valid_accuracy'] > 0.9 and res['n_wrong'] == round((1 - res['valid_accuracy'])*100)
    assert len(res['history']) == 2 and res['train_loss'] == res['history'][-1]['train_loss']

def test_train_puts_params_and_validation_data_on_the_device(monkeypatch):
    "The starting weights and the validation images go to `device` (here PyTorch's data-less 'meta' device)"
    seen = []
    monkeypatch.setitem(tr.FITTERS, 'linear', lambda params, ds, **kw: seen.extend(v.device.type for v in params.values()) or [dict(train_loss=1.)])
    monkeypatch.setattr(tr, 'count_right', lambda fn, params, x, y: seen.extend([x.device.type, y.device.type]) or 2)
    res = train('linear', epochs=1, data=synthetic_mnist(n_train=4, n_valid=4), device='meta', log=None)
    assert seen == ['meta']*4 and res['device'] == 'meta'

# ---- checks of the file system before and while saving ----

def test_check_writable_over_an_existing_file_and_a_name_too_long(tmp_path):
    "Replacing a file is fine (and leaves it alone); a name too long for the file system says so"
    (tmp_path/'m.pt').write_bytes(b'mine')
    check_writable(tmp_path/'m.pt')
    assert os.listdir(tmp_path) == ['m.pt'] and (tmp_path/'m.pt').read_bytes() == b'mine'
    long = tmp_path/('m'*300 + '.pt')
    with pytest.raises(ValueError) as e: check_writable(long)
    assert str(e.value) == f"cannot save to {long}: the file name is too long for this file system"

def test_save_model_file_permissions(tmp_path):
    "A new file gets what any program would make (0o666 less the umask); a replaced file keeps its own"
    old = os.umask(0o022)
    try: fn = save_model(tmp_path/'new.pt', 'linear', linear_params())
    finally: os.umask(old)
    assert stat.S_IMODE(fn.stat().st_mode) == 0o644
    fn.chmod(0o600); save_model(fn, 'linear', linear_params())
    assert stat.S_IMODE(fn.stat().st_mode) == 0o600

# ---- three digits or more ----

def test_settings_for_more_digits():
    assert settings('linear', n_classes=3) == (20, 0.1, 128) and settings('net', n_classes=10) == (20, 0.3, 128)
    assert settings('linear', n_classes=2) == (20, 1., 256)

def save_k(fn, model='linear', digits=('0', '1', '2'), n_out=3, arch=None, **meta):
    "A model file of `digits` as `mnist_train --digits` writes it, with `n_out` scores per image"
    make = dict(linear=linear_k_params, net=net_k_params)[model]
    return save_model(fn, model, make(n_out=n_out), digits=list(digits), arch=dict(n_out=n_out) if arch is None else arch, **meta)

def test_load_model_of_three_digits(tmp_path):
    "A three-digit model loads as the k-class model with its digits; asked for other digits, it says which it has"
    fn = save_k(tmp_path/'k.pt', 'net', arch=dict(n_out=3, n_hidden=256))
    name, model, params, meta = load_model(fn)
    assert (name, model, params['w2'].shape, meta['digits']) == ('net', simple_net, (256, 3), ['0', '1', '2'])
    assert load_model(fn, digits='0,1,2')[0] == 'net' and load_model(fn, digits=[2, 0, 1])[0] == 'net'
    with pytest.raises(ValueError) as e: load_model(fn, digits='3,7')
    assert str(e.value) == (f"{fn}: this model tells apart the digits 0,1,2 (3 classes); expected a model of "
                            "the digits 3,7 (2 classes)")
    fn = save_k(tmp_path/'bare.pt', arch={})  # no n_out recorded: one score per digit
    assert load_model(fn)[2]['weights'].shape == (784, 3)

def test_load_model_refuses_scores_that_do_not_fit_the_digits(tmp_path):
    "An architecture of 4 scores for 3 digits (tensors to match) is refused by name; so are bad digit lists"
    fn = save_k(tmp_path/'k.pt', n_out=4)
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == f"{fn}: its architecture gives 4 scores per image for 3 digits (0,1,2)"
    fn = save_model(tmp_path/'d.pt', 'linear', linear_params(), digits=['3', '3'])
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == f"{fn}: its digits ['3', '3'] are not a list of different digits 0 to 9"

def test_load_model_size_limit_at_its_boundary(tmp_path, monkeypatch):
    "A file of exactly MAX_MODEL_BYTES is read; one byte more is refused before reading"
    fn = save_model(tmp_path/'m.pt', 'linear', linear_params())
    size = fn.stat().st_size
    monkeypatch.setattr(tr, 'MAX_MODEL_BYTES', size)
    assert load_model(fn)[0] == 'linear'
    monkeypatch.setattr(tr, 'MAX_MODEL_BYTES', size - 1)
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == f"{fn} is too large for a model file: {size:,} bytes; the limit is MAX_MODEL_BYTES = {size - 1:,}"

def test_train_three_digits(monkeypatch):
    "Three digits: the k-class parameters, fitter, defaults and accuracy; the summary adds digits, architecture and timings"
    data, calls, real_fit = synthetic_digits(), [], tr.FITTERS_K['linear']
    def spy_fit(params, ds, **kw):
        calls.append(({k: v.detach().clone() for k, v in params.items()}, ds, kw)); return real_fit(params, ds, **kw)
    monkeypatch.setitem(tr.FITTERS_K, 'linear', spy_fit)
    ticks, fit_ticks = iter([10., 12.3456789]), iter([100.] + [100.5]*20 + [101.2345678])  # start, 20 epochs' stamps, end
    monkeypatch.setattr(tr.time, 'perf_counter', lambda: next(ticks))
    monkeypatch.setattr(tr.time, 'monotonic', lambda: next(fit_ticks))
    res = train('linear', seed=3, std=0.2, data=data, device='cpu', log=None)
    (start, ds, kw), = calls
    torch.manual_seed(3); expected = linear_k_params(0.2, n_out=3)
    assert callable(kw.pop('log')) and [h['seconds'] for h in res['history']] == [0.5]*20
    assert ds is data and kw == dict(epochs=20, lr=0.1, bs=60)  # DEFAULTS_K; bs 128, no larger than the data
    assert start.keys() == expected.keys() and all(torch.equal(start[k], expected[k].detach()) for k in start)
    acc = exact_accuracy_k(linear1, res['params'], data.valid_x, data.valid_y)
    assert acc > 0.9
    summary = {k: v for k, v in res.items() if k not in ('params', 'history')}
    assert summary == dict(model='linear', epochs=20, lr=0.1, bs=128, seed=3, std=0.2, dataset='synthetic', n_train=60,
                           n_valid=30, valid_accuracy=acc, n_wrong=round((1 - acc)*30), train_loss=res['history'][-1]['train_loss'],
                           device='cpu', seconds=2.346, digits=[0, 1, 2], arch=dict(n_out=3), held_out='valid', fit_seconds=1.235)

def test_train_names_the_held_out_folder_of_full_mnist(monkeypatch, tmp_path):
    "Data laid out like full MNIST (training/, testing/): the held-out images are `testing`"
    from conftest import write_png
    for s in ('training', 'testing'):
        for d in '012': write_png(tmp_path/s/d/'0.png', seed=int(d))
    monkeypatch.setitem(tr.FITTERS_K, 'linear', lambda params, ds, **kw: [dict(train_loss=1.)])
    assert train('linear', data=tmp_path, digits='0,1,2', log=None)['held_out'] == 'testing'
    (tmp_path/'valid').mkdir()  # a stray empty folder of MNIST_SAMPLE's layout changes nothing (issue 22)
    assert train('linear', data=tmp_path, digits='0,1,2', log=None)['held_out'] == 'testing'

def test_train_digits_must_match_the_data(monkeypatch):
    "Digits asked for with an `MnistData` must be its own (in any order); a folder is loaded with the digits asked for"
    data = synthetic_digits()
    monkeypatch.setitem(tr.FITTERS_K, 'linear', lambda params, ds, **kw: [dict(train_loss=1.)])
    with pytest.raises(ValueError) as e: train('linear', data=data, digits='0,1,3')
    assert str(e.value) == "digits: asked for 0,1,3 but the data holds 0,1,2"
    assert train('linear', data=data, digits=[2, 1, 0], log=None)['digits'] == [0, 1, 2]
    seen = []
    monkeypatch.setattr(tr, 'load_mnist', lambda path, digits: seen.append((path, digits)) or data)
    assert train('linear', data='some/folder', digits='2,0,1', log=None)['n_train'] == 60
    assert seen == [('some/folder', ('0', '1', '2'))]

def test_train_checks_the_seed():
    with pytest.raises(ValueError) as e: train('linear', seed=-1, data=synthetic_mnist(n_train=4, n_valid=4))
    assert str(e.value) == 'seed must be an integer from 0 to 2**64 - 1, got -1'

# ---- issue 22: what a model file unpacks to, tensors without numbers, a save check that leaves the name alone ----

def deflate(fn):
    "Rewrite the torch.save file `fn` with deflate-compressed members; the bytes it unpacks to"
    import zipfile
    with zipfile.ZipFile(fn) as z: members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(fn, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, b in members: z.writestr(name, b)
    return sum(len(b) for _, b in members)

def test_load_model_bounds_what_the_file_unpacks_to(tmp_path, monkeypatch):
    "Unpacking to exactly MAX_MODEL_BYTES is fine, one byte more is refused (before torch.load), naming both sizes"
    fn = save_model(tmp_path/'m.pt', 'linear', dict(weights=torch.zeros(784, 1), bias=torch.zeros(1)))
    unpacked = deflate(fn); size = fn.stat().st_size
    assert size < unpacked
    monkeypatch.setattr(tr, 'MAX_MODEL_BYTES', unpacked)
    assert load_model(fn)[0] == 'linear'
    monkeypatch.setattr(tr, 'MAX_MODEL_BYTES', unpacked - 1)
    with pytest.raises(ValueError) as e: load_model(fn)
    assert str(e.value) == f"{fn} unpacks to {unpacked:,} bytes, too large for a model file ({size:,} bytes compressed); the limit is MAX_MODEL_BYTES = {unpacked - 1:,}"

def test_load_model_refuses_tensors_without_their_own_numbers(tmp_path):
    "Meta tensors (unless loaded onto the meta device), a view of a larger storage: refused, naming the tensor"
    p = {k: torch.empty(v.shape, device='meta') for k, v in linear_params().items()}
    torch.save(dict(format='mnist_basics', model='linear', params=p, meta={}), tmp_path/'meta.pt')
    with pytest.raises(ValueError) as e: load_model(tmp_path/'meta.pt')
    assert str(e.value) == f"{tmp_path/'meta.pt'}: its tensor 'weights' holds no numbers (a tensor of PyTorch's 'meta' device, shapes only); save the trained tensors"
    assert load_model(tmp_path/'meta.pt', device='meta')[2]['weights'].is_meta
    view = dict(weights=torch.zeros(1000)[:784].view(784, 1), bias=torch.zeros(1))
    torch.save(dict(format='mnist_basics', model='linear', params=view, meta={}), tmp_path/'view.pt')
    with pytest.raises(ValueError) as e: load_model(tmp_path/'view.pt')
    assert str(e.value) == f"{tmp_path/'view.pt'}: its tensor 'weights' needs 3,136 bytes but comes with 4,000: a view of a larger storage, not what save_model writes"
    exact = dict(weights=torch.zeros(785)[:784].view(784, 1), bias=torch.zeros(1))  # one number more: refused too
    torch.save(dict(format='mnist_basics', model='linear', params=exact, meta={}), tmp_path/'v2.pt')
    with pytest.raises(ValueError, match='needs 3,136 bytes but comes with 3,140'): load_model(tmp_path/'v2.pt')

def test_check_writable_name_length_at_the_limit(tmp_path, monkeypatch):
    "A name of exactly the file system's limit passes (nothing created), one byte more is refused; the target name is never touched"
    limit = os.pathconf(tmp_path, 'PC_NAME_MAX')
    check_writable(tmp_path/('a'*limit))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError) as e: check_writable(tmp_path/('a'*(limit + 1)))
    assert str(e.value) == f"cannot save to {tmp_path/('a'*(limit + 1))}: the file name is too long for this file system"
    monkeypatch.setattr(tr, '_name_max', lambda folder: 10)  # a file system with short names
    check_writable(tmp_path/'abcdefghij')
    with pytest.raises(ValueError, match='the file name is too long'): check_writable(tmp_path/'abcdefghijk')
    monkeypatch.setattr(tr, '_name_max', lambda folder: None)  # a system that does not say: the temporary file is the test
    check_writable(tmp_path/'abcdefghijk')
    assert os.listdir(tmp_path) == []


def test_help_states_the_defaults():
    "`mnist_train --help` gives each default that `settings` uses, for 3s and 7s and for three digits or more"
    import inspect, re
    src = inspect.getsource(tr.mnist_train)
    def comment(arg): return re.search(rf'^\s*{arg}:\w+=None, #(.*)$', src, re.M).group(1)
    num = lambda v: f'{v:g}'
    for arg in ('epochs', 'lr', 'bs'):
        two, many = comment(arg).split('for 3+ digits:')
        assert f'default: {num(tr.DEFAULTS["net"][arg])}' in two and f'cnn {num(tr.DEFAULTS["cnn"][arg])}' in two, (arg, two)
        assert tr.DEFAULTS['linear'][arg] == tr.DEFAULTS['net'][arg]  # the help gives one number for both
        said = [num(float(x)) for x in re.findall(r'[\d.]+', many)]
        assert said == [num(tr.DEFAULTS_K[m][arg]) for m in ('linear', 'net', 'cnn')], (arg, many)
