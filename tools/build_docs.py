"""Build the docs site (the notebooks as a website, plus an API reference) into `_docs/`, offline, in one command:

    python tools/build_docs.py [--out DIR]

Every notebook in `nbs/` (except files and folders starting with `_` or `.`) becomes a page, from its saved outputs:
nothing is re-executed. Each notebook goes through nbdev's own processors (directive lines removed, `#| hide` cells
left out, magics cleaned, ANSI stripped, `show_doc` added after exported cells), then a few of ours (stderr outputs
dropped, Quarto options such as `#| echo: false` applied, `show_doc` rendered from the library), and is written as
Markdown, with its images as files, for MkDocs and the Material theme. Maths (`$...$`, `$$...$$`) is rendered to
MathML at build time, so the site needs no JavaScript renderer and no network. The API reference has one page per
module of the library, generated from the code with nbdev's `show_doc`.

Navigation: `index.ipynb` is the home page; then the lessons (`NN_*.ipynb`, NN < 90) in number order; then the
appendices and solutions (`9N_*.ipynb`); then any other notebook by name; then the API reference. Each page is
titled by its notebook's first markdown `# Title`.
"""
import argparse, html, importlib, inspect, json, logging, re, shutil, sys, tempfile, time
from configparser import ConfigParser
from pathlib import Path

root = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent/'docs'

# ---------------------------------------------------------------- settings and notebooks

def settings(path=root/'settings.ini'):
    "The `[DEFAULT]` section of nbdev's settings.ini"
    cfg = ConfigParser(delimiters=['='])
    cfg.read(path, encoding='utf-8')
    return cfg['DEFAULT']

def nb_title(path, default=True) -> str:
    "The notebook's title: the text of its first markdown cell's `# Title` line (else its file name, or None)"
    for cell in json.loads(Path(path).read_text(encoding='utf-8'))['cells']:
        if cell['cell_type'] != 'markdown': continue
        for line in ''.join(cell['source']).splitlines():
            m = re.match(r'#\s+(.+?)\s*#*\s*$', line)
            if m: return m.group(1)
    return Path(path).stem if default else None

def plain_title(title) -> str:
    "`title` without Markdown marks (backticks, emphasis), for the navigation and the browser tab"
    return re.sub(r'[`*]|(?<!\w)_|_(?!\w)', '', title).strip()

SECTIONS = ('Lessons', 'Appendices and solutions', 'More')

def page_order(nbs_path):
    """`(section, notebook path)` for every page, in site order: `index.ipynb` (section None), the lessons
    (`NN_*`, NN < 90) by number, the appendices and solutions (`9N_*`), then unnumbered notebooks by name."""
    nbs_path = Path(nbs_path)
    nbs = [p for p in nbs_path.rglob('*.ipynb')
           if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs_path).parts)]
    def key(p):
        rel = p.relative_to(nbs_path)
        if rel == Path('index.ipynb'): return (0, 0, '')
        m = re.match(r'(\d+)', p.name)
        if not m: return (3, 0, str(rel))
        n = int(m.group(1)[:2]) if len(m.group(1)) <= 2 else int(m.group(1))
        return (1 if n < 90 else 2, n, str(rel))
    res = []
    for p in sorted(nbs, key=key):
        k = key(p)
        res.append((None if k[0] == 0 else SECTIONS[k[0] - 1], p))
    return res

# ---------------------------------------------------------------- notebook processing (nbdev's processors + ours)

_re_quarto = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_directive = re.compile(r'^\s*#\s*\|')

def rm_hidden(cell):
    "Leave out what nbdev leaves out of its docs besides `#| hide`: `#| exporti`, `#| default_exp`, `#| include: false`"
    d = cell.directives_
    if cell.cell_type == 'code' and (d.keys() & {'exporti', 'default_exp'} or d.get('include:') == ['false']):
        del cell['source']

def quarto_options(cell):
    "Apply the Quarto cell options nbdev passes on (`echo: false`, `output: false`), then drop every directive line"
    if cell.cell_type != 'code': return
    lines = cell.source.splitlines()
    opts = {m.group(1): m.group(2).lower() for m in map(_re_quarto.match, lines) if m}
    if opts.get('output') == 'false': cell['outputs'] = []
    cell.echo_ = opts.get('echo') != 'false'
    cell.source = '\n'.join(l for l in lines if not _re_directive.match(l)).strip('\n')
    if not cell.source.strip() and not cell.get('outputs'): del cell['source']

def drop_stderr(cell):
    "Drop stderr streams (warnings, progress noise): a reader sees what the code prints, not what the library logs"
    if 'outputs' in cell:
        cell['outputs'] = [o for o in cell.outputs if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]

class render_show_docs:
    "Render `show_doc(...)` cells without running the notebook: evaluate the call against the library's modules"
    def __init__(self, nb):
        self.nb = nb  # created before any processor runs, so the `default_exp` directive is still there
        self.mod = next((c.directives_['default_exp'][0] for c in nb.cells
                         if c.cell_type == 'code' and c.directives_.get('default_exp')), None)
    def begin(self):
        lib = settings()['lib_path']
        self.ns = {}
        for m in [lib] + ([f'{lib}.{self.mod}'] if self.mod else []):
            try: self.ns.update(vars(importlib.import_module(m)))
            except ImportError: pass
        from nbdev.showdoc import show_doc
        self.ns['show_doc'] = show_doc
    def __call__(self, cell):
        if cell.cell_type != 'code' or not re.match(r'show_doc\(', cell.source or ''): return
        cell.echo_ = False
        if any('text/markdown' in o.get('data', {}) for o in cell.get('outputs', [])): return  # as saved
        try: md = show_doc_md(eval(cell.source, dict(self.ns)))
        except Exception as e:
            print(f'  skipped {cell.source.strip()!r}: {e!r}', file=sys.stderr)
            del cell['source']; return
        cell['outputs'] = [dict(output_type='display_data', data={'text/markdown': md}, metadata={})]

def show_doc_md(sd) -> str:
    "nbdev's markdown for a `show_doc` result, with the source link's line number filled in"
    md = sd._repr_markdown_()
    try: line = inspect.getsourcelines(inspect.unwrap(sd.obj))[1]
    except Exception: line = None
    return md.replace('#LNone', f'#L{line}' if line else '')

class title_first:
    "Put the title cell (the first markdown cell with a `# Title`) first, as nbdev's docs do with the title"
    def __init__(self, nb): self.nb = nb
    def begin(self):
        cells = self.nb.cells
        i = next((i for i, c in enumerate(cells) if c.cell_type == 'markdown' and re.search(r'^#\s+\S', c.source or '', re.M)), None)
        if i: cells.insert(0, cells.pop(i))

def process_nb(path):
    "The notebook at `path` as nbdev's docs would show it (an execnb notebook)"
    from nbdev.process import NBProcessor
    from nbdev.processors import (populate_language, add_show_docs, strip_ansi, hide_line, rm_header_dash, hide_,
                                  clean_magics, strip_hidden_metadata)
    procs = [populate_language, add_show_docs, strip_ansi, hide_line, rm_header_dash, hide_, rm_hidden, clean_magics,
             quarto_options, drop_stderr, render_show_docs, strip_hidden_metadata, title_first]
    proc = NBProcessor(path, procs)
    proc.process()
    return proc.nb

# ---------------------------------------------------------------- Markdown writing

def _text(x): return ''.join(x) if isinstance(x, list) else (x or '')

def fence(body, lang=''):
    "A fenced code block around `body`, with a fence longer than any backtick run inside it"
    n = max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', body)])
    return f"{'`' * n}{lang}\n{body.rstrip()}\n{'`' * n}"

_re_code = re.compile(r'(^(`{3,}|~{3,}).*?^\2[ \t]*$|(`+)(?!`).+?(?<!`)\3(?!`))', re.MULTILINE | re.DOTALL)
_re_display = re.compile(r'\$\$(.+?)\$\$', re.DOTALL)
_re_inline = re.compile(r'(?<![\\$\w])\$(?=[^\s$])([^$\n]+?)(?<=[^\s\\])\$(?![\w$])')

def _mathml(latex, display):
    from latex2mathml.converter import convert
    try: return convert(latex.strip(), display='block' if display else 'inline')
    except Exception: return None

def render_math(md) -> str:
    "Markdown with its `$...$` and `$$...$$` maths (outside code) rendered to MathML"
    def prose(s):
        s = _re_display.sub(lambda m: (f'\n\n<div class="nb-math">{x}</div>\n\n' if (x := _mathml(m.group(1), True))
                                       else m.group(0)), s)
        return _re_inline.sub(lambda m: _mathml(m.group(1), False) or m.group(0), s)
    parts, last = [], 0
    for m in _re_code.finditer(md):
        parts += [prose(md[last:m.start()]), m.group(0)]
        last = m.end()
    return ''.join(parts + [prose(md[last:])])

def fix_links(md) -> str:
    "Links to notebooks (`x.ipynb`, `x.ipynb#part`) point at their pages"
    return re.sub(r'(\]\((?!\w+://)[^)\s#]*?)\.ipynb(?=[)#\s])', r'\1.md', md)

IMAGE_TYPES = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/svg+xml': 'svg'}
SMALL_IMAGE = 100  # pixels: smaller images (a single 28×28 digit) are shown 4 times larger, pixelated

def output_md(out, img_dir, img_name) -> str:
    "Markdown (or raw HTML) for one saved output of a code cell"
    kind = out.get('output_type')
    if kind == 'stream': return fence(_text(out.get('text')), 'text') if _text(out.get('text')).strip() else ''
    if kind == 'error': return fence(f"{out.get('ename')}: {out.get('evalue')}", 'text')
    data = out.get('data', {})
    for mime, ext in IMAGE_TYPES.items():
        if mime not in data: continue
        import base64
        fn = img_dir/f'{img_name}.{ext}'
        fn.parent.mkdir(parents=True, exist_ok=True)
        if ext == 'svg': fn.write_text(_text(data[mime]), encoding='utf-8'); size = ''
        else:
            raw = base64.b64decode(_text(data[mime]))
            fn.write_bytes(raw)
            size = _img_size(raw, ext)
        attrs, cls = '', 'nb-image'
        if size:
            w, h = size
            k = 4 if max(w, h) < SMALL_IMAGE else 1
            attrs, cls = f' width="{w * k}" height="{h * k}"', cls + (' nb-small' if k > 1 else '')
        return f'<p class="nb-output"><img class="{cls}" src="{img_dir.name}/{fn.name}" alt="output of the code above"{attrs}></p>'
    if 'text/markdown' in data: return _text(data['text/markdown'])
    if 'text/html' in data: return f'<div class="nb-output nb-html" markdown="0">\n{_text(data["text/html"]).strip()}\n</div>'
    if 'text/latex' in data:
        ml = _mathml(_text(data['text/latex']).strip().strip('$'), True)
        if ml: return f'<div class="nb-math">{ml}</div>'
    if 'text/plain' in data: return fence(_text(data['text/plain']), 'text')
    return ''

def _img_size(raw, ext):
    "(width, height) of a PNG or JPEG from its bytes, or None"
    import struct
    if ext == 'png' and raw[:8] == b'\x89PNG\r\n\x1a\n': return struct.unpack('>II', raw[16:24])
    if ext == 'jpg':
        i = 2
        while i + 9 < len(raw):
            if raw[i] != 0xFF: return None
            marker, length = raw[i + 1], struct.unpack('>H', raw[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack('>HH', raw[i + 5:i + 9]); return w, h
            i += 2 + length
    return None

def nb_markdown(nb, img_dir) -> str:
    "The Markdown page for a processed notebook; its images are written under `img_dir`"
    blocks = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'markdown': blocks.append(fix_links(render_math(cell.source)))
        elif cell.cell_type == 'code':
            if getattr(cell, 'echo_', True) and cell.source.strip(): blocks.append(fence(cell.source, 'python'))
            outs = cell.get('outputs', [])
            # consecutive stdout chunks are one block, as in Jupyter
            merged = []
            for o in outs:
                if merged and o.get('output_type') == 'stream' and merged[-1].get('output_type') == 'stream':
                    merged[-1] = dict(merged[-1], text=_text(merged[-1]['text']) + _text(o.get('text')))
                else: merged.append(dict(o))
            for j, o in enumerate(merged):
                md = output_md(o, img_dir, f'cell{i}_out{j}')
                if md.strip(): blocks.append(md)
        elif cell.cell_type == 'raw' and cell.source.strip(): blocks.append(cell.source)
    return '\n\n'.join(blocks) + '\n'

# ---------------------------------------------------------------- API reference

def lib_modules(lib_path):
    "The library's public modules (every `.py` in `lib_path` not starting with `_`), as dotted names"
    lib_path = Path(lib_path)
    return [f'{lib_path.name}.{p.stem}' for p in sorted(lib_path.glob('*.py')) if not p.name.startswith('_')]

def _source_nb(mod):
    "The notebook a module was exported from, as named in its AUTOGENERATED header"
    m = re.search(r'File to edit: \.\./nbs/(\S+\.ipynb)', Path(mod.__file__).read_text(encoding='utf-8'))
    return m.group(1) if m else None

def api_page(modname, pages) -> str:
    "Markdown for one module: its docstring, its notebook, then `show_doc` for every name in `__all__`"
    from nbdev.showdoc import show_doc
    mod = importlib.import_module(modname)
    out = [f'# `{modname}`']
    if mod.__doc__: out.append(mod.__doc__.strip())
    nb = _source_nb(mod)
    if nb and nb in pages: out.append(f'Exported from the notebook [{plain_title(pages[nb])}](../{nb[:-6]}.md).')
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            out.append(show_doc_md(show_doc(obj, name=name)))
            if inspect.isclass(obj):
                for mname, m in vars(obj).items():
                    if mname.startswith('_') and mname != '__call__': continue
                    f = m.__func__ if isinstance(m, (staticmethod, classmethod)) else m
                    if inspect.isfunction(f) and f.__doc__:
                        out.append(show_doc_md(show_doc(f, name=f'{name}.{mname}', title_level=4)))
        else:
            r = repr(obj)
            out.append(f'### {name}\n\n' + fence(f'{name} = {r if len(r) < 300 else r[:300] + " …"}', 'python'))
    return '\n\n'.join(out) + '\n'

def api_index(mods) -> str:
    "Markdown for the API reference's overview: one row per module, with its docstring's first line"
    lines = ['# API reference', '', 'The library `mnist_basics`, one page per module, generated from the code: '
             'signatures, docstrings and the comment on each parameter.', '', '| module | what it holds |', '|---|---|']
    for modname in mods:
        doc = (importlib.import_module(modname).__doc__ or '').strip().split('\n')[0]
        lines.append(f'| [`{modname}`]({modname.split(".")[-1]}.md) | {doc} |')
    return '\n'.join(lines) + '\n'

# ---------------------------------------------------------------- the site

def build(out=None, quiet=False):
    "Build the site into `out` (default: nbdev's `doc_path`, `_docs/`); return the seconds it took"
    t0 = time.perf_counter()
    cfg = settings()
    out = Path(out) if out else root/cfg.get('doc_path', '_docs')
    nbs_path, lib_path = root/cfg.get('nbs_path', 'nbs'), root/cfg.get('lib_path', 'mnist_basics')
    if str(root) not in sys.path: sys.path.insert(0, str(root))
    with tempfile.TemporaryDirectory(prefix='mnist_basics_docs_') as tmp:
        docs = Path(tmp)/'docs'
        (docs/'assets').mkdir(parents=True)
        shutil.copy(ASSETS/'extra.css', docs/'assets'/'extra.css')
        nav, sections, titles = [], {}, {}
        for section, nb_path in page_order(nbs_path):
            rel = nb_path.relative_to(nbs_path)
            md_rel = 'index.md' if rel == Path('index.ipynb') else str(rel.with_suffix('.md'))
            title = nb_title(nb_path)
            titles[str(rel)] = title
            md_file = docs/md_rel
            md_file.parent.mkdir(parents=True, exist_ok=True)
            if not quiet: print(f'  {rel}: {plain_title(title)}')
            page = nb_markdown(process_nb(nb_path), md_file.parent/f'{Path(md_rel).stem}_files')
            if nb_title(nb_path, default=False) is None: page = f'# {title}\n\n{page}'  # a notebook without one
            md_file.write_text(f'---\ntitle: {json.dumps(plain_title(title))}\n---\n\n{page}', encoding='utf-8')
            entry = {plain_title(title) if md_rel != 'index.md' else 'Home': md_rel}
            if section is None: nav.append(entry)
            else: sections.setdefault(section, []).append(entry)
        nav += [{s: sections[s]} for s in SECTIONS if s in sections]
        mods = lib_modules(lib_path)
        (docs/'api').mkdir()
        (docs/'api'/'index.md').write_text(api_index(mods), encoding='utf-8')
        api_nav = [{'Overview': 'api/index.md'}]
        for modname in mods:
            short = modname.split('.')[-1]
            (docs/'api'/f'{short}.md').write_text(api_page(modname, titles), encoding='utf-8')
            api_nav.append({modname: f'api/{short}.md'})
        nav.append({'API reference': api_nav})
        mkdocs_build(cfg, docs, out, nav)
    secs = time.perf_counter() - t0
    if not quiet: print(f'Built {out} in {secs:.1f} s')
    return secs

def mkdocs_config(cfg, docs, out, nav) -> dict:
    "The MkDocs configuration: Material theme, system fonts, offline search, code highlighted at build time"
    return dict(
        site_name=cfg.get('lib_name', 'docs'), site_description=cfg.get('description', ''),
        site_url=cfg.get('doc_host', '') + cfg.get('doc_baseurl', '') + '/',
        docs_dir=str(docs), site_dir=str(out), use_directory_urls=False, nav=nav,
        theme=dict(name='material', font=False, language='en',
                   features=['navigation.sections', 'navigation.top', 'navigation.footer', 'toc.follow',
                             'content.code.copy', 'search.highlight'],
                   palette=[dict(scheme='default', primary='indigo', accent='indigo')]),
        plugins=['search'],  # served over http it needs no network; Material's offline plugin would load a shim from a CDN
        markdown_extensions=['tables', 'attr_list', 'md_in_html', 'admonition', 'def_list',
                             {'toc': {'permalink': True}},
                             {'pymdownx.highlight': {'use_pygments': True, 'pygments_lang_class': True}},
                             'pymdownx.superfences', 'pymdownx.inlinehilite'],
        extra_css=['assets/extra.css'],
        extra=dict(generator=False, social=[dict(icon='fontawesome/brands/github', link=cfg.get('git_url', ''))]),
        validation=dict(omitted_files='ignore', absolute_links='warn', unrecognized_links='warn'),
    )

def mkdocs_build(cfg, docs, out, nav):
    import yaml
    from mkdocs.commands.build import build as mk_build
    from mkdocs.config import load_config
    conf_file = docs.parent/'mkdocs.yml'
    conf_file.write_text(yaml.safe_dump(mkdocs_config(cfg, docs, out, nav), sort_keys=False, allow_unicode=True))
    logging.getLogger('mkdocs').setLevel(logging.WARNING)
    if not logging.getLogger().handlers: logging.basicConfig(format='mkdocs %(levelname)s: %(message)s')
    if out.exists(): shutil.rmtree(out)
    mk_build(load_config(str(conf_file)))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', help="output folder (default: settings.ini's doc_path, _docs/)")
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    build(args.out, args.quiet)

if __name__ == '__main__': main()
