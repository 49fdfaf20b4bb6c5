"""The site's "Try it" page: the drawing pad of `mnist_basics/pad.js`, running in the browser with no server.

    python tools/docs/try_page.py DOCS_DIR      # writes try.md and assets/pad/ into an MkDocs docs folder

`build(docs_dir, cfg)` (called by tools/build_docs.py) trains the lessons' models with the library (3-vs-7 linear model and
net on MNIST_SAMPLE with `fast_fit`; the ten-digit net and a small ten-digit CNN on full MNIST when it is on this machine),
writes their weights as small JSON files (float32, base64), copies `pad.js` beside a host script that gives the pad's
`render` a model object of its own (the same module as in Jupyter, where the model object is the widget's), and returns
the page's navigation entry. Without full MNIST the ten-digit models are left out, with a note on the page.
"""
import argparse, base64, copy, json, shutil, sys, time
from pathlib import Path

import numpy as np, torch

root = Path(__file__).resolve().parents[2]
if str(root) not in sys.path: sys.path.insert(0, str(root))

import mnist_basics
from mnist_basics.data import load_mnist
from mnist_basics.linear import linear1
from mnist_basics.net import linear_params, net_params, simple_net
from mnist_basics.fast import fast_fit
from mnist_basics.digits import net_k_params, fast_fit_k, cnn_k_params, cnn_k_forward, fit_cnn_k, N_HIDDEN

PAD_JS = Path(mnist_basics.__file__).parent/'pad.js'
TEN = dict(n_train=10_000, net_epochs=2, cnn_epochs=1, cnn_c=8)  # ten-digit training sized for the site's one-minute build: a random sixth of the training images

# ---------------------------------------------------------------- models as JSON

def _b64(t) -> str: return base64.b64encode(np.ascontiguousarray(t.detach().cpu().numpy(), dtype='<f4').tobytes()).decode('ascii')
def _unb64(s, shape) -> torch.Tensor: return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype='<f4').copy()).view(*shape)

def model_json(kind:str, # 'linear', 'net' or 'cnn'
               params:dict, # the trained tensors, as the library's model functions take them
               digits:list, # the digits it reads, e.g. ['3', '7']
               **info # shown on the page: title, accuracy, ...
              ) -> dict:
    "The model as the page's `forward` reads it: shapes and float32 weights in base64"
    n_out = 1 if len(digits) == 2 else len(digits)
    d = dict(kind=kind, digits=[str(x) for x in digits], n_out=n_out, **info)
    if kind == 'linear': d |= dict(weights=_b64(params['weights']), bias=_b64(params['bias']))
    elif kind == 'net': d |= dict(n_hidden=params['w1'].shape[1], w1=_b64(params['w1']), b1=_b64(params['b1']), w2=_b64(params['w2']), b2=_b64(params['b2']))
    else:
        blocks, i = [], 0
        while f'{i}.0.weight' in params:
            w = params[f'{i}.0.weight']
            blocks.append(dict(co=w.shape[0], ci=w.shape[1], k=w.shape[-1], w=_b64(w), gamma=_b64(params[f'{i}.1.weight']), beta=_b64(params[f'{i}.1.bias']),
                               mean=_b64(params[f'{i}.1.running_mean']), vr=_b64(params[f'{i}.1.running_var']), eps=1e-5))
            i += 1
        fc = params[f'{i + 2}.weight']  # after the blocks: pool, flatten, linear
        d |= dict(blocks=blocks, fc_w=_b64(fc.T), fc_b=_b64(params[f'{i + 2}.bias']), fc_key=str(i + 2))
    return d

def load_model_json(path) -> tuple:
    "`(model_fn, params)` of a model file written by `build`: the library's model function and torch tensors, for checking the page"
    d = json.loads(Path(path).read_text(encoding='utf-8'))
    k = d['n_out']
    if d['kind'] == 'linear': return linear1, dict(weights=_unb64(d['weights'], (784, k)), bias=_unb64(d['bias'], (k,)))
    if d['kind'] == 'net':
        h = d['n_hidden']
        return simple_net, dict(w1=_unb64(d['w1'], (784, h)), b1=_unb64(d['b1'], (h,)), w2=_unb64(d['w2'], (h, k)), b2=_unb64(d['b2'], (k,)))
    params = {}
    for i, b in enumerate(d['blocks']):
        params |= {f'{i}.0.weight': _unb64(b['w'], (b['co'], b['ci'], b.get('k', 3), b.get('k', 3))), f'{i}.1.weight': _unb64(b['gamma'], (b['co'],)),
                   f'{i}.1.bias': _unb64(b['beta'], (b['co'],)), f'{i}.1.running_mean': _unb64(b['mean'], (b['co'],)),
                   f'{i}.1.running_var': _unb64(b['vr'], (b['co'],))}
    c = d['blocks'][-1]['co']
    params |= {f"{d['fc_key']}.weight": _unb64(d['fc_w'], (c, k)).T.contiguous(), f"{d['fc_key']}.bias": _unb64(d['fc_b'], (k,))}
    return cnn_k_forward, params

# ---------------------------------------------------------------- training at build time

def _fresh(make, seed=0, **kw):
    torch.manual_seed(seed)
    return {k: v.detach().clone() for k, v in make(**kw).items()}

def train_models(ten:dict|None=TEN, # settings of the ten-digit models (see `TEN`); None: leave them out
                 log=print) -> tuple:
    "`(models, notes)`: {file stem: model_json} of the models trained now, and notes on what was left out"
    models, notes = {}, []
    try: sample = load_mnist(standin=False)
    except (OSError, ValueError) as e: return {}, [f'MNIST_SAMPLE is not on this machine ({e}): no models']
    for kind, make, title in (('linear', linear_params, '3 or 7: linear model (lesson 03)'), ('net', net_params, '3 or 7: two-layer net (lesson 04)')):
        t = time.process_time()
        p = _fresh(make, std=0.1)
        h = fast_fit(p, sample, epochs=20, lr=1., bs=256, log=None)
        models[f'{kind}37'] = model_json(kind, p, ['3', '7'], title=title, accuracy=round(h[-1]['valid_accuracy'], 4), seconds=round(time.process_time() - t, 2))
        if log: log(f'    {kind}37: accuracy {h[-1]["valid_accuracy"]:.4f}')
    if ten is None: return models, notes + ['The ten-digit models were left out of this build.']
    try: full = load_mnist(digits='all', standin=False)
    except (OSError, ValueError) as e:
        return models, notes + [f'The ten-digit models are left out: full MNIST is not on the machine that built this site ({type(e).__name__}).']
    n = ten['n_train']
    if n is not None and n < len(full.train_x):  # a random part of the training images (they are stored digit by digit)
        idx = torch.randperm(len(full.train_x), generator=torch.Generator().manual_seed(0))[:n]
        full = copy.copy(full)
        full.train_x, full.train_y = full.train_x[idx], full.train_y[idx]
    some = f'{len(full.train_x):,} training images'
    t = time.process_time()
    p = _fresh(net_k_params, std=0.1, n_hidden=N_HIDDEN)
    h = fast_fit_k(p, full, epochs=ten['net_epochs'], lr=0.3, bs=128, log=None)
    models['net10'] = model_json('net', p, list('0123456789'), title=f'0 to 9: two-layer net (lesson 10; {ten["net_epochs"]} epochs, {some})',
                                 accuracy=round(h[-1]['valid_accuracy'], 4), seconds=round(time.process_time() - t, 2))
    if log: log(f'    net10: accuracy {h[-1]["valid_accuracy"]:.4f}')
    t = time.process_time()
    p = _fresh(cnn_k_params, c=ten['cnn_c'])
    h = fit_cnn_k(p, full, epochs=ten['cnn_epochs'], lr=1e-2, bs=128, log=None, threads=1)
    models['cnn10'] = model_json('cnn', p, list('0123456789'), title=f'0 to 9: small CNN (lesson 10; {ten["cnn_c"]} channels, {ten["cnn_epochs"]} epoch, {some})',
                                 accuracy=round(h[-1]['valid_accuracy'], 4), seconds=round(time.process_time() - t, 2))
    if log: log(f'    cnn10: accuracy {h[-1]["valid_accuracy"]:.4f}')
    return models, notes

# ---------------------------------------------------------------- the page

HOST_JS = r'''// The site's host for pad.js: a model object like anywidget's, whose save_changes reads the strokes in JavaScript.
import { render, readStrokes } from './pad.js';

function decode(b64) { const s = atob(b64), u = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new Float32Array(u.buffer); }
function unpack(d) {
  const m = {...d};
  for (const k of ['weights', 'bias', 'w1', 'b1', 'w2', 'b2', 'fc_w', 'fc_b']) if (typeof m[k] === 'string') m[k] = decode(m[k]);
  if (m.blocks) m.blocks = m.blocks.map(b => ({...b, w: decode(b.w), gamma: decode(b.gamma), beta: decode(b.beta), mean: decode(b.mean), vr: decode(b.vr)}));
  return m;
}

class PageModel { // what render() needs of anywidget's model: get, set, save_changes, on, off
  constructor() { this.state = {strokes: [], result: {}, size: 400, width: 24}; this.handlers = {}; this.net = null; }
  get(k) { return this.state[k]; }
  set(k, v) { this.state[k] = v; }
  on(ev, f) { (this.handlers[ev] ||= []).push(f); }
  off(ev, f) { this.handlers[ev] = (this.handlers[ev] || []).filter(g => g !== f); }
  save_changes() {
    if (!this.net) return;
    this.state.result = readStrokes(this.state.strokes, this.net, this.state.size, this.state.width);
    for (const f of this.handlers['change:result'] || []) f();
  }
}

const box = document.getElementById('digit-app'), chooser = document.getElementById('digit-model'), info = document.getElementById('digit-model-info');
const model = new PageModel(), cache = {};
async function choose() {
  const name = chooser.value;
  cache[name] ||= unpack(await (await fetch(`assets/pad/models/${name}.json`)).json());
  model.net = cache[name];
  info.textContent = `validation accuracy ${(100 * model.net.accuracy).toFixed(2)}%, trained in ${model.net.seconds} s of CPU time when this site was built`;
  model.save_changes();
  box.dataset.ready = name;
}
chooser.addEventListener('change', choose);
render({model, el: box});
choose();
'''

def page_md(models:dict, notes:list) -> str:
    "The Markdown of the page: prose, the model chooser and the pad's element, raw HTML"
    options = '\n'.join(f'<option value="{k}">{m["title"]}</option>' for k, m in models.items())
    note_md = ''.join(f'\n!!! note\n    {n}\n' for n in notes)
    return f'''---
title: "Try it: draw a digit"
---

# Try it: draw a digit

Draw a digit in the white square with a mouse, a finger or a pen, and watch a model from the lessons read it. The models
were trained when this site was built, with the library's own training loops, and run here in your browser in plain
JavaScript: nothing is sent anywhere.

Before a model sees your drawing, the page prepares it as MNIST's digits were prepared, the steps of `prepare_digit`
(appendix 94): it finds the **ink box**, scales the digit to fit a **20×20** box (Lanczos, as PIL), and places it in a
**28×28** square with its **centre of mass** in the middle. The three small pictures below the pad show those steps.
An empty pad, a dot, or a drawing that does not look like pen strokes (`digit_doubt`) gets a message, not an answer.
In Jupyter, `DigitPad(model)` (appendix 99) shows the same pad for a model you trained yourself.
{note_md}
<label for="digit-model">Model:</label>
<select id="digit-model">
{options}
</select>
<span id="digit-model-info"></span>

<div id="digit-app"></div>

<script type="module" src="assets/pad/try.js"></script>
'''

def build(docs_dir, # the MkDocs docs folder being built
          cfg=None, # settings.ini's [DEFAULT] section (unused for now: the page needs none)
          ten:dict|None=TEN, # ten-digit training settings; None leaves those models out
          log=print) -> dict:
    "Write `try.md` and `assets/pad/` (pad.js, try.js, models/*.json) into `docs_dir`; return the navigation entry"
    docs_dir = Path(docs_dir)
    out = docs_dir/'assets'/'pad'
    (out/'models').mkdir(parents=True, exist_ok=True)
    shutil.copy(PAD_JS, out/'pad.js')
    (out/'try.js').write_text(HOST_JS, encoding='utf-8')
    models, notes = train_models(ten, log)
    for k, m in models.items(): (out/'models'/f'{k}.json').write_text(json.dumps(m), encoding='utf-8')
    if not models: notes.append('No model could be trained when this site was built: the pad draws, but cannot read.')
    (docs_dir/'try.md').write_text(page_md(models, notes), encoding='utf-8')
    return {'Try it': 'try.md'}

def write_html(docs_dir) -> Path:
    "A plain HTML page `try.html` beside `try.md` (no theme): the page as MkDocs renders its body, for tests and a quick look"
    import markdown
    docs_dir = Path(docs_dir)
    md = (docs_dir/'try.md').read_text(encoding='utf-8').split('---\n', 2)[2]
    body = markdown.markdown(md, extensions=['admonition', 'md_in_html', 'attr_list'])
    fn = docs_dir/'try.html'
    fn.write_text(f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Try it: draw a digit</title></head>\n<body>\n{body}\n</body></html>\n', encoding='utf-8')
    return fn

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('docs_dir', help='an MkDocs docs folder')
    ap.add_argument('--no-ten', action='store_true', help='leave out the ten-digit models')
    args = ap.parse_args(argv)
    t = time.perf_counter()
    print(build(args.docs_dir, ten=None if args.no_ten else TEN))
    print(write_html(args.docs_dir))
    print(f'{time.perf_counter() - t:.1f} s')

if __name__ == '__main__': main()
