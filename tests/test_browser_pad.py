"""The drawing pad in a real browser: headless Chromium (Debian's package, driven by Playwright through `executable_path`).

1. The site's "Try it" page, built by tools/docs/try_page.py into a temporary folder and served on 127.0.0.1: strokes drawn
   with pointer events give the prepared image and probabilities of Python's `read_strokes` (draw_strokes + prepare_digit +
   the model), for every model in the chooser; drawings that are not digits get a message; no console error.
2. A real JupyterLab server on 127.0.0.1 (free port, token, temporary root): a notebook that creates a `DigitPad` is run,
   a 3 and a 7 are drawn on the pad and read back from the page; then lesson 02_sgd runs top to bottom ("Run All") with no
   error output.

Outside CI the tests are skipped when Chromium or Playwright is missing; with CI=true they fail instead.
Screenshots go to build/pad_shots/ (git-ignored).
"""
import functools, http.server, json, os, shutil, socket, subprocess, sys, threading, time, urllib.request
from pathlib import Path

import numpy as np, pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'/'docs'))
SHOTS = root/'build'/'pad_shots'
CI = os.environ.get('CI') == 'true'
CHROMIUM = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)

def _need(ok, why):
    if ok: return
    if CI: pytest.fail(f'{why} (CI=true: the browser tests must run)')
    pytest.skip(why)

@pytest.fixture(scope='module')
def browser():
    _need(CHROMIUM, 'Chromium is not installed (apt-get install chromium)')
    try: from playwright.sync_api import sync_playwright
    except ImportError: _need(False, 'Playwright is not installed (pip install playwright; no browser download needed)')
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()

def new_page(browser, errors):
    page = browser.new_page(viewport={'width': 1100, 'height': 1000})
    page.on('console', lambda m: errors.append(f'console.{m.type}: {m.text}') if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(f'page error: {e}'))
    return page

def draw(page, strokes, canvas='#digit-pad', size=400):
    "Draw `strokes` (pad coordinates) on the canvas with the mouse: pointerdown, pointermove per point, pointerup"
    bb = page.locator(canvas).bounding_box()
    k = bb['width']/size
    for s in strokes:
        page.mouse.move(bb['x'] + s[0][0]*k, bb['y'] + s[0][1]*k)
        page.mouse.down()
        for x, y in s[1:]: page.mouse.move(bb['x'] + x*k, bb['y'] + y*k)
        page.mouse.up()

def arc(cx, cy, r, a0, a1, n=30):
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + r*np.cos(t), cy + r*np.sin(t)], 1).round().astype(int).tolist()

THREE = [arc(200, 140, 70, 200, 450) + arc(200, 270, 70, 270, 520)[1:]]
SEVEN = [[[120, 90], [200, 92], [290, 90], [240, 200], [180, 330]]]
FOUR = [[[150, 80], [120, 230], [280, 230]], [[240, 120], [245, 340]]]
SCRIBBLE = [[[5, 5]] + [[x, y] for y in range(-10, 420, 14) for x in ((-10, 410) if y % 28 else (410, -10))]]  # leaves the pad too

# ---------------------------------------------------------------- the site

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The Try it page (small ten-digit models, to keep the test fast) served on 127.0.0.1; yields (url, docs folder)"
    import try_page
    docs = tmp_path_factory.mktemp('site')
    try_page.build(docs, ten=dict(n_train=2000, net_epochs=1, cnn_epochs=1, cnn_c=4), log=None)
    try_page.write_html(docs)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw): super().__init__(*a, directory=str(docs), **kw)
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_port}/try.html', docs
    srv.shutdown()

def page_state(page) -> dict:
    return page.evaluate('''() => ({
        strokes: JSON.parse(document.querySelector('#digit-pad').dataset.strokes || '[]'),
        prediction: document.querySelector('[data-prediction]').textContent,
        probs: JSON.parse(document.querySelector('[data-probs]').dataset.probs),
        prepared: JSON.parse(document.querySelector('#digit-prepared').dataset.pixels || '[]'),
        message: document.querySelector('[data-message]').textContent})''')

@pytest.mark.real_sample
def test_site_pad_matches_python(browser, site):
    from mnist_basics.pad import read_strokes, NO_INK, NO_CONTRAST, TOO_SMALL
    import try_page
    url, docs = site
    errors, worst_p, worst_px, worst_n = [], 0., 0., 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(browser, errors)
    page.goto(url)
    page.wait_for_selector('#digit-app[data-ready]')
    names = page.eval_on_selector_all('#digit-model option', 'os => os.map(o => o.value)')
    assert names[:2] == ['linear37', 'net37'] and len(names) in (2, 4)
    for name in names:
        page.select_option('#digit-model', name)
        page.wait_for_selector(f'#digit-app[data-ready="{name}"]')
        model = try_page.load_model_json(docs/'assets'/'pad'/'models'/f'{name}.json')
        for strokes in (THREE, SEVEN, FOUR):
            page.click('.dp-clear')
            draw(page, strokes)
            got = page_state(page)
            assert all(abs(p[0] - q[0]) <= 1 and abs(p[1] - q[1]) <= 1 for s, t in zip(got['strokes'], strokes) for p, q in zip(s, t))
            want = read_strokes(got['strokes'], model)  # Python's answer for the strokes the page recorded
            assert got['prediction'] == want['prediction'] and got['message'] == want['message']
            d = np.abs(np.array(got['prepared']) - want['prepared'])
            worst_px, worst_n = max(worst_px, float(d.max())), max(worst_n, int((d > 1e-3).sum()))
            worst_p = max(worst_p, float(np.abs(np.array(got['probs']) - want['probs']).max()))
        page.screenshot(path=str(SHOTS/f'site_{name}.png'))
    # drawings that are not digits: a message, never an answer
    for strokes, message in (([], NO_INK), ([[[200, 200]]], NO_INK), ([[[200, 200], [203, 202]]], TOO_SMALL), (SCRIBBLE, NO_CONTRAST),
                             ([[[100, 200], [300, 200]]], 'does not look like a handwritten digit')):
        page.click('.dp-clear')
        if strokes: draw(page, strokes)
        got = page_state(page)
        assert message in got['message'] and got['prediction'] == '' and got['probs'] == []
    page.screenshot(path=str(SHOTS/'site_bar.png'))
    page.click('.dp-clear')
    draw(page, [[[p[0] + 200, p[1]] for p in SEVEN[0]]])  # leaves the pad on the right
    got = page_state(page)
    assert 'left the pad' in got['message'] and got['prediction'] != '' and any(p[0] >= 400 for s in got['strokes'] for p in s)
    page.screenshot(path=str(SHOTS/'site_leaving.png'))
    # a pen, through pointer events with pointerType 'pen'
    page.click('.dp-clear')
    page.evaluate('''(pts) => { const c = document.querySelector('#digit-pad'), r = c.getBoundingClientRect(), k = r.width / 400;
        const ev = (type, [x, y]) => c.dispatchEvent(new PointerEvent(type, {pointerId: 7, pointerType: 'pen', bubbles: true, pressure: 0.5,
                                                                         clientX: r.left + x * k, clientY: r.top + y * k}));
        ev('pointerdown', pts[0]); pts.slice(1).forEach(p => ev('pointermove', p)); ev('pointerup', pts[pts.length - 1]); }''', SEVEN[0])
    got = page_state(page)
    assert got['prediction'] == read_strokes(got['strokes'], try_page.load_model_json(docs/'assets'/'pad'/'models'/f'{names[-1]}.json'))['prediction'] != ''
    print(f'\nsite against Python, {len(names)} models: probabilities differ by at most {worst_p:.2g}, prepared pixels by {worst_px:.2g} '
          f'({worst_n} pixels above 1e-3)')
    assert worst_p <= 1e-4 and worst_n <= 3
    assert not errors, errors

# ---------------------------------------------------------------- JupyterLab

PAD_NB = '''from mnist_basics.data import load_mnist
from mnist_basics.net import linear_params
from mnist_basics.linear import linear1
from mnist_basics.fast import fast_fit
from mnist_basics.pad import DigitPad
import torch
torch.manual_seed(0)
lin = {k: v.detach() for k, v in linear_params(std=0.1).items()}
fast_fit(lin, load_mnist(standin=False), epochs=20, lr=1., log=None)
DigitPad((linear1, lin))'''

def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A JupyterLab server on 127.0.0.1 with a temporary root holding pad.ipynb and a copy of 02_sgd; yields (base url, token)"
    import nbformat
    top = tmp_path_factory.mktemp('lab')
    work, home = top/'root', top/'home'
    work.mkdir(); home.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PAD_NB)], metadata=dict(
        kernelspec=dict(name='python3', display_name='python3', language='python'))), work/'pad.ipynb')
    shutil.copy(root/'nbs'/'02_sgd.ipynb', work/'02_sgd.ipynb')
    port, token = free_port(), 'mnist-basics-test'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get('PYTHONPATH')])),
               JUPYTER_CONFIG_DIR=str(home/'config'), JUPYTERLAB_SETTINGS_DIR=str(home/'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(home/'workspaces'), JUPYTER_RUNTIME_DIR=str(home/'runtime'))
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}', '--LabApp.expose_app_in_browser=True',
                             '--ServerApp.port_retries=0'] + (['--allow-root'] if os.geteuid() == 0 else []),
                            env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(home/'lab.log', 'wb'))
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=1); break
            except OSError: time.sleep(0.25)
            if proc.poll() is not None: pytest.fail(f"jupyter lab exited with code {proc.returncode}: {(home/'lab.log').read_text()[-2000:]}")
        else: pytest.fail('jupyter lab did not answer within 60 s')
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill()

def open_and_run_all(page, base, token, name):
    "Open notebook `name` in JupyterLab and run all its cells with JupyterLab's 'Run All Cells' command; wait until done"
    page.goto(f'{base}/lab/tree/{name}?token={token}&reset')  # reset: a fresh workspace, this notebook alone
    page.wait_for_function('() => window.jupyterapp && document.querySelector(".jp-Notebook .jp-Cell")', timeout=60_000)
    page.wait_for_function('''(name) => { const w = window.jupyterapp.shell.currentWidget;
        return w && w.context && w.context.path === name && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.connectionStatus === 'connected' && w.sessionContext.kernelDisplayStatus === 'idle'; }''',
        arg=name, timeout=60_000)
    page.evaluate('() => window.jupyterapp.commands.execute("notebook:run-all-cells")')
    try:
        page.wait_for_function('''() => { const w = window.jupyterapp.shell.currentWidget, cells = w.content.widgets;
            return w.sessionContext.kernelDisplayStatus === 'idle' && cells.every(c => c.model.type !== 'code' || c.model.executionCount); }''',
            timeout=90_000, polling=250)
    except Exception:
        page.screenshot(path=str(SHOTS/f'lab_failed_{Path(name).stem}.png'))
        state = page.evaluate('''() => { const w = window.jupyterapp.shell.currentWidget;
            return [w.sessionContext.kernelDisplayStatus, w.content.widgets.map(c => [c.model.type, c.model.executionCount])]; }''')
        raise AssertionError(f'{name} did not finish running in JupyterLab: kernel and cells {state}') from None

@pytest.mark.real_sample
def test_jupyterlab_pad_and_lesson(browser, lab):
    base, token = lab
    errors = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(browser, errors)
    open_and_run_all(page, base, token, 'pad.ipynb')
    page.wait_for_selector('.jp-OutputArea .digit-pad', timeout=30_000)
    pad = page.locator('.jp-OutputArea .digit-pad').first
    pad.scroll_into_view_if_needed()
    for strokes, digit in ((THREE, '3'), (SEVEN, '7')):
        page.locator('.jp-OutputArea .dp-clear').first.click()
        page.wait_for_function('() => document.querySelector(".jp-OutputArea [data-message]").textContent.startsWith("Draw a digit")')
        draw(page, strokes, canvas='.jp-OutputArea .digit-pad')
        page.wait_for_function(f'() => document.querySelector(".jp-OutputArea [data-prediction]").textContent === "{digit}"', timeout=20_000)
        probs = json.loads(page.locator('.jp-OutputArea [data-probs]').first.get_attribute('data-probs'))
        assert len(probs) == 2 and max(probs) > 0.5
        page.screenshot(path=str(SHOTS/f'lab_pad_{digit}.png'))
    # one lesson, top to bottom, through JupyterLab: every cell runs, none shows an error
    open_and_run_all(page, base, token, '02_sgd.ipynb')
    n_err = page.evaluate('''() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code')
        .flatMap(c => Array.from({length: c.model.outputs.length}, (_, i) => c.model.outputs.get(i).type)).filter(t => t === 'error').length''')
    n_cells = page.evaluate('() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === "code").length')
    page.screenshot(path=str(SHOTS/'lab_02_sgd.png'))
    assert n_cells > 10 and n_err == 0
    assert page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    assert not [e for e in errors if 'favicon' not in e], errors
