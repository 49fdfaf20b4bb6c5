"The drawing pad's Python side (mnist_basics.pad), the site's model files (tools/docs/try_page.py), and pad.js's pipeline run by Node against Python's."
import json, math, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st

from mnist_basics.pad import (DigitPad, read_strokes, check_strokes, pad_model, prepare_steps, PAD_JS, NO_INK, NO_CONTRAST, TOO_SMALL)
from mnist_basics.predict import draw_strokes, prepare_digit
from mnist_basics.linear import linear1
from mnist_basics.net import linear_params, net_params, simple_net
from mnist_basics.digits import net_k_params, cnn_k_params, cnn_k_forward
from mnist_basics.train import save_model, load_model

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'/'docs'))
import try_page

def arc(cx, cy, r, a0, a1, n=40):
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + r*np.cos(t), cy + r*np.sin(t)], 1).round().astype(int).tolist()

THREE = [arc(200, 140, 70, 200, 450) + arc(200, 270, 70, 270, 520)[1:]]
SEVEN = [[[120, 90], [290, 90], [180, 330]]]

def params_of(make, seed=0, **kw):
    torch.manual_seed(seed)
    return {k: v.detach() for k, v in make(**kw).items()}

@pytest.fixture(scope='module')
def lin(): return (linear1, params_of(linear_params, std=0.1))

def test_prepare_steps_equals_prepare_digit():
    for s in (THREE, SEVEN):
        im = draw_strokes(check_strokes(s))
        x, steps = prepare_steps(im)
        assert torch.equal(x, prepare_digit(im))
        r0, r1, c0, c1 = steps['box']
        assert 0 <= r0 < r1 < 400 and 0 <= c0 < c1 < 400
        assert max(steps['fit_shape']) == 20 and len(steps['fit']) == math.prod(steps['fit_shape'])

def test_linear_probabilities_and_contributions(lin):
    fn, p = lin
    r = read_strokes(THREE, lin)
    x = prepare_digit(draw_strokes(check_strokes(THREE)))
    score = linear1(x[None], **p).item()
    assert r['digits'] == ['3', '7'] and r['prediction'] == ('3' if score > 0 else '7')
    assert r['probs'][0] == pytest.approx(1/(1 + math.exp(-score)), abs=1e-6) and sum(r['probs']) == pytest.approx(1, abs=1e-6)
    assert np.allclose(r['contributions'], (p['weights'].view(784)*x).numpy(), atol=1e-7)
    assert np.allclose(r['prepared'], x.numpy())

def test_model_forms_agree(tmp_path, lin):
    "A model file, load_model's tuple and (model_fn, params) give the same answer"
    p = params_of(net_params, std=0.1)
    fn = save_model(tmp_path/'net.pt', 'net', p)
    a, b, c = (read_strokes(SEVEN, m) for m in (fn, load_model(fn), (simple_net, p)))
    assert a['probs'] == b['probs'] and np.allclose(a['probs'], c['probs'], atol=1e-6)
    assert a['contributions'] is None  # only the linear 3-vs-7 model shows weight × pixel
    assert read_strokes(SEVEN, str(fn))['prediction'] == a['prediction']

def test_ten_digit_models():
    for m in ((simple_net, params_of(net_k_params, std=0.1, n_hidden=16)), (cnn_k_forward, params_of(cnn_k_params, c=2))):
        r = read_strokes(THREE, m)
        assert r['digits'] == list('0123456789') and len(r['probs']) == 10
        assert sum(r['probs']) == pytest.approx(1, abs=1e-5) and r['prediction'] == str(int(np.argmax(r['probs'])))

@pytest.mark.parametrize('strokes, message', [
    ([], NO_INK), ([[]], NO_INK), ([[[200, 200]]], NO_INK),  # empty, and a single dot (one point: nothing drawn)
    ([[[200, 200], [203, 202]]], TOO_SMALL),  # a tiny blob
    ([[[x, y] for y in range(0, 400, 12) for x in ((0, 399) if y % 24 else (399, 0))]], NO_CONTRAST),  # a scribble over the pad
    ([[[100, 200], [300, 200]]], 'does not look like a handwritten digit: its ink fills its box'),  # a bar
    ([[[1, 2], [3, 'x']]], 'strokes[0][1]: expected an (x, y) pair'), ('junk', 'expected a list of strokes'),
    ([[[0, 0], [1e9, 0]]], 'far outside'),
])
def test_bad_drawings_get_a_message_and_no_answer(lin, strokes, message):
    r = read_strokes(strokes, lin)
    assert message in r['message'] and r['prediction'] == '' and r['probs'] == []

def test_stroke_leaving_the_pad(lin):
    r = read_strokes([[[p[0] + 150, p[1]] for p in SEVEN[0]]], lin)
    assert 'left the pad' in r['message'] and r['prediction'] in ('3', '7') and len(r['probs']) == 2

@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(-50, 450), st.integers(-50, 450)), max_size=8), max_size=3))
def test_any_strokes_give_an_answer_or_a_message(strokes):
    r = read_strokes([[list(p) for p in s] for s in strokes], (linear1, params_of(linear_params, std=0.1)))
    assert (r['prediction'] in ('3', '7')) != (r['prediction'] == '' and bool(r['message']))
    assert len(r['prepared']) == 784 and all(0 <= v <= 1 for v in r['prepared'])

@pytest.mark.parametrize('model, message', [
    (42, 'expected a model file'), ((linear1, {}), 'no floating-point tensors'),
    ((lambda xb, w: xb@w, dict(w=torch.zeros(784, 3))), 'gives 3 scores per image'),
])
def test_bad_models(model, message):
    with pytest.raises(ValueError, match=message): pad_model(model)
    with pytest.raises(ValueError, match=message): DigitPad(model)

def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='model file not found'): DigitPad(tmp_path/'nope.pt')

def test_widget_reads_strokes(lin):
    pad = DigitPad(lin)
    assert pad.result['message'] == NO_INK and pad._esm and PAD_JS.is_file()
    assert pad.draw(THREE) == read_strokes(THREE, lin)
    pad.strokes = [[[120, 90], [290, 90]], [[290, 90], [180, 330]]]  # as the page sets it
    assert pad.result['prediction'] in ('3', '7') and pad.result['prepared'] != [0.]*784
    assert pad.draw([])['message'] == NO_INK

def test_pad_js_is_package_data():
    "pad.js ships with the library: MANIFEST.in includes it, so a wheel and `pip install -e .` have it"
    assert 'include mnist_basics/pad.js' in (root/'MANIFEST.in').read_text().splitlines()

# ---------------------------------------------------------------- the site's model files

@pytest.mark.parametrize('kind, fn, params', [
    ('linear', linear1, params_of(linear_params, std=0.1)), ('net', simple_net, params_of(net_k_params, std=0.1, n_hidden=8)),
    ('cnn', cnn_k_forward, params_of(cnn_k_params, c=2)),
])
def test_model_json_round_trip(tmp_path, kind, fn, params):
    digits = ['3', '7'] if kind == 'linear' else list('0123456789')
    (tmp_path/'m.json').write_text(json.dumps(try_page.model_json(kind, params, digits, title='t')))
    fn2, p2 = try_page.load_model_json(tmp_path/'m.json')
    assert fn2 is fn and p2.keys() == params.keys() and all(torch.equal(p2[k], params[k]) for k in params)

@pytest.mark.real_sample
def test_try_page_without_ten_digit_models(tmp_path):
    nav = try_page.build(tmp_path, ten=None, log=None)
    assert nav == {'Try it': 'try.md'}
    assert sorted(p.name for p in (tmp_path/'assets'/'pad'/'models').iterdir()) == ['linear37.json', 'net37.json']
    md = (tmp_path/'try.md').read_text()
    assert '<select id="digit-model">' in md and 'value="linear37"' in md and 'ten-digit models were left out' in md
    assert (tmp_path/'assets'/'pad'/'pad.js').read_bytes() == PAD_JS.read_bytes()
    for m in ('linear37', 'net37'):
        d = json.loads((tmp_path/'assets'/'pad'/'models'/f'{m}.json').read_text())
        assert d['accuracy'] > 0.9 and d['digits'] == ['3', '7']

@pytest.mark.real_sample
def test_try_page_when_full_mnist_is_missing(tmp_path, monkeypatch):
    "No full MNIST: the ten-digit models are left out with a note, never a failure"
    real = try_page.load_mnist
    def fake(path=None, cache=True, standin=True, digits=('3', '7')):
        if digits == 'all': raise FileNotFoundError('no full MNIST here')
        return real(path, cache=cache, standin=standin)
    monkeypatch.setattr(try_page, 'load_mnist', fake)
    try_page.build(tmp_path, log=None)
    assert 'full MNIST is not on the machine' in (tmp_path/'try.md').read_text()
    assert not (tmp_path/'assets'/'pad'/'models'/'net10.json').exists()

# ---------------------------------------------------------------- pad.js's pipeline in Node, against Python's

NODE = shutil.which('node')

@pytest.mark.skipif(NODE is None and os.environ.get('CI') != 'true', reason='Node.js is not installed')
def test_pad_js_pipeline_equals_python(tmp_path):
    "drawStrokes and readStrokes of pad.js give Python's ink, prepared image and probabilities for random strokes"
    rng = np.random.default_rng(0)
    cases = [THREE, SEVEN, [[[p[0] + 150, p[1]] for p in SEVEN[0]]], [[[200, 200], [203, 202]]]]
    cases += [[rng.integers(20, 380, (rng.integers(2, 12), 2)).tolist() for _ in range(2)] for _ in range(8)]
    for _ in range(6):
        p, pts = rng.integers(100, 300, 2).astype(float), []
        for i in range(50): p = p + rng.normal(0, 7, 2); pts.append([int(round(v)) for v in p])
        cases.append([pts])
    fn, params = (simple_net, params_of(net_params, std=0.1))
    (tmp_path/'m.json').write_text(json.dumps(try_page.model_json('net', params, ['3', '7'])))
    shutil.copy(PAD_JS, tmp_path/'pad.mjs')
    (tmp_path/'cases.json').write_text(json.dumps(cases))
    (tmp_path/'run.mjs').write_text('''
import * as pad from './pad.mjs';
import fs from 'fs';
const dec = s => new Float32Array(Uint8Array.from(Buffer.from(s, 'base64')).buffer);
const m = JSON.parse(fs.readFileSync(new URL('./m.json', import.meta.url)));
for (const k of ['w1', 'b1', 'w2', 'b2']) m[k] = dec(m[k]);
const cases = JSON.parse(fs.readFileSync(new URL('./cases.json', import.meta.url)));
console.log(JSON.stringify(cases.map(c => ({ink: Array.from(pad.drawStrokes(c)).join(''), res: pad.readStrokes(c, m)}))));
''')
    out = json.loads(subprocess.run([NODE, str(tmp_path/'run.mjs')], capture_output=True, text=True, check=True).stdout)
    worst_ink = worst_px = worst_p = 0
    for c, o in zip(cases, out):
        ink = (np.asarray(draw_strokes(check_strokes(c)).convert('L')) < 128).astype(int).ravel()
        worst_ink = max(worst_ink, int((np.array(list(o['ink']), dtype=int) != ink).sum()))
        r = read_strokes(c, (fn, params))
        assert o['res']['message'] == r['message'] and o['res']['prediction'] == r['prediction']
        worst_px = max(worst_px, float(np.abs(np.array(o['res']['prepared']) - r['prepared']).max()))
        if r['probs']: worst_p = max(worst_p, float(np.abs(np.array(o['res']['probs']) - r['probs']).max()))
    print(f'pad.js against Python: at most {worst_ink} pixels of ink differ (400×400), prepared pixels by {worst_px:.2g}, probabilities by {worst_p:.2g}')
    assert worst_ink <= 5 and worst_px <= 0.01 and worst_p <= 1e-4
