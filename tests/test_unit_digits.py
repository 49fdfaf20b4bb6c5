"Unit tests of `mnist_basics.digits`: softmax and cross-entropy against PyTorch, the hand-derived k-class step, the k-class fitters and the CNN."
import math
import pytest, torch
from torch import nn
import torch.nn.functional as F
import mnist_basics.digits as digits
from mnist_basics.digits import (N_HIDDEN, CNN_CHANNELS, CNN_KERNEL, linear_k_params, net_k_params, check_scores, softmax, log_softmax,
                                 cross_entropy, accuracy, softmax_step, fast_fit_k, exact_accuracy_k, cnn_k_model, cnn_k_params,
                                 cnn_k_forward, fit_cnn_k, confusion_matrix, most_confused)
from mnist_basics.linear import init_params, linear1
from mnist_basics.net import simple_net
from mnist_basics.fast import to_layers, from_layers

from conftest import synthetic_mnist, synthetic_digits, one_cycle

torch.set_num_threads(1)

def scores_message(fn, shape):
    return (f"{fn}: expected scores N×k, one column per class (k ≥ 2), got {shape}; a two-class model gives one score "
            "per image (N×1): use mnist_loss and batch_accuracy for it")

def targets_message(fn, n, shape, dtype):
    return (f"{fn}: expected targets of {n} class indices (shape ({n},), integers), got {shape} {dtype}; "
            "two-class targets (N×1) are for mnist_loss")

# ---- linear_k_params, net_k_params ----

def test_linear_k_params_draw_in_order_with_std():
    "784×k weights then k biases, `init_params` draws scaled by std, tracked for gradients (defaults: std 1, ten classes)"
    torch.manual_seed(0); p = linear_k_params(0.5, n_out=3)
    torch.manual_seed(0); expected = dict(weights=init_params((784, 3), 0.5), bias=init_params(3, 0.5))
    assert list(p) == ['weights', 'bias'] and all(torch.equal(p[k], expected[k]) for k in p)
    assert all(v.requires_grad and v.is_leaf for v in p.values())
    torch.manual_seed(1); d = linear_k_params()
    torch.manual_seed(1); assert torch.equal(d['weights'].detach(), torch.randn(784, 10)) and torch.equal(d['bias'].detach(), torch.randn(10))

def test_net_k_params_draw_in_order_with_std():
    "w1, b1, w2, b2 for k scores, drawn in order and scaled by std (defaults: std 1, ten classes, N_HIDDEN = 256 hidden units)"
    torch.manual_seed(0); p = net_k_params(0.5, n_out=3, n_hidden=7)
    torch.manual_seed(0)
    expected = dict(w1=torch.randn(784, 7)*0.5, b1=torch.randn(7)*0.5, w2=torch.randn(7, 3)*0.5, b2=torch.randn(3)*0.5)
    assert list(p) == list(expected) and all(torch.equal(p[k].detach(), expected[k]) for k in p)
    assert all(v.requires_grad and v.is_leaf for v in p.values())
    assert N_HIDDEN == 256
    torch.manual_seed(1); d = net_k_params()
    torch.manual_seed(1)
    expected = dict(w1=torch.randn(784, 256), b1=torch.randn(256), w2=torch.randn(256, 10), b2=torch.randn(10))
    assert list(d) == list(expected) and all(torch.equal(d[k].detach(), expected[k]) for k in d)

# ---- check_scores ----

@pytest.mark.parametrize('scores, targets, message', [
    (torch.zeros(3), torch.zeros(3, dtype=torch.long), scores_message('f', '(3,)')),
    (torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), scores_message('f', '(3, 1)')),
    (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long), scores_message('f', '(2, 3, 4)')),
    (torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.long), targets_message('f', 3, '(3, 1)', 'torch.int64')),
    (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), targets_message('f', 3, '(4,)', 'torch.int64')),
    (torch.zeros(3, 2), torch.zeros(3), targets_message('f', 3, '(3,)', 'torch.float32')),
    (torch.zeros(3, 2), torch.zeros(3, dtype=torch.float64), targets_message('f', 3, '(3,)', 'torch.float64')),
], ids=['1-d', 'one score', '3-d', 'N×1 targets', 'too many targets', 'float targets', 'double targets'])
def test_check_scores_refuses_with_the_fix(scores, targets, message):
    with pytest.raises(ValueError) as e: check_scores(scores, targets, 'f')
    assert str(e.value) == message

def test_check_scores_accepts_two_classes_or_more_and_integer_targets():
    "k = 2 is the smallest number of classes accepted; any integer dtype of targets will do"
    for k in (2, 3, 10):
        for dtype in (torch.long, torch.int32, torch.uint8): assert check_scores(torch.zeros(4, k), torch.zeros(4, dtype=dtype), 'f') is None

@pytest.mark.parametrize('fn', [cross_entropy, accuracy])
def test_loss_and_accuracy_check_their_inputs_by_name(fn):
    with pytest.raises(ValueError) as e: fn(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    assert str(e.value) == scores_message(fn.__name__, '(3, 1)')
    with pytest.raises(ValueError) as e: fn(torch.zeros(3, 4), torch.zeros(3, 1, dtype=torch.long))
    assert str(e.value) == targets_message(fn.__name__, 3, '(3, 1)', 'torch.int64')

# ---- softmax, log_softmax, cross_entropy, accuracy ----

SCORES = [torch.tensor([[1., 2., 3.], [0., -1., 5.]]),                # 2 images, 3 classes
          torch.tensor([[1., 2., 3.], [4., -1., 0.], [0.5, 0., 2.]]),   # square: rows and columns cannot be mixed up unseen
          torch.randn(4, 10, generator=torch.Generator().manual_seed(0))*3]

@pytest.mark.parametrize('x', SCORES, ids=['2x3', '3x3', '4x10'])
def test_softmax_and_log_softmax_equal_torchs(x):
    "Each row: probabilities that add up to 1, as torch.softmax (dim=1); log_softmax as torch's, to 1e-6"
    p = softmax(x)
    assert p.shape == x.shape and torch.allclose(p, torch.softmax(x, dim=1), atol=1e-6, rtol=0)
    assert torch.allclose(p.sum(1), torch.ones(len(x)), atol=1e-6)
    assert torch.allclose(log_softmax(x), torch.log_softmax(x, dim=1), atol=1e-6, rtol=0)

def test_softmax_by_hand():
    "softmax([0, ln 3]) = [1/4, 3/4], whatever is added to the row"
    for shift in (0., 50., -200.):
        x = torch.tensor([[0., math.log(3)], [math.log(3), 0.]], dtype=torch.float64) + shift
        assert torch.allclose(softmax(x), torch.tensor([[0.25, 0.75], [0.75, 0.25]], dtype=torch.float64), atol=1e-12)
        logs = torch.tensor([[-math.log(4), math.log(3/4)], [math.log(3/4), -math.log(4)]], dtype=torch.float64)
        assert torch.allclose(log_softmax(x), logs, atol=1e-12)

def test_huge_scores_do_not_overflow():
    "Scores of ±1000 (exp overflows float32 at 89): finite, the same as torch's"
    x = torch.tensor([[1000., 0., -1000.], [-1000., -999., -1001.], [1000., 1000., 999.]])
    p, lp = softmax(x), log_softmax(x)
    assert torch.isfinite(p).all() and torch.isfinite(lp).all()
    assert torch.allclose(p, torch.softmax(x, dim=1), atol=1e-6, rtol=0)
    assert torch.allclose(lp, torch.log_softmax(x, dim=1), atol=1e-6, rtol=1e-6)
    assert lp[0, 2].item() == -2000. and p[0, 0].item() == 1.

def test_cross_entropy_equals_torchs():
    "The mean of -log_softmax at the right class: F.cross_entropy to 1e-6, also on huge scores"
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=g)*3, torch.tensor([3, 0, 1, 1, 2])
    assert cross_entropy(x, y).item() == pytest.approx(F.cross_entropy(x, y).item(), abs=1e-6)
    assert cross_entropy(torch.tensor([[0., math.log(3)]]), torch.tensor([0])).item() == pytest.approx(math.log(4), abs=1e-6)
    big = torch.tensor([[1000., 0.], [0., 1000.]])
    assert cross_entropy(big, torch.tensor([1, 1])).item() == F.cross_entropy(big, torch.tensor([1, 1])).item() == 500.

def test_accuracy_is_the_share_of_rows_whose_top_score_is_right():
    scores = torch.tensor([[0., 1., 5.], [3., 2., 1.], [0., 1., -1.], [1., 2., 0.]])  # top scores: 2, 0, 1, 1
    acc = accuracy(scores, torch.tensor([2, 0, 0, 1]))
    assert acc.dtype == torch.float32 and acc.item() == 0.75
    assert accuracy(scores, torch.tensor([2, 0, 1, 1])).item() == 1. and accuracy(scores, torch.tensor([0, 1, 0, 0])).item() == 0.

# ---- softmax_step ----

def three_layers(xb, w1, b1, w2, b2, w3, b3):
    "A deeper net for `softmax_step`: linear, ReLU, linear, ReLU, linear"
    return torch.relu(torch.relu(xb@w1 + b1)@w2 + b2)@w3 + b3

def deep_k_params(std=1.0, n_out=4):
    return dict(w1=torch.randn(784, 6)*std, b1=torch.randn(6)*std, w2=torch.randn(6, 5)*std, b2=torch.randn(5)*std,
                w3=torch.randn(5, n_out)*std, b3=torch.randn(n_out)*std)

def small_net_k_params(std=1.0, n_out=4): return net_k_params(std, n_out, n_hidden=6)

def batch_k(n=7, k=4, seed=0):
    "Images with negative and positive pixels (some hidden units cut by the ReLU), every class among the targets"
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 784, generator=g)*0.1, torch.arange(n) % k

@pytest.mark.parametrize('model, make', [(linear1, linear_k_params), (simple_net, small_net_k_params), (three_layers, deep_k_params)],
                         ids=['linear1', 'simple_net', 'three_layers'])
def test_softmax_step_equals_one_autograd_sgd_step(model, make):
    "One `softmax_step` = autograd's gradient of F.cross_entropy (mean) and `p -= lr*grad`, to 1e-6; returns the summed loss"
    torch.manual_seed(0)
    params = {k: v.detach().requires_grad_() for k, v in make(std=0.5, n_out=4).items()}
    xb, yb = batch_k()
    layers = to_layers(params)
    loss = F.cross_entropy(model(xb, **params), yb)
    loss.backward()
    with torch.no_grad():
        for p in params.values(): p -= 0.3*p.grad
    summed = softmax_step(layers, xb, yb, 0.3)
    assert summed.item() == pytest.approx(loss.item()*len(xb), abs=1e-5)
    stepped = {k: torch.zeros_like(v) for k, v in params.items()}
    from_layers(layers, stepped)
    for k in params: assert torch.allclose(stepped[k], params[k].detach(), atol=1e-6), k
    if model is not linear1:  # the test is telling: some hidden units are dead, some alive
        h = torch.relu(xb@params['w1'] + params['b1'])
        assert (h == 0).any() and (h > 0).any()

def test_softmax_step_on_huge_scores():
    "Scores near 1000 (exp would overflow): the same step as without the offset, since softmax ignores it; a finite loss"
    torch.manual_seed(0)
    params = linear_k_params(0.05, n_out=3)
    xb, yb = batch_k(6, 3)
    plain, big = to_layers(params), to_layers(params)
    big[0][1].add_(1000.)
    loss = softmax_step(plain, xb, yb, 0.5)
    assert softmax_step(big, xb, yb, 0.5).item() == pytest.approx(loss.item(), abs=1e-2)
    assert torch.allclose(big[0][0], plain[0][0], atol=1e-6) and torch.allclose(big[0][1] - 1000., plain[0][1], atol=1e-3)

def test_softmax_step_loss_is_finite_when_confidently_wrong():
    "A wrong class 200 above the right one: softmax of the right class rounds to 0, but the loss is ≈200 per image, not inf"
    w, b = torch.zeros(3, 2), torch.tensor([[0.], [200.], [0.]])  # k×784-style layer on 2 inputs: class 1 always wins by 200
    xb, yb = torch.zeros(4, 2), torch.tensor([0, 2, 0, 1])
    scores = (xb @ w.T + b.T)
    loss = softmax_step([(w, b)], xb, yb, 0.1)
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(F.cross_entropy(scores, yb, reduction='sum').item(), rel=1e-6)
    assert loss.item() == pytest.approx(3*200., rel=1e-6)  # three wrong images, ≈200 each; the right one ≈0

# ---- fast_fit_k ----

def sgd_k_by_hand(model, params, data, epochs, lr, bs):
    "What `fast_fit_k` must do: autograd SGD on F.cross_entropy, one `torch.randperm` per epoch, batches of `bs`"
    x, y, hist = data.train_x, data.train_y, []
    for epoch in range(epochs):
        perm, total = torch.randperm(len(x)), 0.
        for i in range(0, len(x), bs):
            idx = perm[i:i+bs]
            loss = F.cross_entropy(model(x[idx], **params), y[idx])
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for p, g in zip(params.values(), grads): p -= lr*g
            total += loss.item()*len(idx)
        with torch.no_grad(): acc = (model(data.valid_x, **params).argmax(1) == data.valid_y).float().mean().item()
        hist.append(dict(epoch=epoch, train_loss=total/len(x), valid_accuracy=acc))
    return hist

def small_net(std, n_out): return net_k_params(std, n_out, n_hidden=8)

@pytest.mark.parametrize('model, make', [(linear1, linear_k_params), (simple_net, small_net)], ids=['linear1', 'simple_net'])
def test_fast_fit_k_follows_autograd_sgd(model, make):
    "Same start and seed: the same shuffles, so the same history and weights as plain autograd SGD (to 1e-5)"
    data = synthetic_digits(n_train=100, n_valid=30)  # batches of 32, 32, 32 and 4
    data.valid_y[::6] = (data.valid_y[::6] + 1) % 3  # five wrong labels: the accuracy cannot reach 1
    torch.manual_seed(0); p1 = make(0.1, 3); torch.manual_seed(3)
    lines = []
    h1 = fast_fit_k(p1, data, epochs=3, lr=0.5, bs=32, log=lines.append)
    torch.manual_seed(0); p2 = make(0.1, 3); torch.manual_seed(3)
    h2 = sgd_k_by_hand(model, p2, data, 3, 0.5, 32)
    assert [h['epoch'] for h in h1] == [0, 1, 2] and all(h.keys() == {'epoch', 'train_loss', 'valid_accuracy'} for h in h1)
    for a, b in zip(h1, h2):
        assert a['train_loss'] == pytest.approx(b['train_loss'], abs=1e-5)
        assert a['valid_accuracy'] == pytest.approx(b['valid_accuracy'], abs=1e-9)
    for k in p1: assert torch.allclose(p1[k].detach(), p2[k].detach(), atol=1e-5), k
    assert h1[-1]['valid_accuracy'] == pytest.approx(exact_accuracy_k(model, p1, data.valid_x, data.valid_y), abs=1e-6)
    assert h1[0]['train_loss'] > h1[-1]['train_loss'] and h1[-1]['valid_accuracy'] == pytest.approx(25/30)
    assert lines == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in h1]

def test_fast_fit_k_defaults(monkeypatch, capsys):
    "Defaults: 10 epochs, lr 0.5, batches of 128 (130 images: the batch size shows), threads left as they are, printed lines"
    data = synthetic_digits(n_train=130, n_valid=20)
    seen = []
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)  # pretend: really changing threads breaks forked test runs
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    torch.manual_seed(0); p1 = linear_k_params(0.1, 3); torch.manual_seed(1)
    h1 = fast_fit_k(p1, data)
    assert seen == [2]  # only the restore: no thread count set
    out = capsys.readouterr().out.splitlines()
    torch.manual_seed(0); p2 = linear_k_params(0.1, 3); torch.manual_seed(1)
    h2 = sgd_k_by_hand(linear1, p2, data, 10, 0.5, 128)
    assert len(h1) == 10 and out == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in h1]
    for a, b in zip(h1, h2): assert a['train_loss'] == pytest.approx(b['train_loss'], abs=1e-5)
    for k in p1: assert torch.allclose(p1[k].detach(), p2[k].detach(), atol=1e-5), k

def test_fast_fit_k_calls_a_tie_the_first_class():
    "With lr=0 and zero weights every score is 0: argmax says class 0, the loss is ln k"
    data = synthetic_digits(n_train=30, n_valid=30)
    data.valid_y = torch.tensor([0]*10 + [1]*5 + [2]*15)
    params = {k: torch.zeros_like(v) for k, v in linear_k_params(n_out=3).items()}
    h = fast_fit_k(params, data, epochs=1, lr=0., log=None)
    assert h[0]['valid_accuracy'] == pytest.approx(10/30) and h[0]['train_loss'] == pytest.approx(math.log(3), abs=1e-6)
    params['bias'][2] = 1.  # every image called a 2
    assert fast_fit_k(params, data, epochs=1, lr=0., log=None)[0]['valid_accuracy'] == pytest.approx(15/30)

def test_fast_fit_k_uses_the_threads_asked_for_then_restores(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    fast_fit_k(linear_k_params(n_out=3), synthetic_digits(n_train=30, n_valid=9), epochs=1, threads=3, log=None)
    assert seen == [3, 2]

def test_fast_fit_k_refuses_two_class_targets():
    "N×1 targets of the 3-vs-7 lessons, or float targets: the fix named before any training"
    data = synthetic_mnist(n_train=20, n_valid=10)
    with pytest.raises(ValueError) as e: fast_fit_k(linear_k_params(n_out=2), data, epochs=1, log=None)
    assert str(e.value) == targets_message('fast_fit_k', 20, '(20, 1)', 'torch.int64')
    data = synthetic_digits(n_train=20, n_valid=10); data.train_y = data.train_y.float()
    with pytest.raises(ValueError) as e: fast_fit_k(linear_k_params(n_out=3), data, epochs=1, log=None)
    assert str(e.value) == targets_message('fast_fit_k', 20, '(20,)', 'torch.float32')
    data = synthetic_digits(n_train=20, n_valid=10); data.train_y = data.train_y[:19]  # one label short
    with pytest.raises(ValueError) as e: fast_fit_k(linear_k_params(n_out=3), data, epochs=1, log=None)
    assert str(e.value) == targets_message('fast_fit_k', 20, '(19,)', 'torch.int64')

def test_fast_fit_k_divergence_names_the_epoch():
    data = synthetic_digits(n_train=30, n_valid=9)
    data.train_x[3, 5] = math.nan
    with pytest.raises(FloatingPointError, match='^training diverged in epoch 0: the training loss is nan'):
        fast_fit_k(linear_k_params(n_out=3), data, epochs=2, log=None)

# ---- exact_accuracy_k ----

def as_scores(xb): return xb  # a "model" whose scores are its inputs

def test_exact_accuracy_k_counts_over_every_batch():
    "The exact fraction right over batches of `bs` (the last one short), a float, checked batch by batch"
    x = torch.tensor([[0., 1.], [1., 0.], [2., 3.], [5., 4.], [0., 9.], [7., 1.], [1., 2.]])  # top: 1, 0, 1, 0, 1, 0, 1
    y = torch.tensor([1, 0, 0, 0, 1, 1, 1])
    sizes = []
    acc = exact_accuracy_k(lambda xb: sizes.append(len(xb)) or xb, {}, x, y, bs=3)
    assert type(acc) is float and acc == 5/7 and sizes == [3, 3, 1]
    torch.manual_seed(0); params = linear_k_params(n_out=3)
    xs, ys = torch.rand(10, 784), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert exact_accuracy_k(linear1, params, xs, ys, bs=4) == (linear1(xs, **params).argmax(1) == ys).sum().item()/10

def test_exact_accuracy_k_default_batch_is_2048():
    x, y, sizes = torch.zeros(2049, 2), torch.zeros(2049, dtype=torch.long), []
    y[-1] = 1
    assert exact_accuracy_k(lambda xb: sizes.append(len(xb)) or xb, {}, x, y) == 2048/2049 and sizes == [2048, 1]

def test_exact_accuracy_k_checks_shapes():
    with pytest.raises(ValueError) as e: exact_accuracy_k(as_scores, {}, torch.zeros(5, 1), torch.zeros(5, dtype=torch.long), bs=2)
    assert str(e.value) == scores_message('exact_accuracy_k', '(2, 1)')
    with pytest.raises(ValueError, match=r'^exact_accuracy_k: expected at least one image, got none$'):
        exact_accuracy_k(as_scores, {}, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError) as e: exact_accuracy_k(as_scores, {}, torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.long), bs=2)
    assert str(e.value) == targets_message('exact_accuracy_k', 2, '(2, 1)', 'torch.int64')

# ---- cnn_k_model, cnn_k_params, cnn_k_forward ----

def k_shapes(n_out, c, k1=5):
    "{name: shape} of `cnn_k_params(n_out=n_out, c=c, k1=k1)`"
    chans = (c, 2*c, 4*c, 8*c)
    return ({f'{i}.0.weight': (co, ci, k1 if i == 0 else 3, k1 if i == 0 else 3) for i, (ci, co) in enumerate(zip((1, *chans), chans))}
            | {f'{i}.1.{k}': (co,) for i, co in enumerate(chans) for k in ('weight', 'bias', 'running_mean', 'running_var')}
            | {'6.weight': (n_out, 8*c), '6.bias': (n_out,)})

def test_cnn_k_model_architecture():
    "Four stride-2 blocks, c, 2c, 4c, 8c channels (28 pixels to 2), the first k1×k1, then pool and n_out scores; defaults c = 16, k1 = 5, ten scores"
    m = cnn_k_model(n_out=3, c=4)
    sizes, x = [], torch.zeros(2, 1, 28, 28)
    for block in m[:4]:
        conv, bn, relu = block
        assert conv.stride == (2, 2) and conv.bias is None and isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
        x = block(x); sizes.append(tuple(x.shape[1:]))
    assert sizes == [(4, 14, 14), (8, 7, 7), (16, 4, 4), (32, 2, 2)]
    assert isinstance(m[4], nn.AdaptiveAvgPool2d) and isinstance(m[5], nn.Flatten) and len(m) == 7
    assert (m[6].in_features, m[6].out_features) == (32, 3) and m(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert (CNN_CHANNELS, CNN_KERNEL) == (16, 5)
    d = cnn_k_model()
    assert [b[0].out_channels for b in d[:4]] == [16, 32, 64, 128] and (d[6].in_features, d[6].out_features) == (128, 10)
    assert [b[0].kernel_size for b in d[:4]] == [(5, 5)] + [(3, 3)]*3 and d[0][0].padding == (2, 2)
    for k in (3, 5, 7): assert cnn_k_model(c=2, k1=k)[0](torch.zeros(1, 1, 28, 28)).shape == (1, 2, 14, 14)  # any odd kernel halves 28

def test_cnn_k_params_are_a_fresh_state_dict_without_counters():
    "Every tensor of a new `cnn_k_model(n_out, c)` but BatchNorm's batch counters, detached copies drawn from the seed; `std` is ignored"
    torch.manual_seed(0); a = cnn_k_params(n_out=3, c=4)
    torch.manual_seed(0); b = cnn_k_params(5., 3, 4)
    torch.manual_seed(0); m = cnn_k_model(3, 4)
    assert {k: tuple(v.shape) for k, v in a.items()} == k_shapes(3, 4)
    state = m.state_dict()
    assert all(torch.equal(a[k], state[k]) and torch.equal(b[k], state[k]) and not a[k].requires_grad for k in a)
    a['6.bias'].add_(1.)
    assert not torch.equal(a['6.bias'], b['6.bias'])  # copies, not shared tensors
    assert {k: tuple(v.shape) for k, v in cnn_k_params().items()} == k_shapes(10, 16)
    assert {k: tuple(v.shape) for k, v in cnn_k_params(n_out=3, c=4, k1=3).items()} == k_shapes(3, 4, 3)

def test_cnn_k_forward_reads_the_first_kernel_size_from_the_tensors():
    "A model with a 3×3 first block (the library's before 5×5) runs as one, by the shape of its tensors"
    torch.manual_seed(0); params = cnn_k_params(n_out=3, c=4, k1=3)
    m = cnn_k_model(3, 4, 3); m.load_state_dict(params, strict=False); m.eval()
    x = torch.rand(4, 784)
    with torch.no_grad(): assert torch.allclose(cnn_k_forward(x, **params), m(x.view(4, 1, 28, 28)), atol=1e-6)

def test_cnn_k_forward_scores_with_running_statistics():
    "cnn_k_forward(x, **params) = the model in eval mode with those tensors, N×k; flat or N×1×28×28 images"
    torch.manual_seed(0)
    params = cnn_k_params(n_out=3, c=4)
    for i in range(4): params[f'{i}.1.running_mean'] += 0.1*(i + 1); params[f'{i}.1.running_var'] *= 2.
    m = cnn_k_model(3, 4); m.load_state_dict(params, strict=False); m.eval()
    x = torch.rand(5, 784)
    with torch.no_grad(): expected = m(x.view(5, 1, 28, 28))
    assert expected.shape == (5, 3) and not torch.allclose(expected, m.train()(x.view(5, 1, 28, 28)), atol=1e-3)
    assert torch.allclose(cnn_k_forward(x, **params), expected, atol=1e-6)
    assert torch.allclose(cnn_k_forward(x.view(5, 1, 28, 28), **params), expected, atol=1e-6)
    other = cnn_k_params(n_out=2, c=2)  # another size, through the same function
    m2 = cnn_k_model(2, 2); m2.load_state_dict(other, strict=False); m2.eval()
    with torch.no_grad(): assert torch.allclose(cnn_k_forward(x, **other), m2(x.view(5, 1, 28, 28)), atol=1e-6)

def test_cnn_k_forward_refuses_other_tensors():
    "Without the layers that give its size, or with other tensors: a ValueError naming them"
    params = cnn_k_params(n_out=3, c=2)
    w = params.pop('6.weight')
    with pytest.raises(ValueError) as e: cnn_k_forward(torch.zeros(1, 784), **params)
    assert str(e.value) == ("cnn_k_forward: expected the tensors of cnn_k_params(), got "
                            "['0.0.weight', '0.1.bias', '0.1.running_mean', '0.1.running_var'] ...")
    params['6.weight'] = w; b = params.pop('6.bias')
    with pytest.raises(ValueError) as e: cnn_k_forward(torch.zeros(1, 784), **params, extra=b)
    assert str(e.value) == "cnn_k_forward: expected the tensors of cnn_k_params(), missing ['6.bias'], unexpected ['extra']"
    with pytest.raises(ValueError) as e: cnn_k_forward(torch.zeros(1, 784), **{'6.weight': w})
    assert str(e.value) == "cnn_k_forward: expected the tensors of cnn_k_params(), got ['6.weight'] ..."

def test_cnn_k_forward_draws_nothing_from_the_seed():
    "Building its eval-mode model leaves PyTorch's random generator where it was"
    params = cnn_k_params(n_out=3, c=2)
    torch.manual_seed(0); cnn_k_forward(torch.zeros(2, 784), **params); x = torch.randn(3)
    torch.manual_seed(0); assert torch.equal(torch.randn(3), x)

# ---- fit_cnn_k ----

class Spy:
    "Records what fit_cnn_k's optimiser, scheduler, loss, shifts and threads saw"
    def __init__(self, monkeypatch, schedule=True):
        self.lrs, self.wds, self.losses, self.smoothing, self.shifts, self.threads = [], [], [], [], [], []
        spy = self
        class AdamW(torch.optim.AdamW):
            def step(self, *a, **k):
                spy.lrs.append(self.param_groups[0]['lr']); spy.wds.append(self.param_groups[0]['weight_decay'])
                return super().step(*a, **k)
        monkeypatch.setattr(torch.optim, 'AdamW', AdamW)
        if not schedule:  # the same training without its one-cycle schedule
            monkeypatch.setattr(torch.optim.lr_scheduler, 'OneCycleLR', lambda opt, **kw: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.))
        real_ce, real_shift, real_threads = F.cross_entropy, digits.shift_batch, torch.set_num_threads
        def ce(out, y, **kw):
            loss = real_ce(out, y, **kw); spy.losses.append((loss.item(), len(y))); spy.smoothing.append(kw.get('label_smoothing'))
            return loss
        monkeypatch.setattr(digits.F, 'cross_entropy', ce)
        self.batches = []
        monkeypatch.setattr(digits, 'shift_batch', lambda xb, s: spy.shifts.append(s) or spy.batches.append(xb.clone()) or real_shift(xb, s))
        monkeypatch.setattr(torch, 'set_num_threads', lambda n: spy.threads.append(n) or real_threads(n))

def test_fit_cnn_k_follows_the_one_cycle_schedule(monkeypatch):
    "Each step's learning rate is OneCycleLR's (warm-up over the first quarter, then down), with AdamW's weight decay"
    spy = Spy(monkeypatch)
    torch.manual_seed(0)
    fit_cnn_k(cnn_k_params(n_out=3, c=2), synthetic_digits(n_train=96, n_valid=9), epochs=2, lr=0.02, bs=16, wd=0.05, log=None)
    assert spy.lrs == pytest.approx(one_cycle(0.02, 12), rel=1e-9)
    assert max(spy.lrs) == spy.lrs[2] == pytest.approx(0.02) and spy.lrs[0] == pytest.approx(0.02/25) and spy.wds == [0.05]*12

def test_fit_cnn_k_without_the_schedule_is_caught(monkeypatch):
    "The spy sees a constant learning rate when the schedule is taken away: the test above would fail"
    spy = Spy(monkeypatch, schedule=False)
    torch.manual_seed(0)
    fit_cnn_k(cnn_k_params(n_out=3, c=2), synthetic_digits(n_train=96, n_valid=9), epochs=2, lr=0.02, bs=16, log=None)
    assert spy.lrs == [0.02]*12 != pytest.approx(one_cycle(0.02, 12))

def test_fit_cnn_k_trains_and_reports(monkeypatch):
    "Trains the params in place, with the shifts and label smoothing asked for; the mean loss per image, the exact accuracy"
    spy = Spy(monkeypatch)
    data = synthetic_digits(n_train=100, n_valid=30)
    torch.manual_seed(0)
    params = cnn_k_params(n_out=3, c=4); before = {k: v.clone() for k, v in params.items()}
    lines = []
    hist = fit_cnn_k(params, data, epochs=3, lr=0.02, bs=32, max_shift=1, smoothing=0.2, log=lines.append)
    assert [h['epoch'] for h in hist] == [0, 1, 2] and all(h.keys() == {'epoch', 'train_loss', 'valid_accuracy'} for h in hist)
    assert spy.shifts == [1]*12 and spy.smoothing == [0.2]*12 and [n for _, n in spy.losses] == [32, 32, 32, 4]*3
    for e in range(3): assert hist[e]['train_loss'] == pytest.approx(sum(l*n for l, n in spy.losses[4*e:4*e + 4])/100, rel=1e-6)
    assert hist[-1]['valid_accuracy'] == exact_accuracy_k(cnn_k_forward, params, data.valid_x, data.valid_y) > 0.9
    assert all(not torch.equal(before[k], params[k]) for k in params)
    assert lines == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist]

def test_fit_cnn_k_shuffles_every_epoch(monkeypatch):
    "Each epoch sees every training image once, in a new random order"
    spy = Spy(monkeypatch)
    data = synthetic_digits(n_train=40, n_valid=6)
    torch.manual_seed(0)
    fit_cnn_k(cnn_k_params(n_out=3, c=2), data, epochs=2, bs=16, log=None)
    orders = [[(data.train_x == row).all(1).nonzero().item() for row in torch.cat(spy.batches[3*e:3*e + 3])] for e in range(2)]
    assert [len(b) for b in spy.batches] == [16, 16, 8]*2 and all(sorted(o) == list(range(40)) for o in orders)
    assert orders[0] != list(range(40)) and orders[1] != orders[0]

def test_fit_cnn_k_refuses_params_of_another_model(monkeypatch):
    "A tensor the model does not have, or one missing: a ValueError naming it, before any training"
    monkeypatch.setattr(torch.optim, 'AdamW', lambda *a, **k: pytest.fail('trained'))
    p = cnn_k_params(n_out=3, c=2); p['extra'] = torch.zeros(1)
    with pytest.raises(ValueError) as e: fit_cnn_k(p, synthetic_digits(n_train=8, n_valid=3), epochs=1, log=None)
    assert str(e.value) == "fit_cnn_k: expected the tensors of cnn_k_params(), missing [], unexpected ['extra']"
    p = cnn_k_params(n_out=3, c=2); del p['2.1.running_var']
    with pytest.raises(ValueError) as e: fit_cnn_k(p, synthetic_digits(n_train=8, n_valid=3), epochs=1, log=None)
    assert str(e.value) == "fit_cnn_k: expected the tensors of cnn_k_params(), missing ['2.1.running_var'], unexpected []"
    with pytest.raises(ValueError) as e: fit_cnn_k({'w': torch.zeros(1)}, synthetic_digits(n_train=8, n_valid=3), epochs=1, log=None)
    assert str(e.value) == "fit_cnn_k: expected the tensors of cnn_k_params(), got ['w'] ..."

def test_fit_cnn_k_defaults(monkeypatch, capsys):
    "Defaults: 5 epochs, peak lr 0.01, batches of 128, weight decay 0.01, two-pixel shifts, smoothing 0.1, threads as they are, printed lines"
    spy = Spy(monkeypatch)
    threads = torch.get_num_threads()  # 1, set above: restoring it changes nothing (more threads would hang forked runs)
    torch.manual_seed(0)
    hist = fit_cnn_k(cnn_k_params(n_out=3, c=2), synthetic_digits(n_train=130, n_valid=9))
    assert len(hist) == 5 and [n for _, n in spy.losses] == [128, 2]*5 and spy.shifts == [2]*10 and spy.smoothing == [0.1]*10
    assert spy.lrs == pytest.approx(one_cycle(0.01, 10), rel=1e-9) and spy.wds == [0.01]*10
    assert spy.threads == [threads]  # only the restore
    assert capsys.readouterr().out.splitlines() == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist]

def test_fit_cnn_k_uses_the_threads_asked_for_then_restores(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    fit_cnn_k(cnn_k_params(n_out=3, c=2), synthetic_digits(n_train=12, n_valid=6), epochs=1, threads=3, log=None)
    assert seen == [3, 2]

def test_fit_cnn_k_refuses_two_class_targets():
    with pytest.raises(ValueError) as e: fit_cnn_k(cnn_k_params(n_out=2, c=2), synthetic_mnist(n_train=8, n_valid=4), epochs=1, log=None)
    assert str(e.value) == targets_message('fit_cnn_k', 8, '(8, 1)', 'torch.int64')

def test_fit_cnn_k_divergence_names_the_epoch():
    data = synthetic_digits(n_train=12, n_valid=6)
    data.train_x[:] = torch.nan
    with pytest.raises(FloatingPointError, match='^training diverged in epoch 0: the training loss is nan'):
        fit_cnn_k(cnn_k_params(n_out=3, c=2), data, epochs=2, log=None)

# ---- confusion_matrix, most_confused ----

def test_confusion_matrix_rows_are_true_classes_columns_predictions():
    preds, targets = torch.tensor([0, 2, 2, 1, 0, 2, 2]), torch.tensor([0, 0, 2, 1, 1, 2, 1])
    assert torch.equal(confusion_matrix(preds, targets, k=3), torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 2]]))
    cm = confusion_matrix(torch.tensor([3, 7, 0]), torch.tensor([7, 7, 9]))  # ten classes by default
    expected = torch.zeros(10, 10, dtype=torch.long); expected[7, 3] = expected[7, 7] = expected[9, 0] = 1
    assert torch.equal(cm, expected)
    assert torch.equal(confusion_matrix(torch.tensor([0, 1]), torch.tensor([1, 1]), k=3),  # classes never seen: rows and columns of 0
                       torch.tensor([[0, 0, 0], [1, 1, 0], [0, 0, 0]]))
    assert torch.equal(confusion_matrix(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), k=2), torch.zeros(2, 2, dtype=torch.long))

def test_confusion_matrix_refuses_indices_outside_the_classes():
    "A prediction of class k (or −1) would land in another cell: a ValueError naming the argument and the range"
    for preds, targets, name, lo, hi in [([0, 3], [0, 1], 'preds', 0, 3), ([0, 2], [-1, 1], 'targets', -1, 1), ([2, 0], [0, 1], None, 0, 0)]:
        if name is None: assert confusion_matrix(torch.tensor(preds), torch.tensor(targets), k=3).sum() == 2; continue
        with pytest.raises(ValueError) as e: confusion_matrix(torch.tensor(preds), torch.tensor(targets), k=3)
        assert str(e.value) == f"confusion_matrix: expected {name} to be class indices 0 to 2, got values from {lo} to {hi}"

def test_most_confused_pairs_most_frequent_first():
    "(true, predicted, count) off the diagonal, most frequent first, at most n, no pair never confused; named by `digits`"
    cm = torch.tensor([[9, 4, 0], [1, 8, 6], [2, 0, 7]])
    assert most_confused(cm, digits=('3', '5', '8')) == [('5', '8', 6), ('3', '5', 4), ('8', '3', 2), ('5', '3', 1)]
    assert most_confused(cm, digits=('3', '5', '8'), n=2) == [('5', '8', 6), ('3', '5', 4)]
    cm10 = torch.eye(10, dtype=torch.long)*50
    for count, (t, p) in zip(range(7, 0, -1), [(9, 4), (4, 9), (3, 5), (7, 1), (2, 7), (0, 6), (8, 0)]): cm10[t, p] = count
    top = most_confused(cm10)  # the ten digits, five pairs by default
    assert top == [('9', '4', 7), ('4', '9', 6), ('3', '5', 5), ('7', '1', 4), ('2', '7', 3)]
    assert all(type(c) is int for _, _, c in top) and torch.equal(cm10.diagonal(), torch.full((10,), 50))
    assert most_confused(torch.eye(3, dtype=torch.long), digits='abc') == []
