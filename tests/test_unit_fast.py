"Unit tests of `mnist_basics.fast`: the hand-derived gradients equal autograd's, and `fast_fit` equals `fit`."
import math
import pytest, torch
from mnist_basics.linear import linear1, calc_grad, exact_accuracy
from mnist_basics.net import simple_net, linear_params, net_params, fit
import mnist_basics.fast as fast
from mnist_basics.fast import mlp_forward, mlp_step, to_layers, from_layers, fast_fit

from conftest import synthetic_mnist

torch.set_num_threads(1)

def three_layers(xb, w1, b1, w2, b2, w3, b3):
    "A deeper net for `mlp_step`: linear, ReLU, linear, ReLU, linear"
    return torch.relu(torch.relu(xb@w1 + b1)@w2 + b2)@w3 + b3

def deep_params(std=1.0):
    return dict(w1=torch.randn(784, 6)*std, b1=torch.randn(6)*std, w2=torch.randn(6, 5)*std, b2=torch.randn(5)*std,
                w3=torch.randn(5, 1)*std, b3=torch.randn(1)*std)

def batch(n=7, seed=0):
    "Images with negative and positive pixels (so that some hidden units are cut by the ReLU), targets with both digits"
    g = torch.Generator().manual_seed(seed)
    xb = torch.randn(n, 784, generator=g)*0.1
    yb = torch.tensor([[1], [0]]*(n//2) + [[1]]*(n % 2))
    return xb, yb

@pytest.mark.parametrize('model, make', [(linear1, linear_params), (simple_net, net_params), (three_layers, deep_params)],
                         ids=['linear1', 'simple_net', 'three_layers'])
def test_mlp_step_equals_one_autograd_sgd_step(model, make):
    "One `mlp_step` = `calc_grad` + `p -= lr*grad`, to 1e-6; its return value is the batch's summed loss"
    torch.manual_seed(0)
    params = {k: v.detach().requires_grad_() for k, v in make(std=0.5).items()}
    xb, yb = batch()
    layers = to_layers(params)
    loss = calc_grad(xb, yb, model, params)
    with torch.no_grad():
        for p in params.values(): p -= 0.3*p.grad
    summed = mlp_step(layers, xb, (1 - 2*yb).view(-1).float(), 0.3)
    assert summed.item() == pytest.approx(loss.item()*len(xb), abs=1e-5)
    stepped = {k: torch.zeros_like(v) for k, v in params.items()}
    from_layers(layers, stepped)
    for k in params: assert torch.allclose(stepped[k], params[k].detach(), atol=1e-6), k
    if model is not linear1:  # the test is telling: some hidden units are dead, some scores negative
        h = torch.relu(xb@params['w1'] + params['b1'])
        assert (h == 0).any() and (h > 0).any()

def test_mlp_forward_returns_every_layers_input_then_the_scores():
    "Transposed layers: [x.T, relu(W1 x.T + B1), W2 h + B2] (no ReLU on the scores)"
    W1, B1 = torch.tensor([[1., -1.], [2., 0.5]]), torch.tensor([[0.], [-2.]])
    W2, B2 = torch.tensor([[1., -2.]]), torch.tensor([[-1.]])
    a = torch.tensor([[1., 0.], [2., 3.]])  # two images, one per column
    acts = mlp_forward([(W1, B1), (W2, B2)], a)
    assert len(acts) == 3 and torch.equal(acts[0], a)
    assert torch.equal(acts[1], torch.tensor([[0., 0.], [1., 0.]]))
    assert torch.equal(acts[2], torch.tensor([[-3., -1.]]))

def test_to_layers_copies_transposed_and_from_layers_copies_back():
    "to_layers: (W, B) = (w.T contiguous, b as a column), copies; from_layers writes them back in place"
    torch.manual_seed(0); params = net_params(n_hidden=3)
    layers = to_layers(params)
    assert [(W.shape, B.shape) for W, B in layers] == [((3, 784), (3, 1)), ((1, 3), (1, 1))]
    assert all(W.is_contiguous() and B.is_contiguous() for W, B in layers)
    assert torch.equal(layers[0][0], params['w1'].detach().T) and torch.equal(layers[1][1], params['b2'].detach().view(1, 1))
    assert torch.equal(layers[0][1].view(-1), params['b1'].detach())
    layers[0][0].add_(1)
    assert not torch.equal(layers[0][0], params['w1'].detach().T)  # a copy, not a view
    target = {k: torch.zeros_like(v) for k, v in params.items()}
    from_layers(layers, target)
    assert torch.equal(target['w1'], params['w1'].detach() + 1) and torch.equal(target['b1'], params['b1'].detach())
    assert torch.equal(target['w2'], params['w2'].detach()) and torch.equal(target['b2'], params['b2'].detach())

@pytest.mark.parametrize('model, make', [(linear1, linear_params), (simple_net, net_params)], ids=['linear1', 'simple_net'])
def test_fast_fit_follows_fit(model, make):
    "Same start and seed: the same shuffles, so the same history and weights as `fit` (to rounding)"
    data = synthetic_mnist(n_train=200, n_valid=60)
    torch.manual_seed(0); p1 = make(std=0.1); torch.manual_seed(3)
    lines = []
    h1 = fast_fit(p1, data, epochs=3, lr=0.5, bs=32, log=lines.append)
    torch.manual_seed(0); p2 = make(std=0.1); torch.manual_seed(3)
    h2 = fit(model, p2, data, epochs=3, lr=0.5, bs=32, log=None)
    assert [h['epoch'] for h in h1] == [0, 1, 2] and all(h.keys() == {'epoch', 'train_loss', 'valid_accuracy'} for h in h1)
    for a, b in zip(h1, h2):
        assert a['train_loss'] == pytest.approx(b['train_loss'], abs=1e-5)
        assert abs(a['valid_accuracy'] - b['valid_accuracy']) <= 1/60 + 1e-9
    for k in p1: assert torch.allclose(p1[k].detach(), p2[k].detach(), atol=1e-4), k
    assert h1[-1]['valid_accuracy'] == pytest.approx(exact_accuracy(model, p1, data.valid_x, data.valid_y), abs=1e-9)
    assert lines == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in h1]

def test_fast_fit_defaults_are_fits(monkeypatch, capsys):
    "Defaults as `fit`'s: 20 epochs, lr 1, batches of 256 (300 images: the batch size shows), one thread, printed lines"
    data = synthetic_mnist(n_train=300, n_valid=20)
    threads = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: threads.append(n) or real(n))
    torch.manual_seed(0); p1 = linear_params(0.1); torch.manual_seed(1)
    h1 = fast_fit(p1, data)
    assert threads[0] == 1
    out = capsys.readouterr().out.splitlines()
    torch.manual_seed(0); p2 = linear_params(0.1); torch.manual_seed(1)
    h2 = fit(linear1, p2, data, log=None, epochs=20, lr=1., bs=256)
    assert len(h1) == 20 and out == [f"Epoch {h['epoch']} accuracy: {h['valid_accuracy']:.4f}" for h in h1]
    for a, b in zip(h1, h2): assert a['train_loss'] == pytest.approx(b['train_loss'], abs=1e-5)
    assert torch.allclose(p1['weights'].detach(), p2['weights'].detach(), atol=1e-4)

def test_fast_fit_calls_a_score_of_zero_a_7():
    "With lr=0 and zero weights every score is exactly 0: the accuracy is the share of 7s, as `batch_accuracy` says"
    data = synthetic_mnist(n_train=40, n_valid=30)
    data.valid_y = torch.tensor([[1]]*10 + [[0]]*20)
    params = {k: torch.zeros_like(v) for k, v in linear_params().items()}
    h = fast_fit(params, data, epochs=1, lr=0., log=None)
    assert h[0]['valid_accuracy'] == pytest.approx(20/30) == exact_accuracy(linear1, params, data.valid_x, data.valid_y)
    assert h[0]['train_loss'] == pytest.approx(0.5)
    params['bias'].fill_(0.5)  # every score 0.5: every image called a 3
    assert fast_fit(params, data, epochs=1, lr=0., log=None)[0]['valid_accuracy'] == pytest.approx(10/30)

def test_fast_fit_uses_one_thread_then_restores(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)  # pretend: really changing threads breaks forked test runs
    monkeypatch.setattr(torch, 'set_num_threads', seen.append)
    fast_fit(linear_params(), synthetic_mnist(40, 10), epochs=1, log=None)
    assert seen == [1, 2]

def test_fast_fit_divergence_names_the_epoch():
    data = synthetic_mnist(n_train=40, n_valid=10)
    data.train_x[3, 5] = math.nan
    with pytest.raises(FloatingPointError, match='^training diverged in epoch 0: the training loss is nan'):
        fast_fit(linear_params(), data, epochs=2, log=None)

# ---- the one-epoch CNN of section 6: pca_filters, fixed_block, quick_cnn_model (trained by fit_model_k) ----
from mnist_basics.fast import pca_filters, fixed_block, quick_cnn_model
from mnist_basics.digits import fit_model_k
from conftest import synthetic_digits

def images(n=300, seed=0):
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))

def test_pca_filters_are_orthonormal_components_and_their_negatives():
    x = images()
    w = pca_filters(x, c=12, k=5)
    assert w.shape == (12, 1, 5, 5)
    v = w[:6].view(6, 25)
    assert torch.allclose(v @ v.T, torch.eye(6), atol=1e-4) and torch.equal(w[6:], -w[:6])
    assert all(row[row.abs().argmax()] > 0 for row in v)  # the sign fixed: each one's largest entry positive
    # the first is the direction of largest variance of the patches: no other unit vector beats it
    p = torch.nn.functional.unfold(x.view(-1, 1, 28, 28), 5, padding=2, stride=2).transpose(1, 2).reshape(-1, 25)
    p = p - p.mean(0)
    var = lambda u: ((p @ u)**2).mean()
    others = torch.nn.functional.normalize(torch.randn(50, 25, generator=torch.Generator().manual_seed(1)), dim=1)
    assert all(var(v[0]) >= var(u) for u in others)

@pytest.mark.parametrize('c', [0, 3, 52])
def test_pca_filters_refuses_a_bad_count(c):
    with pytest.raises(ValueError, match=f'^pca_filters: expected an even number of filters from 2 to 50, got c={c}$'): pca_filters(images(), c=c)

def test_pca_filters_refuses_no_images_an_even_size_and_other_images():
    with pytest.raises(ValueError, match='^pca_filters: expected at least one image, got 0$'): pca_filters(torch.zeros(0, 784))
    with pytest.raises(ValueError, match='^pca_filters: expected at least one image, got 0$'): pca_filters(images(), n=0)
    with pytest.raises(ValueError, match='^pca_filters: expected an odd filter size k, got k=4$'): pca_filters(images(), k=4)
    with pytest.raises(ValueError, match=r'^pca_filters: expected 28×28 images, got \(32, 32\) per image$'): pca_filters(torch.rand(3, 32, 32))

def test_pca_filters_take_images_as_rows_or_as_pictures():
    x = images(50)
    assert torch.equal(pca_filters(x), pca_filters(x.view(-1, 1, 28, 28)))

def test_fixed_block_standardises_each_channel_and_is_not_trained():
    x = images(200)
    block = fixed_block(x, c=8, k=5, n=200)
    with torch.no_grad(): out = block[0](x.view(-1, 1, 28, 28))
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(8), atol=1e-4) and torch.allclose(out.std((0, 2, 3)), torch.ones(8), atol=1e-4)
    assert not any(p.requires_grad for p in block.parameters())
    blank = fixed_block(torch.zeros(5, 784), c=4)  # no ink at all: the filters left unscaled, not blown up
    assert blank[0].weight.abs().max() <= 1 and torch.equal(blank[0].bias, torch.zeros(4))

def test_fit_model_k_trains_all_but_the_fixed_block():
    torch.manual_seed(0)
    data = synthetic_digits(n_train=96, n_valid=30)
    model = quick_cnn_model(data.train_x, n_out=3, c=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = fit_model_k(model, data, epochs=4, lr=0.02, bs=16, log=None)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in ('0.0.weight', '0.0.bias'))
    assert all(not torch.equal(before[k], after[k]) for k in before if not k.startswith('0.') and 'num_batches' not in k)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3) and hist[-1]['valid_accuracy'] > 0.9

def test_fit_model_k_refuses_a_model_with_nothing_to_train():
    model = quick_cnn_model(images(20), n_out=3, c=2).requires_grad_(False)
    with pytest.raises(ValueError, match='^fit_model_k: expected a model with parameters to train, got none that require gradients$'):
        fit_model_k(model, synthetic_digits(n_train=8, n_valid=3), epochs=1, log=None)
