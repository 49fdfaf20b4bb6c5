"""CUDA path check (run where PyTorch sees a GPU): train each model there through the library, save, reload on the GPU, compare on the CPU.

    MNIST_BASICS_DATA=path/to/mnist_sample.tgz python bench/gpu_check.py

Last run: an NVIDIA H200 with torch 2.11 (linear 0.9828, net 0.9868, cnn 0.9971: the GPU draws its shuffling and shifts
from its own generator, so its numbers differ from the CPU's)."""
import os, sys, time, json, tempfile, torch
sys.path.insert(0, os.getcwd())
from mnist_basics.train import train, save_model, load_model, default_device
from mnist_basics.data import load_mnist
from mnist_basics.linear import exact_accuracy
from mnist_basics.net import fit, simple_net, net_params
print('torch', torch.__version__, 'device', default_device(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')
data = load_mnist()
for m in ['linear', 'net', 'cnn']:
    r = train(m, log=None)
    fn = os.path.join(tempfile.mkdtemp(), m + '.pt'); save_model(fn, m, r['params'])
    name, model, params, meta = load_model(fn, device='cuda')
    acc2 = exact_accuracy(model, params, data.valid_x.cuda(), data.valid_y.cuda())
    print(json.dumps({k: r[k] for k in ('model', 'device', 'valid_accuracy', 'n_wrong', 'seconds')}), 'reloaded on cuda:', acc2)
    assert r['device'].startswith('cuda') and abs(acc2 - r['valid_accuracy']) < 1e-6
    cpu_params = {k: v.cpu() for k, v in params.items()}
    print('   same model on cpu:', exact_accuracy(model, cpu_params, data.valid_x, data.valid_y))
torch.manual_seed(0); p = {k: v.cuda().detach().requires_grad_() for k, v in net_params(std=0.1).items()}
t = time.perf_counter(); h = fit(simple_net, p, data, log=None); print('autograd fit on cuda:', h[-1]['valid_accuracy'], f'{time.perf_counter()-t:.2f}s')
print('GPU CHECK OK')
