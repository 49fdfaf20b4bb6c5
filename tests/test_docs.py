"""The docs site: `python tools/build_docs.py` builds it offline from the saved notebooks; every notebook has a page
titled by its notebook, no directive line or warning shows, every image and internal link resolves, each library
module has an API page; `--out` never replaces a folder the tool did not make. Then a reader's check: headless
Chromium loads every page, at 1280 and 390 px wide, and checks that every picture saved in the notebook is there and
loaded, with an alt text that says what it shows; that no raw HTML or Markdown shows as text; that the page never
scrolls sideways on a phone; and that nothing logs an error. Screenshots of the home page, a lesson and the exercises
page at both widths go to `_docs_shots/` (git-ignored; `DOCS_SCREENSHOTS=DIR` to choose), for a person to look at."""
import asyncio, base64, html, importlib, importlib.util, json, os, re, shutil, socket, subprocess, sys, time, urllib.request
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
    res = subprocess.run([sys.executable, str(root/'tools'/'build_docs.py'), '--out', '_docs'], cwd=out.parent,  # relative
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
    assert (out/'index.html').is_file() and (out/'api'/'index.html').is_file() and len(html_pages(out)) > len(PAGES)
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


# ---------------------------------------------------------------- --out: only ever replace what the tool made

def _run_build(*args, cwd=root):
    return subprocess.run([sys.executable, str(root/'tools'/'build_docs.py'), '--quiet', *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)

def test_out_refuses_a_folder_it_did_not_make(tmp_path):
    "A folder with a user's file, the repository, a folder above it, a file and a symlink are refused with one line"
    user = tmp_path/'mine'; user.mkdir(); (user/'thesis.tex').write_text('years of work')
    (tmp_path/'a_file').write_text('x'); (tmp_path/'link').symlink_to(user)
    for out, cwd in [(user, root), ('.', root), ('..', root), (str(root), tmp_path), (root.parent, root),
                     (tmp_path/'a_file', root), (tmp_path/'link', root), ('nbs', root)]:
        res = _run_build('--out', str(out), cwd=cwd)
        assert res.returncode == 2, (out, res.returncode, res.stderr[-500:])
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('build_docs: error: --out '), (out, res.stderr)
        assert 'Traceback' not in res.stderr
    assert (user/'thesis.tex').read_text() == 'years of work' and sorted(p.name for p in user.iterdir()) == ['thesis.tex']
    assert (tmp_path/'a_file').read_text() == 'x' and (root/'settings.ini').is_file() and (root/'.git').exists()
    assert 'was not made by this tool' in _run_build('--out', str(user)).stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')], 'a half-made site was left behind'
    res = _run_build('--out', str(tmp_path/'a_file'/'site'))  # its parent is a file: no folder can be made there
    assert res.returncode == 2 and res.stderr.startswith('build_docs: error: --out ') and 'Traceback' not in res.stderr, res.stderr

def test_out_replaces_only_its_own_site(tmp_path):
    "An absent, empty or previously built folder is replaced by the new site; nothing else is touched"
    new = tmp_path/'new'; new.mkdir(); (new/build_docs.MARKER).write_text('x'); (new/'index.html').write_text('new')
    prev = tmp_path/'site'; prev.mkdir(); (prev/build_docs.MARKER).write_text('x'); (prev/'stale.html').write_text('old')
    (tmp_path/'neighbour.txt').write_text('keep')
    build_docs.replace_out(new, prev)
    assert sorted(p.name for p in prev.iterdir()) == sorted([build_docs.MARKER, 'index.html']) and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['neighbour.txt', 'site']
    for made in (tmp_path/'absent', tmp_path/'empty'):
        if made.name == 'empty': made.mkdir()
        new = tmp_path/'new2'; new.mkdir(); (new/'index.html').write_text('n')
        assert build_docs.out_refusal(made) is None
        build_docs.replace_out(new, made)
        assert (made/'index.html').read_text() == 'n'
    mine = tmp_path/'mine'; mine.mkdir(); (mine/'a.txt').write_text('a')
    new = tmp_path/'new3'; new.mkdir()
    with pytest.raises(build_docs.OutRefused): build_docs.replace_out(new, mine)
    assert (mine/'a.txt').read_text() == 'a'

def test_a_previous_build_is_replaced(site):
    "The site carries the marker, so building again over it works; a stray file in it does not survive"
    out, _ = site
    assert (out/build_docs.MARKER).is_file()
    assert build_docs.out_refusal(out) is None


# ---------------------------------------------------------------- what the builder writes

def test_outputs_and_fastprogress():
    "Text outputs are boxed apart from code; fastprogress's table is HTML, its bars and global style are dropped"
    txt = build_docs.output_md(dict(output_type='stream', name='stdout', text='hello\n'), None, 'x')
    assert 'class="nb-output nb-text no-copy"' in txt and '```text\nhello\n```' in txt
    style = '<style>\n    progress { appearance: none; }\n    table.fastprogress { margin: 1em 0; }\n</style>'
    bar = '<div><progress max="20" value="20"></progress> 100.00% [20/20 00:00&lt;00:00]</div>'
    table = '<div><table class="fastprogress"><thead><tr><th>epoch</th></tr></thead><tbody><tr><td>0</td></tr></tbody></table></div>'
    def out(h, md=None):
        data = {'text/html': h, 'text/plain': '<IPython.core.display.HTML object>'}
        if md: data['text/markdown'] = md
        return build_docs.output_md(dict(output_type='display_data', data=data), None, 'x')
    assert out(style) == ''
    assert out(bar, f'```html\n{bar}\n```') == ''
    got = out(table, f'```html\n{table}\n```')
    assert '<table class="fastprogress">' in got and '```' not in got and 'nb-html' in got
    assert '<progress' not in out(bar + table) and '<table' in out(bar + table)
    styler = '<style type="text/css">\n#T_1_row0_col0 { background-color: #fff; }\n</style>\n<table id="T_1"><tr><td>1</td></tr></table>'
    assert '#T_1_row0_col0' in out(styler)  # a pandas Styler keeps its own scoped style

def test_fold_outs_render_markdown_and_tables_link_notebooks():
    md = 'Q\n\n<details><summary>Answer</summary>\n\nIt gives `inf`.\n\n</details>\n\n`<details>` in code'
    got = build_docs.md_in_details(md)
    assert '<details markdown="1"><summary>' in got and '`<details>` in code' in got
    assert build_docs.md_in_details(got) == got
    table = '| lesson | what |\n|---|---|\n| `03_linear` | a `linear1` |\n| `backprop` | none |\n| x `03_linear` | y |'
    got = build_docs.link_table_names(table, {'03_linear': '03_linear.md'})
    assert '| [`03_linear`](03_linear.md) | a `linear1` |' in got and '| `backprop` | none |' in got
    assert '| x `03_linear` | y |' in got

def test_source_links_point_at_the_line():
    "show_doc's source link names the file in the repository and the line where the object is defined"
    from nbdev.showdoc import show_doc
    spec = importlib.util.find_spec(f"{cfg['lib_path']}.linear")
    mod = importlib.import_module(f"{cfg['lib_path']}.linear")
    md = build_docs.show_doc_md(show_doc(mod.init_params))
    url = re.search(r'\[source\]\(([^)]+)\)', md).group(1)
    path, line = re.fullmatch(re.escape(cfg['git_url']) + r'/blob/[^/]+/(.+)#L(\d+)', url).groups()
    src = (root/path).read_text(encoding='utf-8').splitlines()
    assert src[int(line) - 1].startswith('def init_params('), (url, src[int(line) - 1])

def test_alt_text_from_fig_alt_or_context(tmp_path):
    "`#| fig-alt:` wins (read before directives are dropped); else `fig-cap`; else the preceding markdown, trimmed"
    png = base64.b64encode(bytes.fromhex('89504e470d0a1a0a0000000d49484452000000c8000000640806000000')).decode()
    def code(src): return dict(cell_type='code', source=src, metadata={}, execution_count=1,
                               outputs=[dict(output_type='display_data', data={'image/png': png}, metadata={})])
    cells = [dict(cell_type='markdown', metadata={}, source='# T\n\n## Learning rates\n\nHow big should the learning rate '
                  'be? For this function **the factor** answers it ' + 'completely, ' * 20),
             code('#| fig-alt: Three panels: the loss at lr 0.02, 0.5 and 1.1\nplot()'),
             code('#| fig-cap: The loss, step by step\nplot()'), code('plot()')]
    fn = tmp_path/'01_t.ipynb'; fn.write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    page = build_docs.nb_markdown(build_docs.process_nb(fn), tmp_path/'01_t_files')
    alts = re.findall(r'alt="([^"]*)"', page)
    assert alts[0] == 'Three panels: the loss at lr 0.02, 0.5 and 1.1' and alts[1] == 'The loss, step by step'
    assert alts[2].startswith('Learning rates: How big should the learning rate be?') and len(alts[2]) <= 125, alts[2]
    assert 'fig-alt' not in page and 'The loss, step by step</p>' in page

def test_markdown_only_pages_and_the_exercises_page(tmp_path, monkeypatch):
    "A site of other notebooks: an unnumbered markdown-only page lands in More; the exercises page links into lessons"
    def md(src): return dict(cell_type='markdown', metadata={}, source=src)
    def code(src): return dict(cell_type='code', metadata={}, source=src, outputs=[], execution_count=1)
    def nb(name, cells): (tmp_path/'nbs'/f'{name}.ipynb').write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    (tmp_path/'nbs').mkdir()
    nb('index', [md('# Home\n\n| lesson | what |\n|---|---|\n| `01_b` | b |\n| `00_a` | a |\n\nSee [limits](limits.ipynb).')])
    nb('00_a', [md('# Lesson A'), code('x = 1'), md('## Exercises\n\nWork.'),
                md('### Exercise 1: the `sum`\n\nWrite `my_sum(a)`: the sum. More text.'), code('check_sum(my_sum);'),
                md('### Exercise 1: again\n\nWhy? Think.\n\n<details><summary>Answer</summary>\n\nBecause.\n\n</details>'),
                md('## Questionnaire'), md('**1. Q?**\n\n<details><summary>Answer</summary>\n\nA `b`.\n\n</details>')])
    nb('01_b', [md('# Lesson B'), code('y = 2')])
    nb('limits', [md('# Limits\n\nWhat the library accepts.')])
    import mnist_basics.data
    def offline(url): raise OSError(f'offline: no download of {url}')  # the Try-it page's models need data: as on a machine without any
    monkeypatch.setattr(mnist_basics.data, 'download', offline)
    out = tmp_path/'site'
    build_docs.build(out, quiet=True, nbs_path=tmp_path/'nbs')
    (out/'stale.html').write_text('from an older build')
    monkeypatch.chdir(tmp_path)
    build_docs.build(Path('site'), quiet=True, nbs_path=Path('nbs'))  # again, over the first, by a relative path
    assert not (out/'stale.html').exists() and (out/'index.html').is_file() and (out/build_docs.MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['nbs', 'site']
    (tmp_path/'plain').mkdir()
    assert (out.stat().st_mode & 0o777) == ((tmp_path/'plain').stat().st_mode & 0o777)  # a new folder's, not mkdtemp's 0700
    home = (out/'index.html').read_text(encoding='utf-8')
    assert 'href="01_b.html"><code>01_b</code></a>' in home and 'href="limits.html"' in home
    limits = read_page(out/'limits.html')
    assert 'Limits' in ''.join(limits.h1) and 'Download the notebook' not in limits.text and not (out/'limits.ipynb').exists()
    a = read_page(out/'00_a.html')
    assert 'Download the notebook' in a.text and (out/'00_a.ipynb').is_file()
    colab = [t[1]['href'] for t in a.tags if t[0] == 'a' and 'colab' in t[1].get('href', '')]
    user_repo = cfg['git_url'].split('github.com/')[1].rstrip('/')
    assert colab == [f"https://colab.research.google.com/github/{user_repo}/blob/{cfg['branch']}/{cfg['nbs_path']}/00_a.ipynb"]
    ex = read_page(out/'exercises.html')
    links = [t[1]['href'] for t in ex.tags if t[0] == 'a' and t[1].get('href', '').startswith('00_a.html#')]
    assert links == ['00_a.html#exercises', '00_a.html#exercise-1-the-sum', '00_a.html#exercise-1-again', '00_a.html#questionnaire']
    for l in links: assert l.split('#')[1] in a.ids, l
    assert 'Write my_sum(a): the sum.' in ex.text and 'Checked by check_sum' in ex.text and '1 question;' in ex.text
    src = (out/'exercises.html').read_text(encoding='utf-8')
    assert 'Lesson B' not in Page(src[src.index('<article'):src.index('</article>')]).text  # no exercises: not listed
    nav = home[home.index('md-nav--primary'):]
    order = [h for h in re.findall(r'<a href="([^"#]+)" class="md-nav__link', nav)]
    assert order.index('01_b.html') < order.index('exercises.html') < order.index('limits.html')


def test_pages_link_their_notebooks_and_the_home_page_its_lessons(site):
    "Every notebook page with code offers its .ipynb and Colab; the home page's tables link each notebook they name"
    out, _ = site
    user_repo = cfg['git_url'].split('github.com/')[1].rstrip('/')
    for _, nb in PAGES[1:]:
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        if not any(c['cell_type'] == 'code' and ''.join(c['source']).strip() for c in cells): continue
        p = read_page(out/page_file(nb))
        hrefs = [a.get('href') for t, a in p.tags if t == 'a']
        rel = nb.relative_to(NBS).as_posix()
        assert nb.name in hrefs and (out/page_file(nb)).with_suffix('.ipynb').read_bytes() == nb.read_bytes(), nb.name
        assert f"https://colab.research.google.com/github/{user_repo}/blob/{cfg['branch']}/{cfg['nbs_path']}/{rel}" in hrefs
    home = (out/'index.html').read_text(encoding='utf-8')
    named = re.findall(r'^\|\s*\[?`([^`|]+)`(?:\]\([^)\s]*\))?\s*\|', '\n'.join(''.join(c['source']) for c in
                       json.loads((NBS/'index.ipynb').read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'markdown'), re.M)
    stems = {nb.stem: page_file(nb) for _, nb in PAGES}
    linked = [n for n in named if n in stems]
    assert linked, 'the home page names no notebook in a table'
    for n in linked: assert f'<td><a href="{stems[n]}"><code>{n}</code></a></td>' in home, n

def test_exercises_page_lists_every_lesson_exercise(site):
    "The exercises page links to every heading of a lesson that starts with 'Exercise', in course order"
    out, _ = site
    want = []
    for section, nb in PAGES:
        if section != 'Lessons': continue
        for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if c['cell_type'] != 'markdown': continue
            want += [(page_file(nb), build_docs._plain(h)) for h in
                     re.findall(r'^#{2,3}\s+(Exercise\b(?!s).*?)\s*$', ''.join(c['source']), re.M | re.I)]
    assert want
    src = (out/'exercises.html').read_text(encoding='utf-8')
    got = [(href.split('#')[0], Page(text).text.strip()) for href, text in
           re.findall(r'<a href="([^"#]+\.html#[^"]+)">(.*?)</a>', src[src.index('<article'):], re.S)
           if not href.endswith(('#exercises', '#questionnaire')) and Page(text).text.strip().lower().startswith('exercise')]
    assert got == want


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


# ---------------------------------------------------------------- a reader's check, in a browser

CHROMIUM = next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(c)), None)
SHOTS = Path(os.environ.get('DOCS_SCREENSHOTS') or root/'_docs_shots')  # git-ignored
WIDTHS = {'desktop': (1280, 900, 1, False), 'phone': (390, 844, 2, True)}
_re_dir = re.compile(r'^\s*#\s*\|\s*(.+?)\s*$', re.M)

def saved_pictures(nb_path) -> int:
    """The pictures a notebook's page must show: image outputs (PNG, JPEG, SVG) of the code cells it displays (not
    `#| hide`, `#| include: false`, `#| exporti`, `#| default_exp`; none of a cell with `#| output: false`)"""
    n = 0
    for c in json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']:
        if c['cell_type'] != 'code': continue
        d = {re.sub(r'\s+', ' ', x.lower()) for x in _re_dir.findall(''.join(c['source']))}
        if d & {'hide', 'include: false', 'output: false', 'exporti', 'default_exp'} or any(x.startswith('default_exp') for x in d): continue
        n += sum(any(m in o.get('data', {}) for m in ('image/png', 'image/jpeg', 'image/svg+xml')) for o in c.get('outputs', []))
    return n

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
    "A minimal Chrome DevTools Protocol client over one page's websocket (tornado's websocket client); keeps events"
    def __init__(self, ws): self.ws, self.n, self.events = ws, 0, []
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
                if 'method' in msg: self.events.append(msg)
                elif msg.get('id') == self.n:
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
            await asyncio.sleep(0.05)
        raise TimeoutError(f'{url} did not finish loading')
    async def width(self, kind):
        w, h, scale, mobile = WIDTHS[kind]
        await self('Emulation.setDeviceMetricsOverride', width=w, height=h, deviceScaleFactor=scale, mobile=mobile)
    async def shot(self, fn, tries=3):
        await asyncio.sleep(0.4)  # let the header's title transition finish
        for i in range(tries):  # headless Chromium can leave its compositor idle, and a capture then never returns
            try: res = await self('Page.captureScreenshot', timeout=15, format='png'); break
            except TimeoutError:
                if i == tries - 1: raise TimeoutError(f'Chromium did not capture {Path(fn).name} in {tries} tries')
                await self('Page.startScreencast', format='jpeg', quality=10)  # a screencast wakes the compositor
                await asyncio.sleep(0.25); await self('Page.stopScreencast')
        Path(fn).write_bytes(base64.b64decode(res['data'])); return Path(fn)
    def errors(self):
        "The errors logged since the last call: exceptions, console.error, failed loads"
        res = []
        for e in self.events:
            m, p = e['method'], e.get('params', {})
            if m == 'Runtime.exceptionThrown': res.append(p['exceptionDetails'].get('exception', {}).get('description') or p['exceptionDetails'].get('text'))
            elif m == 'Runtime.consoleAPICalled' and p.get('type') == 'error': res.append(' '.join(str(a.get('value', a.get('description'))) for a in p.get('args', [])))
            elif m == 'Log.entryAdded' and p['entry'].get('level') == 'error': res.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        self.events.clear()
        return res

# Visibility as a reader would see it: laid out, not hidden, not transparent, and inside the viewport.
VISIBLE_JS = '''(el) => { if (!el) return false; const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && +s.opacity > 0 && el.checkVisibility({opacityProperty: true})
         && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; }'''

# What a reader meets on a page: its title, its pictures (loaded? their alt), raw HTML or Markdown left as text in
# the prose (code, outputs and maths taken out), and whether the page is wider than the window.
PAGE_JS = f'''((W) => {{ const visible = {VISIBLE_JS};  // W: the window's width as set, which a phone's zoom-out can hide
  const art = document.querySelector('article');
  const h1 = art.querySelector('h1');
  const imgs = [...art.querySelectorAll('img')];
  const prose = art.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, math, .nb-math, .nb-html, kbd, .headerlink').forEach(e => e.remove());
  const text = prose.textContent;
  const raw = [];
  for (const re of [/<\\/?(div|progress|table|details|summary|img|span|p|br|tr|td)\\b[^\\n]{{0,40}}/gi,
                    /`[^`\\s][^`\\n]{{0,60}}`/g, /\\*\\*\\w[^*\\n]{{0,40}}\\*\\*/g, /\\]\\([^)\\s]{{1,60}}\\)/g,
                    /\\$\\\\[a-z]+/g, /^\\s*#{{1,6}}\\s\\S.{{0,40}}/gm, /\\{{:?\\s*[.#][\\w-]+[^}}]{{0,30}}\\}}/g])
    for (const m of text.matchAll(re)) raw.push(m[0]);
  for (const pre of art.querySelectorAll('pre'))  // HTML source shown as code (fastprogress's markdown copy)
    if (/^\\s*<(div|table|progress|style)\\b/i.test(pre.textContent)) raw.push(pre.textContent.trim().slice(0, 40));
  // Cut off at the right: Material hides the page's sideways overflow, so a too-wide element is clipped instead of
  // scrolling; it is fine only inside a box of its own that scrolls (code, wide figures, tables) and fits the window.
  const cut = [];
  for (const el of document.querySelectorAll('article *, .md-header *')) {{
    const r = el.getBoundingClientRect();
    if (!r.width || r.right <= W + 1 || !el.checkVisibility({{opacityProperty: true, visibilityProperty: true}})) continue;
    let p = el.parentElement, boxed = false;
    for (; p && p !== document.body; p = p.parentElement)
      if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX) && p.getBoundingClientRect().right <= W + 1) {{ boxed = true; break; }}
    if (!boxed) cut.push(`${{el.tagName.toLowerCase()}}.${{el.className}} right=${{Math.round(r.right)}}`);
  }}
  // Text outputs against code: their look (background, border, label) and whether they got a copy button
  const look = (el) => {{ if (!el) return null; const pre = el.querySelector('pre') || el, s = getComputedStyle(pre), b = getComputedStyle(el);
    return {{bg: getComputedStyle(pre.querySelector('code') || pre).backgroundColor, border: b.borderLeftStyle + ' ' + b.borderLeftWidth,
            label: getComputedStyle(el, '::before').content}}; }};
  const outputs = {{n: art.querySelectorAll('.nb-text').length, copy: art.querySelectorAll('.nb-output button, .nb-output .md-clipboard').length,
                   output: look(art.querySelector('.nb-text')), code: look(art.querySelector('.language-python.highlight'))}};
  return {{title: document.title, h1: h1 && h1.textContent.replace('¶', '').trim(), h1_visible: visible(h1), cut: cut.slice(0, 5), outputs,
          n_plots: art.querySelectorAll('img.nb-image').length,
          images: imgs.map(i => ({{src: i.getAttribute('src'), natural: i.naturalWidth, alt: i.alt}})),
          raw: raw.slice(0, 10), width: W, inner_width: innerWidth, scroll_width: document.documentElement.scrollWidth,
          nav_links: document.querySelectorAll('nav.md-nav--primary a.md-nav__link').length,
          height: document.documentElement.scrollHeight}}; }})'''

WIDE_JS = f'''(async () => {{ const visible = {VISIBLE_JS};
  const plot = document.querySelector('article .nb-wide img') || [...document.querySelectorAll('article img.nb-image')].find(i => i.naturalWidth >= 200);
  if (!plot) return null;
  plot.scrollIntoView({{block: 'center'}});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const r = plot.getBoundingClientRect(), box = plot.closest('.nb-output').getBoundingClientRect();
  return {{src: plot.getAttribute('src'), loaded: plot.complete && plot.naturalWidth > 0, visible: visible(plot),
          shown: [Math.round(r.width), Math.round(r.height)], natural: [plot.naturalWidth, plot.naturalHeight],
          box: Math.round(box.width), zoom: plot.closest('a.nb-zoom')?.getAttribute('href')}}; }})()'''

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


@pytest.fixture(scope='module')
def reader(site, tmp_path_factory):
    """Headless Chromium reads every page of the site (served on 127.0.0.1) at a phone's width, and the home page, a
    lesson and the exercises page at a desktop's too: `{'pages': {(page, width): what PAGE_JS saw, plus the errors
    logged}, ...}`; screenshots of those three pages at both widths"""
    if not CHROMIUM:
        if os.environ.get('CI') == 'true': pytest.fail('Chromium is not installed in CI (.ci/run installs it)')
        pytest.skip('Chromium is not installed (apt-get install -y chromium): the browser test needs it')
    out, _ = site
    pages = [fn.relative_to(out).as_posix() for fn in html_pages(out) if fn.name != '404.html']  # 404 is served at the root
    def wide(nb): return 'nb-wide' in (out/page_file(nb)).read_text(encoding='utf-8')
    lesson = next((nb for s, nb in PAGES if s == 'Lessons' and wide(nb)), next(nb for s, nb in PAGES if s == 'Lessons'))
    maths_page = next((nb for _, nb in PAGES if '<math' in (out/page_file(nb)).read_text(encoding='utf-8')), None)
    ex_page = 'exercises.html'
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp('chromium')
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tmp/'profile'
    chrome = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                               '--no-first-run', '--disable-extensions', '--disable-background-networking',
                               '--hide-scrollbars', '--remote-debugging-port=0', f'--user-data-dir={profile}',
                               '--window-size=1280,900', 'about:blank'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.perf_counter()
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
            for d in ('Page', 'Runtime', 'Log'): await cdp(f'{d}.enable')
            res = dict(pages={}, shots=[], lesson=page_file(lesson))
            shown = ['index.html', page_file(lesson), ex_page]
            for kind in WIDTHS:  # every page on a phone; on a desktop the pages of the screenshots, maths and search
                await cdp.width(kind)
                extra = [page_file(maths_page)] if maths_page else []
                for page in (pages if kind == 'phone' else list(dict.fromkeys(shown + extra))):
                    await cdp.goto(base + page)
                    r = await cdp.js(f'{PAGE_JS}({WIDTHS[kind][0]})')
                    r['errors'] = cdp.errors()
                    res['pages'][(page, kind)] = r
                    if page in shown:
                        res['shots'].append(await cdp.shot(SHOTS/f'{Path(page).stem}_{kind}.png'))
                    if page == page_file(lesson):
                        res[f'wide_{kind}'] = await cdp.js(WIDE_JS)
                        res['shots'].append(await cdp.shot(SHOTS/f'{Path(page).stem}_figure_{kind}.png'))
                    if maths_page and page == page_file(maths_page) and kind == 'desktop':  # MathML, laid out by the browser
                        res['maths'] = await cdp.js(MATHS_JS)
                    if page == 'index.html' and kind == 'desktop':
                        res['search'] = await cdp.js(SEARCH_JS + '("gradient")')
                        cdp.errors()
            cdp.ws.close()
            return res
        res = asyncio.run(asyncio.wait_for(session(), 300))
    finally:
        server.kill(); server.wait()
        try: os.killpg(chrome.pid, 9)
        except ProcessLookupError: pass
        chrome.wait()
    res['seconds'] = time.perf_counter() - t0
    per_page = {p: r['n_plots'] for (p, k), r in res['pages'].items() if k == 'phone'}
    print(f"\nChromium read {len(pages)} pages at 390 px and {len(res['pages']) - len(pages)} at 1280 px in "
          f"{res['seconds']:.1f} s; pictures checked ({sum(per_page.values())}): "
          + ', '.join(f'{p} {n}' for p, n in per_page.items() if n)
          + f"\nscreenshots in {SHOTS}: {', '.join(p.name for p in res['shots'])}")
    return res


def test_reader_sees_every_picture(reader):
    "Each notebook's page shows as many pictures as the notebook saved, each loaded, each with a specific alt text"
    want = {page_file(nb): saved_pictures(nb) for _, nb in PAGES}
    assert sum(want.values()) > 0
    checked = 0
    for (page, kind), r in reader['pages'].items():
        assert r['n_plots'] == want.get(page, 0), f'{page} ({kind}): {r["n_plots"]} pictures, the notebook saved {want.get(page, 0)}'
        for img in r['images']:
            assert img['natural'] > 0, f'{page} ({kind}): {img["src"]} did not load'
            alt = img['alt'].strip()
            assert alt.lower() not in build_docs.GENERIC_ALTS and len(alt) >= 10, f'{page}: {img["src"]} has the alt {alt!r}'
            checked += 1
    assert checked >= sum(want.values())

def test_reader_sees_no_raw_html_or_markdown(reader):
    for (page, kind), r in reader['pages'].items():
        assert not r['raw'], f'{page} ({kind}) shows raw HTML or Markdown as text: {r["raw"]}'

def test_no_page_scrolls_sideways_on_a_phone(reader):
    "The page is no wider than the window, and nothing is cut off at its right edge outside a box that scrolls"
    for (page, kind), r in reader['pages'].items():
        assert r['scroll_width'] <= r['width'] + 1 and r['inner_width'] <= r['width'] + 1, \
            f'{page} is {r["scroll_width"]} px wide at {r["width"]} px (the phone zoomed out to {r["inner_width"]} px)'
        assert not r['cut'], f'{page} at {r["width"]} px: cut off at the right edge: {r["cut"]}'

def test_no_errors_in_the_console(reader):
    for (page, kind), r in reader['pages'].items():
        assert not r['errors'], f'{page} ({kind}) logged errors: {r["errors"][:3]}'

def test_outputs_look_unlike_code(reader):
    "A text output has no copy button, another background than code, a rule on its left and an 'output' label"
    seen = 0
    for (page, kind), r in reader['pages'].items():
        o = r['outputs']
        assert o['copy'] == 0, f'{page}: {o["copy"]} outputs have a copy button'
        if o['n'] and o['code']:
            assert o['output']['bg'] != o['code']['bg'] and o['output']['border'] != o['code']['border'], (page, o)
            assert o['output']['label'] == '"output"', (page, o)
            seen += 1
    assert seen >= 5

def test_titles_search_maths_and_wide_figures(reader):
    "Every page shows its title; search answers offline; maths is laid out; a wide figure stays legible on a phone"
    titles = {page_file(nb): build_docs.plain_title(build_docs.nb_title(nb)) for _, nb in PAGES}
    for (page, kind), r in reader['pages'].items():
        assert r['h1'] and r['h1_visible'], f'{page} ({kind}): no visible title'
        if page in titles:
            assert r['h1'] == titles[page] and r['title'].startswith(titles[page]), (page, r['h1'], r['title'])
        assert r['nav_links'] >= len(PAGES), (page, r['nav_links'])
    assert reader['search'], 'offline search found nothing for "gradient"'
    if 'maths' in reader: assert reader['maths']['visible'] and min(reader['maths']['shown']) > 5, reader['maths']
    desk, phone = reader['wide_desktop'], reader['wide_phone']
    assert desk and desk['loaded'] and desk['visible'] and desk['shown'][0] >= 200, desk
    assert phone['loaded'] and phone['visible'] and phone['box'] <= 390, phone
    if phone['zoom']:  # a wide figure: on a phone it keeps a readable width inside its box and opens at full size
        assert phone['shown'][0] >= min(build_docs.WIDE_IMAGE, phone['natural'][0]) - 1, phone
        assert phone['zoom'] == phone['src']

def test_screenshots_saved(reader):
    assert len(reader['shots']) == 8
    for fn in reader['shots']: assert fn.stat().st_size > 10_000 and fn.parent == SHOTS, fn
