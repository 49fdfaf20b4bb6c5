"""The docs site: `python tools/build_docs.py` builds it offline from the saved notebooks; every notebook has a page
titled by its notebook, no directive line or warning shows, every image and internal link resolves, each library
module has an API page; and headless Chromium shows the home page and a lesson with its title and a plot."""
import asyncio, base64, html, importlib.util, json, os, re, shutil, socket, subprocess, sys, time, urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote

import pytest

root = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('build_docs', root/'tools'/'build_docs.py')
build_docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(build_docs)

cfg = build_docs.settings()
NBS = root/cfg.get('nbs_path', 'nbs')
PAGES = build_docs.page_order(NBS)

def page_file(nb_path) -> str:
    "The site path of a notebook's page"
    rel = nb_path.relative_to(NBS)
    return 'index.html' if rel == Path('index.ipynb') else str(rel.with_suffix('.html'))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site, built once by the one command, into a temporary folder; `(folder, seconds)`"
    if os.environ.get('CI') != 'true':  # in CI the dev extra is installed, and a missing tool must fail
        for mod in ('mkdocs', 'material', 'pymdownx', 'latex2mathml'):
            pytest.importorskip(mod, reason='the docs tools are not installed: pip install -e ".[dev]"')
    out = tmp_path_factory.mktemp('docs')/'_docs'
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, str(root/'tools'/'build_docs.py'), '--out', str(out)],
                         capture_output=True, text=True, timeout=300)
    secs = time.perf_counter() - t0
    assert res.returncode == 0, res.stdout + res.stderr
    print(res.stdout[-300:])
    return out, secs


class Page(HTMLParser):
    "What the tests need from one HTML page: its tags' attributes, ids, text, and the text of code and output blocks"
    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.ids, self.text, self.h1s, self.title = [], set(), [], [], []
        self._in = []
        self.feed(text)
        self.text = ''.join(self.text)
        self.h1 = self.h1s[0] if self.h1s else []  # the page's title: its first h1
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'a' and 'name' in a: self.ids.add(a['name'])
        if tag == 'h1': self.h1s.append([])
        if tag not in ('br', 'img', 'link', 'meta', 'input', 'hr', 'source', 'path', 'rect', 'circle', 'line'):
            self._in.append(tag)
    def handle_endtag(self, tag):
        if tag in self._in:
            while self._in and self._in.pop() != tag: pass
    def handle_data(self, data):
        self.text.append(data)
        if 'h1' in self._in: self.h1s[-1].append(data)
        if self._in and self._in[-1] == 'title': self.title.append(data)

def read_page(path) -> Page: return Page(Path(path).read_text(encoding='utf-8'))

def html_pages(out): return sorted(Path(out).rglob('*.html'))


def test_build_is_fast(site):
    out, secs = site
    assert (out/'index.html').is_file()
    assert secs < 60, f'the docs build took {secs:.1f} s (target: under a minute)'


def test_every_notebook_has_a_titled_page(site):
    out, _ = site
    assert PAGES and PAGES[0][1].name == 'index.ipynb'
    for _, nb in PAGES:
        fn = out/page_file(nb)
        assert fn.is_file(), f'no page for {nb.name}'
        p = read_page(fn)
        title = build_docs.plain_title(build_docs.nb_title(nb))
        assert ''.join(p.h1).replace('¶', '').strip() == title, f'{fn.name}: h1 is {p.h1!r}, not {title!r}'
        assert ''.join(p.title).strip().startswith(title), f'{fn.name}: <title> is {p.title!r}'


def test_navigation_follows_the_notebook_order(site):
    "Home, the lessons by number, then appendices and solutions; the nav of every page lists them in that order"
    out, _ = site
    src = (out/'index.html').read_text(encoding='utf-8')
    nav = src[src.index('md-nav--primary'):]
    hrefs = [h for h in re.findall(r'<a href="([^"#]+)" class="md-nav__link', nav)]
    want = [page_file(nb) for _, nb in PAGES]
    assert [h for h in hrefs if h in want] == want


def test_page_order_from_file_names(tmp_path):
    "The order comes from the file names alone: new and renumbered notebooks fall into place; `_` files are no pages"
    names = ['index', '00_data', '02_linear', '02a_sgd', '10_more', '03_net', '91_solutions', '90_appendix', '_draft',
             'zz_notes']
    for n in names: (tmp_path/f'{n}.ipynb').write_text('{"cells": []}')
    (tmp_path/'.ipynb_checkpoints').mkdir(); (tmp_path/'.ipynb_checkpoints'/'00_data-checkpoint.ipynb').write_text('{}')
    got = [(s, p.stem) for s, p in build_docs.page_order(tmp_path)]
    assert got == [(None, 'index'), ('Lessons', '00_data'), ('Lessons', '02_linear'), ('Lessons', '02a_sgd'),
                   ('Lessons', '03_net'), ('Lessons', '10_more'), ('Appendices and solutions', '90_appendix'),
                   ('Appendices and solutions', '91_solutions'), ('More', 'zz_notes')]


def test_processing_as_nbdev_shows_it(tmp_path):
    "Directives, hidden cells, stderr and Quarto options handled; maths rendered outside code; title first"
    def code(src, outputs=()): return dict(cell_type='code', source=src, metadata={}, outputs=list(outputs), execution_count=1)
    def md(src): return dict(cell_type='markdown', source=src, metadata={})
    cells = [code('#| default_exp linear'),
             code('#| export\nimport torch'),
             md('# A title\n\n> What it is about'),
             code('#| hide\nsecret = 1'),
             code('x = 1 #| hide_line\ny = 2\nprint(y)',
                  [dict(output_type='stream', name='stdout', text='2\n'),
                   dict(output_type='stream', name='stderr', text='a.py:1: FutureWarning: old\n  warnings.warn(\n')]),
             code('#| echo: false\nprint("only the output")', [dict(output_type='stream', name='stdout', text='only the output\n')]),
             code('#| output: false\nz = 3', [dict(output_type='stream', name='stdout', text='not shown\n')]),
             md('Maths $1/\\sqrt{12}$ but not in code: `$HOME` and\n\n```bash\necho $HOME $PATH\n```')]
    nb = dict(cells=cells, metadata=dict(kernelspec=dict(language='python', name='python3')), nbformat=4, nbformat_minor=5)
    fn = tmp_path/'01_t.ipynb'; fn.write_text(json.dumps(nb))
    page = build_docs.nb_markdown(build_docs.process_nb(fn), tmp_path/'01_t_files')
    assert page.startswith('# A title')
    assert '#|' not in page and 'secret' not in page and 'default_exp' not in page
    assert 'import torch' in page and 'y = 2' in page and 'x = 1' not in page
    assert 'FutureWarning' not in page and 'warnings.warn' not in page and '```text\n2\n```' in page
    assert 'print("only the output")' not in page and 'only the output' in page
    assert 'z = 3' in page and 'not shown' not in page
    assert '<math' in page and '\\sqrt' not in page and '`$HOME`' in page and 'echo $HOME $PATH' in page


def test_no_directive_lines_or_warnings(site):
    out, _ = site
    warning = re.compile(r'\.py:\d+: \w*Warning|^\s*warnings\.warn\($', re.MULTILINE)
    for fn in html_pages(out):
        p = read_page(fn)
        assert not re.search(r'^\s*#\s*\|', p.text, re.MULTILINE), f'{fn.name} shows a directive line'
        assert not warning.search(p.text), f'{fn.name} shows a warning: {warning.search(p.text).group(0)!r}'
        # outputs (text blocks and HTML outputs) hold no warning at all
        outputs = re.findall(r'<div class="language-text highlight">(.*?)</div>', fn.read_text(encoding='utf-8'), re.S)
        for o in outputs: assert 'Warning' not in o and 'warnings.warn' not in o, f'{fn.name}: warning in an output'


def _local_refs(fn, out):
    "Every (attribute, url) of the page that points inside the site, and every external resource it would load"
    p = read_page(fn)
    local, external = [], []
    for tag, a in p.tags:
        for attr in ('href', 'src'):
            url = a.get(attr)
            if not url or url.startswith(('mailto:', 'data:', 'javascript:')): continue
            if urlsplit(url).scheme or url.startswith('//'):
                loads = tag in ('script', 'img', 'iframe', 'source', 'video', 'audio') or \
                        (tag == 'link' and a.get('rel') not in ('canonical',) and attr == 'href')
                if loads: external.append((tag, url))
            else: local.append((tag, url))
    return p, local, external


def test_images_and_internal_links_resolve_and_nothing_loads_from_the_internet(site):
    out, _ = site
    pages = {fn: read_page(fn) for fn in html_pages(out)}
    n_img = 0
    for fn in pages:
        _, local, external = _local_refs(fn, out)
        assert not external, f'{fn.relative_to(out)} loads from the internet: {external[:3]}'
        for tag, url in local:
            parts = urlsplit(url)
            path = unquote(parts.path)
            if path.startswith('/'):  # absolute (only 404.html, for any depth): under the site's base URL
                base = cfg.get('doc_baseurl', '').rstrip('/') + '/'
                assert path.startswith(base), f'{fn.relative_to(out)}: {url} is outside the site'
                target = (out/path[len(base):]).resolve()
            else: target = (fn.parent/path).resolve() if path else fn
            if parts.path.endswith('/') or target.is_dir(): target = target/'index.html'
            assert target.exists(), f'{fn.relative_to(out)}: {tag} {url} -> missing {target}'
            if tag == 'img': n_img += 1
            if parts.fragment and target.suffix == '.html':
                ids = pages[target].ids if target in pages else read_page(target).ids
                assert unquote(parts.fragment) in ids, f'{fn.relative_to(out)}: link {url} to a missing anchor'
    n_plots = sum('image/png' in o.get('data', {}) for _, nb in PAGES
                  for c in json.loads(nb.read_text())['cells'] for o in c.get('outputs', []))
    assert n_img >= min(n_plots, 1), 'no image on any page'


def test_api_reference(site):
    "One page per library module, with every name in its `__all__`, its signature and its parameters' comments"
    out, _ = site
    mods = build_docs.lib_modules(root/cfg['lib_path'])
    assert mods
    for modname in mods:
        fn = out/'api'/f'{modname.split(".")[-1]}.html'
        assert fn.is_file(), f'no API page for {modname}'
        p = read_page(fn)
        mod = importlib.import_module(modname)
        for name in getattr(mod, '__all__', []):
            assert name.lower() in {i.lower() for i in p.ids} or name in p.text, f'{modname}.{name} missing'
    linear = read_page(out/'api'/'linear.html').text
    assert 'def init_params(' in linear and '# standard deviation of the random start' in linear


def test_maths_rendered(site):
    "Notebooks with $maths$ in their prose get MathML, and no raw LaTeX is left"
    out, _ = site
    for _, nb in PAGES:
        prose = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown')
        prose = build_docs._re_code.sub('', prose)
        if build_docs._re_inline.search(prose) or build_docs._re_display.search(prose):
            src = (out/page_file(nb)).read_text(encoding='utf-8')
            assert '<math' in src, f'{nb.name}: maths not rendered'
            assert not re.search(r'\$\\\w+', read_page(out/page_file(nb)).text), f'{nb.name}: raw LaTeX left'


# ---------------------------------------------------------------- in a browser

CHROMIUM = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
SHOTS = os.environ.get('DOCS_SCREENSHOTS')

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait_for(fn, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        res = fn()
        if res: return res
        time.sleep(0.1)
    raise TimeoutError(f'timed out waiting for {what}')


class CDP:
    "A minimal Chrome DevTools Protocol client over one page's websocket (tornado's websocket client)"
    def __init__(self, ws): self.ws, self.n = ws, 0
    @classmethod
    async def connect(cls, url):
        import tornado.websocket
        return cls(await tornado.websocket.websocket_connect(url, max_message_size=256 * 2**20))
    async def __call__(self, method, timeout=30, **params):
        self.n += 1
        await self.ws.write_message(json.dumps(dict(id=self.n, method=method, params=params)))
        async def reply():
            while True:
                msg = await self.ws.read_message()
                if msg is None: raise ConnectionError('Chromium closed the connection')
                msg = json.loads(msg)
                if msg.get('id') == self.n:
                    if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                    return msg['result']
        return await asyncio.wait_for(reply(), timeout)
    async def js(self, expr):
        res = await self('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in res: raise RuntimeError(res['exceptionDetails'])
        return res['result'].get('value')
    async def goto(self, url):
        await self('Page.navigate', url=url)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            ok = await self.js("document.readyState === 'complete' && location.href !== 'about:blank' && "
                               "[...document.images].every(i => i.complete)")
            if ok: return
            await asyncio.sleep(0.1)
        raise TimeoutError(f'{url} did not finish loading')
    async def shot(self, fn):
        await asyncio.sleep(0.5)  # let the header's title transition finish
        png = base64.b64decode((await self('Page.captureScreenshot', format='png'))['data'])
        Path(fn).write_bytes(png); return Path(fn)

# Visibility as a reader would see it: laid out, not hidden, not transparent, and inside the viewport.
VISIBLE_JS = '''(el) => { if (!el) return false; const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && +s.opacity > 0 && el.checkVisibility({opacityProperty: true})
         && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; }'''

CHECK_JS = f'''(() => {{ const visible = {VISIBLE_JS};
  const h1 = document.querySelector('article h1');
  const plots = [...document.querySelectorAll('article img.nb-image')];
  return {{title: document.title, h1: h1 && h1.textContent.replace('¶', '').trim(), h1_visible: visible(h1),
          n_plots: plots.length, width: innerWidth, scroll_width: document.documentElement.scrollWidth,
          nav_links: document.querySelectorAll('nav.md-nav--primary a.md-nav__link').length}}; }})()'''

PLOT_JS = f'''(async () => {{ const visible = {VISIBLE_JS};
  const plot = [...document.querySelectorAll('article img.nb-image')].find(i => i.naturalWidth >= 200);
  if (!plot) return null;
  plot.scrollIntoView({{block: 'center'}});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const r = plot.getBoundingClientRect();
  return {{src: plot.getAttribute('src'), loaded: plot.complete && plot.naturalWidth > 0, visible: visible(plot),
          shown: [Math.round(r.width), Math.round(r.height)], natural: [plot.naturalWidth, plot.naturalHeight]}}; }})()'''

MATHS_JS = f'''(async () => {{ const visible = {VISIBLE_JS};
  const m = document.querySelector('article math');
  m.scrollIntoView({{block: 'center'}});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const r = m.getBoundingClientRect();
  return {{visible: visible(m), shown: [Math.round(r.width), Math.round(r.height)], text: m.textContent}}; }})()'''

SEARCH_JS = '''(async (q) => { const input = document.querySelector('input.md-search__input');
  if (!input) return null;
  document.querySelector('label[for=__search]')?.click(); input.focus(); input.value = q;
  input.dispatchEvent(new Event('input', {bubbles: true})); input.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true}));
  for (let i = 0; i < 100; i++) {
    const hits = document.querySelectorAll('.md-search-result__item');
    if (hits.length) return [...hits].map(h => h.querySelector('a')?.getAttribute('href'));
    await new Promise(r => setTimeout(r, 100)); }
  return []; })'''


def test_browser_shows_title_and_plot(site, tmp_path):
    "Headless Chromium: the home page and a lesson show their titles; the lesson a loaded plot; search answers offline"
    if not CHROMIUM:
        if os.environ.get('CI') == 'true': pytest.fail('Chromium is not installed in CI (.ci/run installs it)')
        pytest.skip('Chromium is not installed (apt-get install -y chromium): the browser test needs it')
    out, _ = site
    shots = Path(SHOTS) if SHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    def has_plot(nb): return any(int(w) >= 200 for w in re.findall(r'<img class="nb-image"[^>]* width="(\d+)"',
                                                                    (out/page_file(nb)).read_text(encoding='utf-8')))
    lesson = next(nb for s, nb in PAGES if s == 'Lessons' and has_plot(nb))  # the first lesson with a plot
    maths_page = next((nb for _, nb in PAGES if '<math' in (out/page_file(nb)).read_text(encoding='utf-8')), None)
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tmp_path/'profile'
    chrome = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                               '--no-first-run', '--disable-extensions', '--disable-background-networking',
                               '--hide-scrollbars', '--remote-debugging-port=0', f'--user-data-dir={profile}',
                               '--window-size=1280,900', 'about:blank'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f'http://127.0.0.1:{port}/'
        def served():
            try: return urllib.request.urlopen(base, timeout=2).status == 200
            except OSError: return False
        _wait_for(served, 15, 'the http server')
        devport = _wait_for(lambda: (profile/'DevToolsActivePort').is_file() and
                            (profile/'DevToolsActivePort').read_text().split('\n')[0], 30, 'Chromium to start')
        targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{devport}/json/list', timeout=10))
        ws_url = next(t['webSocketDebuggerUrl'] for t in targets if t['type'] == 'page')

        async def session():
            cdp = await CDP.connect(ws_url)
            await cdp('Page.enable'); await cdp('Runtime.enable')
            await cdp('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)
            res = {}
            await cdp.goto(base + 'index.html')
            res['home'] = await cdp.js(CHECK_JS)
            res['home_shot'] = await cdp.shot(shots/'docs_home.png')
            res['search'] = await cdp.js(SEARCH_JS + '("gradient")')
            await cdp.goto(base + page_file(lesson))
            res['lesson'] = await cdp.js(CHECK_JS)
            res['lesson_shot'] = await cdp.shot(shots/f'docs_{lesson.stem}_top.png')
            res['plot'] = await cdp.js(PLOT_JS)
            res['plot_shot'] = await cdp.shot(shots/f'docs_{lesson.stem}_plot.png')
            if maths_page:  # MathML laid out by the browser itself, no script
                await cdp.goto(base + page_file(maths_page))
                res['maths'] = await cdp.js(MATHS_JS)
                res['maths_shot'] = await cdp.shot(shots/f'docs_{maths_page.stem}_maths.png')
            # a phone: 390 px wide
            await cdp('Emulation.setDeviceMetricsOverride', width=390, height=844, deviceScaleFactor=2, mobile=True)
            await cdp.goto(base + page_file(lesson))
            res['phone'] = await cdp.js(CHECK_JS)
            res['phone_plot'] = await cdp.js(PLOT_JS)
            res['phone_shot'] = await cdp.shot(shots/f'docs_{lesson.stem}_phone.png')
            cdp.ws.close()
            return res
        res = asyncio.run(asyncio.wait_for(session(), 120))
    finally:
        server.kill(); server.wait()
        try: os.killpg(chrome.pid, 9)
        except ProcessLookupError: pass
        chrome.wait()
    print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()}, indent=1, ensure_ascii=False))
    title = build_docs.plain_title(build_docs.nb_title(lesson))
    home = res['home']
    assert home['h1'] == build_docs.plain_title(build_docs.nb_title(NBS/'index.ipynb')) and home['h1_visible'], home
    assert home['nav_links'] >= len(PAGES), home
    assert res['search'], 'offline search found nothing for "gradient"'
    lesson_res = res['lesson']
    assert lesson_res['h1'] == title and lesson_res['h1_visible'], lesson_res
    assert lesson_res['title'].startswith(title), lesson_res
    plot = res['plot']
    assert plot and plot['loaded'] and plot['visible'] and plot['shown'][0] >= 200, plot
    phone = res['phone']
    assert phone['h1'] == title and phone['h1_visible'], phone
    assert phone['scroll_width'] <= phone['width'] + 1, f'the page is wider than a phone: {phone}'
    assert res['phone_plot']['visible'] and res['phone_plot']['shown'][0] <= 390, res['phone_plot']
    if maths_page: assert res['maths']['visible'] and min(res['maths']['shown']) > 5, res['maths']
    for k in ('home_shot', 'lesson_shot', 'plot_shot', 'phone_shot'): assert res[k].stat().st_size > 10_000, k
