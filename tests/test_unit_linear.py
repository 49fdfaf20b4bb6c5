"Unit tests of `mnist_basics.linear` and `mnist_basics.net`, as readers import them: exact maths on small, telling inputs."
import math
import pytest, torch
from hypothesis import given, settings, strategies as st
from mnist_basics.linear import (init_params, linear1, mnist_loss, calc_grad, train_epoch, batch_accuracy, validate_epoch,
                                 exact_accuracy)
from mnist_basics.data import Batches
import mnist_basics.net as net
from mnist_basics.net import simple_net, linear_params, net_params, check_finite, epoch_range, fit

from conftest import synthetic_mnist

torch.set_num_threads(1)

def sig(x): return 1/(1 + math.exp(-x))

def shape_message(fn, p, t):
    return (f"{fn}: predictions {p} and targets {t} must have the same shape, or they broadcast to N×N; "
            "make targets N×1 with y.unsqueeze(1)")

# ---- init_params, linear1 ----

def test_init_params_is_a_scaled_normal_draw_tracked_for_gradients():
    "`init_params(size, std)` is `torch.randn(size)*std`, a leaf that requires grad; std defaults to 1"
    torch.manual_seed(0); p = init_params((5, 3), 0.5)
    torch.manual_seed(0); expected = torch.randn(5, 3)*0.5
    assert torch.equal(p.detach(), expected) and p.requires_grad and p.is_leaf
    torch.manual_seed(1); q = init_params(4)
    torch.manual_seed(1); assert torch.equal(q.detach(), torch.randn(4))

def test_linear1_is_x_at_w_plus_b():
    "One score per image: xb@weights + bias"
    xb = torch.tensor([[1., 2., 3.], [0., -1., 4.]])
    w, b = torch.tensor([[0.5], [-1.], [2.]]), torch.tensor([0.25])
    assert torch.equal(linear1(xb, w, b), torch.tensor([[4.75], [9.25]]))

# ---- mnist_loss, check_shapes ----

def test_mnist_loss_matches_the_hand_formula():
    "Mean of 1-sigmoid(score) for a 3 and sigmoid(score) for a 7"
    scores = torch.tensor([[-2.], [0.], [1.5], [3.]])
    targets = torch.tensor([[1], [0], [1], [0]])
    expected = (1 - sig(-2) + sig(0) + 1 - sig(1.5) + sig(3))/4
    assert mnist_loss(scores, targets).item() == pytest.approx(expected, abs=1e-6)
    assert mnist_loss(scores, targets.float()).item() == pytest.approx(expected, abs=1e-6)  # float targets too

@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-20, 20), st.booleans()), min_size=1, max_size=8))
def test_mnist_loss_property(rows):
    "For any scores and targets: the hand formula, and a value in [0, 1]"
    scores = torch.tensor([[s] for s, _ in rows], dtype=torch.float64)
    targets = torch.tensor([[int(t)] for _, t in rows])
    expected = sum(1 - sig(s) if t else sig(s) for s, t in rows)/len(rows)
    got = mnist_loss(scores, targets).item()
    assert got == pytest.approx(expected, abs=1e-9) and 0 <= got <= 1

@pytest.mark.parametrize('fn', [mnist_loss, batch_accuracy])
def test_mismatched_shapes_are_refused_with_the_fix(fn):
    "N×1 scores against N targets would broadcast to N×N: a ValueError that says how to fix it"
    with pytest.raises(ValueError) as e: fn(torch.zeros(3, 1), torch.ones(3))
    assert str(e.value) == shape_message(fn.__name__, '(3, 1)', '(3,)')
    fn(torch.zeros(3, 1), torch.ones(3, 1))  # the same shapes pass

# ---- calc_grad, train_epoch ----

def linear_setup(seed=0):
    torch.manual_seed(seed)
    params = dict(weights=init_params((4, 1)), bias=init_params(1))
    xb = torch.randn(5, 4)
    yb = torch.tensor([[1], [0], [0], [1], [1]])
    return params, xb, yb

def autograd_grads(model, params, xb, yb):
    "Gradients of the hand-written loss, on copies of `params`"
    ps = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    p = torch.sigmoid(model(xb, **ps))
    loss = torch.where(yb == 1, 1 - p, p).mean()
    return torch.autograd.grad(loss, list(ps.values())), loss.item()

def test_calc_grad_adds_the_loss_gradient_to_grad():
    "calc_grad returns the loss and adds its gradient to `.grad` (twice: twice the gradient)"
    params, xb, yb = linear_setup()
    grads, loss = autograd_grads(linear1, params, xb, yb)
    assert calc_grad(xb, yb, linear1, params).item() == pytest.approx(loss, abs=1e-6)
    for p, g in zip(params.values(), grads): assert torch.allclose(p.grad, g, atol=1e-6)
    calc_grad(xb, yb, linear1, params)
    for p, g in zip(params.values(), grads): assert torch.allclose(p.grad, 2*g, atol=1e-6)

def test_train_epoch_is_sgd_batch_by_batch_and_zeroes_every_grad():
    "Each batch: p -= lr*grad of that batch's loss; after the epoch every .grad is zero; returns the mean loss per image"
    params, xb, yb = linear_setup(1)
    dl = [(xb[:3], yb[:3]), (xb[3:], yb[3:])]  # batches of 3 and 2 images
    lr, expected, losses = 0.7, {k: v.detach().clone() for k, v in params.items()}, []
    for x, y in dl:
        grads, loss = autograd_grads(linear1, expected, x, y)
        losses.append(loss)
        expected = {k: v - lr*g for (k, v), g in zip(expected.items(), grads)}
    mean = train_epoch(linear1, params, dl, lr)
    assert mean == pytest.approx((3*losses[0] + 2*losses[1])/5, abs=1e-6)
    for k, p in params.items():
        assert torch.allclose(p.detach(), expected[k], atol=1e-6), k
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)), k

def test_train_epoch_simple_net():
    "The same loop trains `simple_net` (four tensors), one SGD step per batch"
    torch.manual_seed(2)
    params = net_params(n_hidden=6)
    xb, yb = torch.randn(4, 784), torch.tensor([[1], [0], [1], [0]])
    grads, loss = autograd_grads(simple_net, params, xb, yb)
    expected = [v.detach() - 0.3*g for v, g in zip(params.values(), grads)]
    assert train_epoch(simple_net, params, [(xb, yb)], 0.3) == pytest.approx(loss, abs=1e-6)
    for p, e in zip(params.values(), expected): assert torch.allclose(p.detach(), e, atol=1e-6)

# ---- batch_accuracy, validate_epoch, exact_accuracy ----

def test_batch_accuracy_calls_a_score_of_exactly_zero_a_7():
    "sigmoid(0) = 0.5 is not > 0.5: a score of exactly 0 says 7"
    assert batch_accuracy(torch.tensor([[0.]]), torch.tensor([[0]])).item() == 1
    assert batch_accuracy(torch.tensor([[0.]]), torch.tensor([[1]])).item() == 0
    scores, targets = torch.tensor([[-1.], [0.], [2.], [3.], [1e-3]]), torch.tensor([[0], [1], [1], [0], [1]])
    assert batch_accuracy(scores, targets).item() == pytest.approx(3/5)

def scaled(xb, w): return xb*w  # a "model" whose scores are its inputs times its one parameter

def test_validate_epoch_is_the_rounded_mean_of_batch_accuracies():
    "Batches of 2, 1 and 3 images, right 2/2, 0/1 and 2/3: (1 + 0 + 2/3)/3 rounded to 4 places, not 4/6"
    batches = [(torch.tensor([[1.], [-1.]]), torch.tensor([[1], [0]])),
               (torch.tensor([[2.]]), torch.tensor([[0]])),
               (torch.tensor([[3.], [-3.], [0.]]), torch.tensor([[1], [0], [1]]))]
    assert validate_epoch(scaled, dict(w=torch.tensor(1.)), batches) == 0.5556

def test_exact_accuracy_is_the_fraction_of_all_images():
    "The exact fraction right (a float), without building a graph"
    w = torch.ones(2, 1, requires_grad=True)
    x, y = torch.tensor([[1., 0.], [0., -1.], [2., 2.]]), torch.tensor([[1], [1], [0]])
    acc = exact_accuracy(linear1, dict(weights=w, bias=torch.zeros(1)), x, y)
    assert type(acc) is float and acc == pytest.approx(1/3)

# ---- simple_net and parameters ----

def test_simple_net_is_linear_relu_linear():
    "relu(x@w1 + b1)@w2 + b2, with negative pre-activations cut to 0"
    xb = torch.tensor([[1., -2.], [0.5, 0.5]])
    w1, b1 = torch.tensor([[1., -1., 0.5], [2., 1., -1.]]), torch.tensor([0.5, -0.25, 1.])
    w2, b2 = torch.tensor([[1.], [-2.], [3.]]), torch.tensor([0.1])
    expected = torch.relu(xb@w1 + b1)@w2 + b2
    assert torch.allclose(simple_net(xb, w1, b1, w2, b2), expected)
    assert torch.allclose(expected, torch.tensor([[10.6], [4.35]]))

def test_parameter_makers_draw_in_order_with_std():
    "linear_params and net_params: shapes for 784 pixels, drawn in order, scaled by std (default 1, 30 hidden units)"
    torch.manual_seed(0); lp = linear_params(0.1)
    torch.manual_seed(0); assert torch.equal(lp['weights'].detach(), torch.randn(784, 1)*0.1) and torch.equal(lp['bias'].detach(), torch.randn(1)*0.1)
    torch.manual_seed(0); default = linear_params()
    torch.manual_seed(0); assert torch.equal(default['weights'].detach(), torch.randn(784, 1))
    torch.manual_seed(0); p = net_params(0.5, n_hidden=7)
    torch.manual_seed(0)
    expected = dict(w1=torch.randn(784, 7)*0.5, b1=torch.randn(7)*0.5, w2=torch.randn(7, 1)*0.5, b2=torch.randn(1)*0.5)
    assert list(p) == list(expected) and all(torch.equal(p[k].detach(), expected[k]) for k in p)
    torch.manual_seed(0); d = net_params()
    torch.manual_seed(0); assert torch.equal(d['w1'].detach(), torch.randn(784, 30)) and d['b1'].shape == (30,)
    assert all(v.requires_grad for v in (*lp.values(), *p.values()))

# ---- check_finite, epoch_range, fit ----

def test_check_finite_passes_numbers_and_names_the_epoch_of_a_divergence():
    assert check_finite(0.25, 0) == 0.25
    for bad, shown in [(math.nan, 'nan'), (math.inf, 'inf'), (-math.inf, '-inf')]:
        with pytest.raises(FloatingPointError) as e: check_finite(bad, 3)
        assert str(e.value) == f'training diverged in epoch 3: the training loss is {shown}; try a smaller learning rate'

def test_epoch_range_plain_or_with_a_progress_bar():
    from fastprogress.fastprogress import progress_bar
    assert epoch_range(3) == range(3)
    bar = epoch_range(3, progress=True)
    assert isinstance(bar, progress_bar) and bar.gen == range(3)

def sgd_by_hand(model, params, data, epochs, lr, bs):
    "What `fit` must do: `train_epoch` over freshly shuffled `Batches`, then the exact validation accuracy"
    dl, hist = Batches(data.train_x, data.train_y, bs, shuffle=True), []
    for epoch in range(epochs):
        loss = train_epoch(model, params, dl, lr)
        hist.append(dict(epoch=epoch, train_loss=loss, valid_accuracy=exact_accuracy(model, params, data.valid_x, data.valid_y)))
    return hist

def test_fit_is_train_epoch_over_shuffled_batches():
    "fit with given settings = the loop written out; history and log lines per epoch; parameters trained in place"
    data = synthetic_mnist()
    torch.manual_seed(0); p1 = net_params(0.1, n_hidden=8); torch.manual_seed(5)
    lines = []
    hist = fit(simple_net, p1, data, epochs=3, lr=0.5, bs=64, log=lines.append)
    torch.manual_seed(0); p2 = net_params(0.1, n_hidden=8); torch.manual_seed(5)
    assert hist == sgd_by_hand(simple_net, p2, data, 3, 0.5, 64)
    assert all(torch.equal(a, b) for a, b in zip(p1.values(), p2.values()))
    assert lines == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist]
    assert hist[-1]['valid_accuracy'] > 0.9 and hist[-1]['train_loss'] < hist[0]['train_loss']

def test_fit_defaults(monkeypatch, capsys):
    "Defaults: 20 epochs, lr 1, batches of 256, one thread, no progress bar, printed lines"
    data = synthetic_mnist(n_train=300, n_valid=20)
    threads = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: threads.append(n) or real(n))
    monkeypatch.setattr(net, 'epoch_range', lambda epochs, progress=False: (threads.append(('progress', progress)), range(epochs))[1])
    torch.manual_seed(0); p1 = linear_params(0.1); torch.manual_seed(1)
    hist = fit(linear1, p1, data)
    torch.manual_seed(0); p2 = linear_params(0.1); torch.manual_seed(1)
    assert hist == sgd_by_hand(linear1, p2, data, 20, 1., 256)
    assert threads[0] == 1 and ('progress', False) in threads
    assert capsys.readouterr().out.splitlines() == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in hist]

def test_fit_passes_progress_and_epoch_on(monkeypatch):
    "progress=True reaches epoch_range; a divergence names its epoch; one thread while training, then the old count back"
    seen, real = [], torch.set_num_threads
    monkeypatch.setattr(net, 'epoch_range', lambda epochs, progress=False: seen.append(progress) or range(epochs))
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)  # pretend: really changing threads breaks forked test runs
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    fit(linear1, linear_params(), synthetic_mnist(40, 10), epochs=1, progress=True, log=None)
    assert seen == [1, True, 2]
    bad = synthetic_mnist(40, 10); bad.train_x[0, 0] = math.nan
    with pytest.raises(FloatingPointError, match='^training diverged in epoch 0:'): fit(linear1, linear_params(), bad, epochs=2, log=None)
