"Unit tests of `mnist_basics.cnn`: the architecture, eval-mode scoring, random shifts, and `fit_cnn`'s optimiser and schedule."
import pytest, torch
from torch import nn
import torch.nn.functional as F
import mnist_basics.cnn as cnn
from mnist_basics.cnn import cnn_model, cnn_params, cnn_forward, shift_batch, fit_cnn
from mnist_basics.linear import exact_accuracy
from mnist_basics.net import MODELS

from conftest import synthetic_mnist, one_cycle

torch.set_num_threads(1)

SHAPES = {'0.0.weight': (8, 1, 3, 3), '1.0.weight': (16, 8, 3, 3), '2.0.weight': (32, 16, 3, 3), '3.0.weight': (64, 32, 3, 3),
          '6.weight': (1, 64), '6.bias': (1,)} | {f'{i}.1.{k}': (c,) for i, c in enumerate((8, 16, 32, 64))
                                                  for k in ('weight', 'bias', 'running_mean', 'running_var')}

def test_cnn_model_architecture():
    "Four stride-2 blocks halve 28 pixels to 2 (8, 16, 32, 64 channels), then pool and one score"
    m = cnn_model()
    sizes, x = [], torch.zeros(2, 1, 28, 28)
    for block in m[:4]:
        assert isinstance(block[1], nn.BatchNorm2d) and isinstance(block[2], nn.ReLU) and block[0].bias is None
        x = block(x); sizes.append(tuple(x.shape[1:]))
    assert sizes == [(8, 14, 14), (16, 7, 7), (32, 4, 4), (64, 2, 2)]
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 1)
    assert {k: tuple(v.shape) for k, v in cnn_params().items()} == SHAPES

def test_cnn_params_are_a_fresh_state_dict_without_counters():
    "Every tensor of a new model but BatchNorm's batch counters; drawn from the seed; `std` is ignored"
    torch.manual_seed(0); a = cnn_params()
    torch.manual_seed(0); b = cnn_params(std=5.)
    assert a.keys() == SHAPES.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert MODELS['cnn'] == (cnn_forward, cnn_params)

def test_blank_cnn_draws_nothing_from_the_seed():
    torch.manual_seed(0); cnn._blank_cnn(); x = torch.randn(3)
    torch.manual_seed(0); assert torch.equal(torch.randn(3), x)

def test_cnn_forward_scores_with_running_statistics():
    "cnn_forward(x, **params) = the model in eval mode with those tensors; flat or 1×28×28 images"
    torch.manual_seed(0)
    params = cnn_params()
    for i in range(4): params[f'{i}.1.running_mean'] += 0.1*(i + 1); params[f'{i}.1.running_var'] *= 2.
    m = cnn_model(); m.load_state_dict(params, strict=False); m.eval()
    x = torch.rand(3, 784)
    with torch.no_grad(): expected = m(x.view(3, 1, 28, 28))
    assert torch.allclose(cnn_forward(x, **params), expected, atol=1e-6)
    assert torch.allclose(cnn_forward(x.view(3, 1, 28, 28), **params), expected, atol=1e-6)

def test_cnn_forward_refuses_other_tensors():
    params = cnn_params()
    w = params.pop('6.bias')
    with pytest.raises(ValueError) as e: cnn_forward(torch.zeros(1, 784), **params, extra=w)
    assert str(e.value) == "cnn_forward: expected the tensors of cnn_params(), missing ['6.bias'], unexpected ['extra']"

def find_shift(orig, out, s):
    "The (dy, dx) with `out` = `orig` moved down dy and right dx, zeros coming in; None if there is none"
    p = F.pad(orig, (s, s, s, s))
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            if torch.equal(p[s - dy:s - dy + 28, s - dx:s - dx + 28], out): return dy, dx

@pytest.mark.parametrize('s', [1, 2])
def test_shift_batch_moves_each_image_by_its_own_offset(s):
    "Every image is its own, moved by some whole-pixel offset in -s..s (all of them turn up), zeros filling in"
    torch.manual_seed(0)
    xb = torch.rand(200, 784) + 0.5  # no zero pixels: each shift is recognisable
    out = shift_batch(xb, s)
    assert out.shape == xb.shape
    shifts = [find_shift(xb[i].view(28, 28), out[i].view(28, 28), s) for i in range(len(xb))]
    assert None not in shifts
    assert set(shifts) == {(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)}

def test_shift_batch_shapes_and_no_shift():
    torch.manual_seed(0)
    xb = torch.rand(5, 1, 28, 28) + 0.5
    assert shift_batch(xb, 0) is xb
    out = shift_batch(xb)  # the default moves by at most one pixel
    assert out.shape == xb.shape and all(find_shift(xb[i, 0], out[i, 0], 1) for i in range(5))
    assert not torch.equal(out, xb)

class Spy:
    "Records what fit_cnn's optimiser, scheduler, loss and shifts saw"
    def __init__(self, monkeypatch, schedule=True):
        self.lrs, self.wds, self.losses, self.shifts, self.threads = [], [], [], [], []
        spy = self
        class AdamW(torch.optim.AdamW):
            def step(self, *a, **k):
                spy.lrs.append(self.param_groups[0]['lr']); spy.wds.append(self.param_groups[0]['weight_decay'])
                return super().step(*a, **k)
        monkeypatch.setattr(torch.optim, 'AdamW', AdamW)
        if not schedule:  # the same training without its one-cycle schedule
            monkeypatch.setattr(torch.optim.lr_scheduler, 'OneCycleLR', lambda opt, **kw: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.))
        real_bce, real_shift, real_threads = F.binary_cross_entropy_with_logits, cnn.shift_batch, torch.set_num_threads
        def bce(out, y): loss = real_bce(out, y); spy.losses.append((loss.item(), len(y))); return loss
        monkeypatch.setattr(cnn.F, 'binary_cross_entropy_with_logits', bce)
        monkeypatch.setattr(cnn, 'shift_batch', lambda xb, s: spy.shifts.append(s) or real_shift(xb, s))
        monkeypatch.setattr(torch, 'set_num_threads', lambda n: spy.threads.append(n) or real_threads(n))

def test_fit_cnn_follows_the_one_cycle_schedule(monkeypatch):
    "Each step's learning rate is OneCycleLR's (warm-up over the first quarter, then down), with AdamW's weight decay"
    spy = Spy(monkeypatch)
    data = synthetic_mnist(n_train=96, n_valid=20)
    torch.manual_seed(0)
    fit_cnn(cnn_params(), data, epochs=2, lr=0.02, bs=16, wd=0.05, log=None)
    assert spy.lrs == pytest.approx(one_cycle(0.02, 12), rel=1e-9)
    assert max(spy.lrs) == spy.lrs[2] == pytest.approx(0.02) and spy.lrs[0] == pytest.approx(0.02/25) and spy.wds == [0.05]*12

def test_fit_cnn_without_the_schedule_is_caught(monkeypatch):
    "The spy sees a constant learning rate when the schedule is taken away: the test above would fail"
    spy = Spy(monkeypatch, schedule=False)
    torch.manual_seed(0)
    fit_cnn(cnn_params(), synthetic_mnist(n_train=96, n_valid=20), epochs=2, lr=0.02, bs=16, log=None)
    assert spy.lrs == [0.02]*12 != pytest.approx(one_cycle(0.02, 12))

def test_fit_cnn_trains_and_reports(monkeypatch):
    "Trains the params in place (counters aside), reports the mean loss per image and the exact validation accuracy"
    spy = Spy(monkeypatch)
    data = synthetic_mnist(n_train=100, n_valid=40)
    torch.manual_seed(0)
    params = cnn_params(); before = {k: v.clone() for k, v in params.items()}
    lines = []
    hist = fit_cnn(params, data, epochs=2, lr=0.01, bs=32, max_shift=2, log=lines.append)
    assert [h['epoch'] for h in hist] == [0, 1] and all(h.keys() == {'epoch', 'train_loss', 'valid_accuracy'} for h in hist)
    assert [s for s in spy.shifts] == [2]*8 and [n for _, n in spy.losses] == [32, 32, 32, 4]*2
    assert hist[1]['train_loss'] == pytest.approx(sum(l*n for l, n in spy.losses[4:])/100, rel=1e-6)
    assert hist[0]['train_loss'] == pytest.approx(sum(l*n for l, n in spy.losses[:4])/100, rel=1e-6)
    assert hist[-1]['valid_accuracy'] == exact_accuracy(cnn_forward, params, data.valid_x, data.valid_y) > 0.9
    assert all(not torch.equal(before[k], params[k]) for k in params if not k.endswith('running_var'))
    assert lines == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist]
    assert spy.threads[0] == 1

def test_fit_cnn_defaults(monkeypatch, capsys):
    "Defaults: 5 epochs, peak lr 0.01, batches of 128, weight decay 0.01, one-pixel shifts, printed lines"
    spy = Spy(monkeypatch)
    data = synthetic_mnist(n_train=130, n_valid=10)
    torch.manual_seed(0)
    hist = fit_cnn(cnn_params(), data)
    assert len(hist) == 5 and [n for _, n in spy.losses] == [128, 2]*5 and set(spy.shifts) == {1}
    assert spy.lrs == pytest.approx(one_cycle(0.01, 10), rel=1e-9) and set(spy.wds) == {0.01}
    assert len(capsys.readouterr().out.splitlines()) == 5

def test_fit_cnn_refuses_params_of_another_model():
    "Missing or unexpected tensors: a ValueError before training (BatchNorm's counters may be left out)"
    data = synthetic_mnist(n_train=8, n_valid=4)
    p = cnn_params(); p['extra'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"^fit_cnn: params do not fit cnn_model\(\): missing \[.*\], unexpected \['extra'\]$"):
        fit_cnn(p, data, epochs=1, log=None)
    p = cnn_params(); del p['6.weight']
    with pytest.raises(ValueError, match=r"^fit_cnn: params do not fit cnn_model\(\): missing \[.*'6.weight'.*\], unexpected \[\]$"):
        fit_cnn(p, data, epochs=1, log=None)
    assert len(fit_cnn(cnn_params(), data, epochs=1, bs=4, log=None)) == 1  # BatchNorm's counters are not needed

def test_fit_cnn_divergence_names_the_epoch():
    data = synthetic_mnist(n_train=16, n_valid=4)
    data.train_x[:] = torch.nan
    with pytest.raises(FloatingPointError, match='^training diverged in epoch 0: the training loss is nan'):
        fit_cnn(cnn_params(), data, epochs=2, log=None)

def test_fit_cnn_passes_progress_and_uses_one_thread(monkeypatch):
    seen, real = [], torch.set_num_threads
    monkeypatch.setattr(cnn, 'epoch_range', lambda epochs, progress=False: seen.append(progress) or range(epochs))
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)  # pretend: really changing threads breaks forked test runs
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    fit_cnn(cnn_params(), synthetic_mnist(16, 4), epochs=1, progress=True, log=None)
    assert seen == [1, True, 2]
