"""Build the docs site (the notebooks as a website, plus an API reference) into `_docs/`, offline, in one command:

    python tools/build_docs.py [--out DIR]

Every notebook in `nbs/` (except files and folders starting with `_` or `.`) becomes a page, from its saved outputs:
nothing is re-executed. Each notebook goes through nbdev's own processors (directive lines removed, `#| hide` cells
left out, magics cleaned, ANSI stripped, `show_doc` added after exported cells), then a few of ours (stderr outputs
dropped, Quarto options such as `#| echo: false` applied, `show_doc` rendered from the library), and is written as
Markdown, with its images as files, for MkDocs and the Material theme. Maths (`$...$`, `$$...$$`) is rendered to
MathML at build time, so the site needs no JavaScript renderer and no network. The API reference has one page per
module of the library, generated from the code with nbdev's `show_doc`.

Navigation: `index.ipynb` is the home page; then the lessons (`NN_*.ipynb`, NN < 90) in number order, followed by
"Exercises", a page generated from the lessons' own exercise headings; then the appendices and solutions
(`9N_*.ipynb`); then any other notebook by name; then the API reference. Each page is titled by its notebook's first
markdown `# Title`; each notebook page with code links to its `.ipynb` (copied into the site) and to Colab.

`--out DIR` is replaced only if it is absent, empty, or a site this tool built (it holds the marker file
`.mnist_basics_docs`); anything else, and the repository or a folder above it, is refused with one line and exit
status 2. The site is built in a fresh folder beside DIR and moved into place only when complete.
"""
import argparse, base64, html, importlib, importlib.util, inspect, json, logging, os, re, shutil, struct, sys, tempfile, time
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

def fig_options(cell):
    "Keep the Quarto figure options `#| fig-alt:` and `#| fig-cap:` from the raw source, before directives are dropped"
    if cell.cell_type != 'code': return
    opts = {m.group(1): m.group(2) for m in map(_re_quarto.match, (cell.source or '').splitlines()) if m}
    cell.fig_alt_, cell.fig_cap_ = opts.get('fig-alt', '').strip('\'"'), opts.get('fig-cap', '').strip('\'"')

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
    """Render `show_doc(...)` cells without running the notebook: evaluate the call against the library's modules.
    On a notebook page a `show_doc` heading is an h4, so the page's contents list its own sections, not every name."""
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
        md = re.sub(r'^#{2,3} ', '#### ', md, count=1, flags=re.M)
        cell['outputs'] = [dict(output_type='display_data', data={'text/markdown': md}, metadata={})]

def source_url(obj, cfg=None):
    "The web address of `obj`'s source, at its first line: settings.ini's `git_url`, `branch`, the file's path in the repo"
    cfg = cfg or settings()
    obj = inspect.unwrap(obj)
    fn = Path(inspect.getsourcefile(obj)).resolve()
    line = inspect.getsourcelines(obj)[1]
    return f"{cfg['git_url'].rstrip('/')}/blob/{cfg.get('branch', 'main')}/{fn.relative_to(root).as_posix()}#L{line}"

def show_doc_md(sd) -> str:
    """nbdev's markdown for a `show_doc` result, its "source" link pointing at the line. (nbdev 2.4.14 finds the line
    through the installed package, which need not be this checkout, and writes `#LNone` when it cannot.)"""
    md = sd._repr_markdown_()
    try: url = source_url(sd.sym)
    except Exception: return md.replace('#LNone', '')
    return re.sub(r'\[source\]\([^)\s]+\)', f'[source]({url})', md, count=1)

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
    procs = [fig_options, populate_language, add_show_docs, strip_ansi, hide_line, rm_header_dash, hide_, rm_hidden, clean_magics,
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

def outside_code(md, f) -> str:
    "`md` with `f` applied to the parts outside code spans and fenced blocks"
    parts, last = [], 0
    for m in _re_code.finditer(md):
        parts += [f(md[last:m.start()]), m.group(0)]
        last = m.end()
    return ''.join(parts + [f(md[last:])])

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
    return outside_code(md, prose)

def fix_links(md) -> str:
    "Links to notebooks (`x.ipynb`, `x.ipynb#part`) point at their pages"
    return re.sub(r'(\]\((?!\w+://)[^)\s#]*?)\.ipynb(?=[)#\s])', r'\1.md', md)

def md_in_details(md) -> str:
    "Fold-outs (`<details>`) get `markdown=\"1\"`, so the Markdown inside them (code, emphasis, lists) is rendered"
    return outside_code(md, lambda s: re.sub(r'<details\b(?![^>]*\bmarkdown=)([^>]*)>', r'<details\1 markdown="1">', s))

def link_table_names(md, links) -> str:
    "A backticked notebook name alone in a table's first column (`| `03_linear` | ...`) becomes a link to its page"
    if not links: return md
    def row(m):
        name = m.group(2)
        return f'{m.group(1)}[`{name}`]({links[name]}){m.group(3)}' if name in links else m.group(0)
    return re.sub(r'^(\|\s*)`([^`|\n]+)`(\s*\|)', row, md, flags=re.M)

IMAGE_TYPES = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/svg+xml': 'svg'}
SMALL_IMAGE = 100  # pixels: smaller images (a single 28×28 digit) are shown 4 times larger, pixelated
WIDE_IMAGE = 600   # pixels: a figure at least this wide and 1.6 times wider than high (panels side by side) keeps
                   # this width on a phone, scrolling inside its own box, and opens at full size when tapped
GENERIC_ALTS = {'', 'output of the code above', 'image', 'png', 'figure', 'plot', 'output'}

def _plain(md) -> str:
    "Markdown as one line of plain text: no code blocks, HTML, link targets, emphasis, backticks or dollar signs"
    s = re.sub(r'^(`{3,}|~{3,}).*?^\1[ \t]*$', ' ', md, flags=re.M | re.S)
    s = re.sub(r'<details.*?</details>', ' ', s, flags=re.S)
    s = re.sub(r'<[^>]+>', '', s)
    s = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', s)
    s = re.sub(r'^\s*(?:>|[-*+]|\d+\.)\s+', '', s, flags=re.M)
    s = re.sub(r'[`*$\\]|(?<!\w)_|_(?!\w)', '', s)
    return re.sub(r'\s+', ' ', s).strip()

def _trim(s, n=120) -> str:
    "`s` cut at a word boundary to at most about `n` characters"
    if len(s) <= n: return s
    return s[:n].rsplit(' ', 1)[0].rstrip(',;:–—- ') + '…'

def context_alt(md) -> str:
    """What a figure after the markdown cell `md` is about, for its alt text: the cell's heading (if any) and its first
    sentence (two when the first is short), as plain text of about 120 characters"""
    heading, prose = '', []
    for line in md.splitlines():
        m = re.match(r'\s*#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            if not ''.join(prose).strip(): heading = _plain(m.group(1))  # the last heading before the prose
        else: prose.append(line)
    text = _plain('\n'.join(prose))
    sentences = re.findall(r'.+?(?:[.!?](?=\s|$)|$)', text)
    first = (sentences[0] if sentences else '').strip()
    if len(first) < 40 and len(sentences) > 1: first = f'{first} {sentences[1].strip()}'
    first = first.rstrip(':').strip()
    alt = f'{heading}: {first}' if heading and first else heading or first
    return _trim(alt)

def _img_size(raw, ext):
    "(width, height) of a PNG or JPEG from its bytes, or None"
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

def image_md(data, img_dir, img_name, alt='', caption='') -> str:
    "Raw HTML for the picture in an output's `data` (written to a file under `img_dir`), or None if it holds none"
    for mime, ext in IMAGE_TYPES.items():
        if mime not in data: continue
        fn = img_dir/f'{img_name}.{ext}'
        fn.parent.mkdir(parents=True, exist_ok=True)
        if ext == 'svg': fn.write_text(_text(data[mime]), encoding='utf-8'); size = None
        else:
            raw = base64.b64decode(_text(data[mime]))
            fn.write_bytes(raw)
            size = _img_size(raw, ext)
        src, attrs, cls, wide = f'{img_dir.name}/{fn.name}', '', 'nb-image', False
        if size:
            w, h = size
            k = 4 if max(w, h) < SMALL_IMAGE else 1
            attrs, cls = f' width="{w * k}" height="{h * k}"', cls + (' nb-small' if k > 1 else '')
            wide = w >= WIDE_IMAGE and w >= 1.6 * h
        img = f'<img class="{cls}" src="{src}" alt="{html.escape(alt, quote=True)}"{attrs}>'
        if wide: img = f'<a class="nb-zoom" href="{src}" title="Open the picture at full size">{img}</a>'
        cap = f'<p class="nb-caption">{html.escape(caption)}</p>' if caption else ''
        return f'<div class="nb-output nb-figure{" nb-wide" if wide else ""}" markdown="0">{img}{cap}</div>'
    return None

def text_output(body) -> str:
    "A text output: a fenced block in a box marked as output (labelled by the stylesheet, no copy button)"
    return f'<div class="nb-output nb-text no-copy" markdown="1">\n\n{fence(body, "text")}\n\n</div>'

def html_output(h) -> str:
    """An HTML output as raw HTML, without fastprogress's progress bars and the global `<style>` it adds for them;
    empty if nothing visible is left"""
    h = re.sub(r'<style[^>]*>(?:(?!</style>).)*\bprogress\b(?:(?!</style>).)*</style>', '', h, flags=re.S)
    h = re.sub(r'<div>\s*<progress\b[^>]*>.*?</div>', '', h, flags=re.S)
    h = re.sub(r'<progress\b[^>]*>.*?</progress>', '', h, flags=re.S)
    visible = html.unescape(re.sub(r'<style.*?</style>|<[^>]+>', '', h, flags=re.S)).strip()
    if not visible and not re.search(r'<(img|svg|canvas|table)\b', h): return ''
    return f'<div class="nb-output nb-html" markdown="0">\n{h.strip()}\n</div>'

_re_html_fence = re.compile(r'^\s*(`{3,})html\s*\n.*\n\1\s*$', re.S)

def output_md(out, img_dir, img_name, alt='', caption='') -> str:
    "Markdown (or raw HTML) for one saved output of a code cell"
    kind = out.get('output_type')
    if kind == 'stream': return text_output(_text(out.get('text'))) if _text(out.get('text')).strip() else ''
    if kind == 'error': return text_output(f"{out.get('ename')}: {out.get('evalue')}")
    data = out.get('data', {})
    img = image_md(data, img_dir, img_name, alt, caption)
    if img: return img
    md = _text(data.get('text/markdown'))
    if 'text/html' in data and (not md or _re_html_fence.match(md)):  # fastprogress's markdown is HTML in a fence
        return html_output(_text(data['text/html']))
    if md: return md
    if 'text/latex' in data:
        ml = _mathml(_text(data['text/latex']).strip().strip('$'), True)
        if ml: return f'<div class="nb-math">{ml}</div>'
    if 'text/plain' in data: return text_output(_text(data['text/plain']))
    return ''

def n_pictures(cell) -> int:
    "How many of a code cell's outputs are pictures"
    return sum(any(m in o.get('data', {}) for m in IMAGE_TYPES) for o in cell.get('outputs', []))

def nb_markdown(nb, img_dir, links=None, after_title='', title='') -> str:
    """The Markdown page for a processed notebook; its images are written under `img_dir`. `links` maps notebook names
    to their pages (for tables naming them); `after_title` goes after the title cell."""
    blocks, context = [], title
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'markdown':
            src = cell.source
            blocks.append(link_table_names(md_in_details(fix_links(render_math(src))), links))
            if i == 0 and after_title and re.match(r'#\s', src.lstrip()): blocks.append(after_title)
            context = context_alt(src) or context
        elif cell.cell_type == 'code':
            if getattr(cell, 'echo_', True) and cell.source.strip(): blocks.append(fence(cell.source, 'python'))
            outs = cell.get('outputs', [])
            # consecutive stdout chunks are one block, as in Jupyter
            merged = []
            for o in outs:
                if merged and o.get('output_type') == 'stream' and merged[-1].get('output_type') == 'stream':
                    merged[-1] = dict(merged[-1], text=_text(merged[-1]['text']) + _text(o.get('text')))
                else: merged.append(dict(o))
            alt = getattr(cell, 'fig_alt_', '') or getattr(cell, 'fig_cap_', '') or context or 'A figure'
            n, k = n_pictures(cell), 0
            for j, o in enumerate(merged):
                pic = any(m in o.get('data', {}) for m in IMAGE_TYPES)
                if pic: k += 1
                a = f'{alt} (picture {k} of {n})' if pic and n > 1 else alt
                md = output_md(o, img_dir, f'cell{i}_out{j}', a, getattr(cell, 'fig_cap_', ''))
                if md.strip(): blocks.append(md)
        elif cell.cell_type == 'raw' and cell.source.strip(): blocks.append(cell.source)
    if after_title and not (nb.cells and nb.cells[0].cell_type == 'markdown' and re.match(r'#\s', nb.cells[0].source.lstrip())):
        blocks.insert(0, after_title)
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

def short_repr(x) -> str:
    "`repr(x)`, naming functions and classes instead of showing their memory addresses"
    if inspect.isroutine(x) or inspect.isclass(x): return getattr(x, '__name__', repr(x))
    if isinstance(x, dict): return '{' + ', '.join(f'{short_repr(k)}: {short_repr(v)}' for k, v in x.items()) + '}'
    if isinstance(x, (tuple, list)):
        inner = ', '.join(map(short_repr, x)) + (',' if isinstance(x, tuple) and len(x) == 1 else '')
        return f'({inner})' if isinstance(x, tuple) else f'[{inner}]'
    return repr(x)

def value_md(name, obj, limit=12) -> str:
    "A module-level value as Python: a long dict one entry a line, at most `limit` lines"
    if isinstance(obj, dict) and len(short_repr(obj)) > 80:
        items = [f'    {short_repr(k)}: {short_repr(v)},' for k, v in obj.items()]
        more = [f'    # … {len(items) - limit} more'] if len(items) > limit else []
        return fence('\n'.join([f'{name} = {{'] + items[:limit] + more + ['}']), 'python')
    r = short_repr(obj)
    return fence(f'{name} = {r if len(r) < 300 else r[:300] + " …"}', 'python')

def value_comments(mod) -> dict:
    "The comment beside each top-level assignment of a module's source (`NAME = value # what it is`), by name"
    try: src = inspect.getsource(mod)
    except (OSError, TypeError): return {}
    return {m.group(1): m.group(2).strip() for m in re.finditer(r'^([A-Za-z_]\w*)\s*(?::[^=\n]+)?=[^\n]*?\s#\s*(.+)$', src, re.M)}

def api_page(modname, pages) -> str:
    """Markdown for one module: its docstring, its notebook, a table of its names (each with its docstring's first
    line, linking to its entry), then `show_doc` for every name in `__all__`"""
    from nbdev.showdoc import show_doc
    mod = importlib.import_module(modname)
    out = [f"# {modname.replace('.', '.<wbr>')} {{ .nb-module }}"]  # breaks only after a dot on a phone
    if mod.__doc__: out.append(mod.__doc__.strip())
    nb = _source_nb(mod)
    comments = value_comments(mod)
    if nb and nb in pages: out.append(f'Exported from the notebook [{plain_title(pages[nb])}](../{nb[:-6]}.md).')
    body, rows = [], []
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            body.append(show_doc_md(show_doc(obj, name=name)))
            rows.append((name, (inspect.getdoc(obj) or '').strip().split('\n')[0]))
            if inspect.isclass(obj):
                for mname, m in vars(obj).items():
                    if mname.startswith('_') and mname != '__call__': continue
                    f = m.__func__ if isinstance(m, (staticmethod, classmethod)) else m
                    if inspect.isfunction(f) and f.__doc__:
                        body.append(show_doc_md(show_doc(f, name=f'{name}.{mname}', title_level=4)))
        else:
            body.append(f'### {name}\n\n' + value_md(name, obj) + (f'\n\n*{comments[name]}*' if name in comments else ''))
            rows.append((name, comments.get(name, '')))
    ids = {text: hid for level, text, hid, _ in page_headings('\n\n'.join(out + body)) if level == 3}
    if rows:
        table = ['| name | what it does |', '|---|---|']
        for name, doc in rows:
            link = f'[`{name}`](#{ids[name]})' if name in ids else f'`{name}`'
            cell = doc.replace('|', r'\|')
            table.append(f'| {link} | {cell} |')
        out.append('\n'.join(table))
    return '\n\n'.join(out + body) + '\n'

def api_index(mods) -> str:
    "Markdown for the API reference's overview: one row per module, with its docstring's first line"
    lines = ['# API reference', '', 'The library `mnist_basics`, one page per module, generated from the code: '
             'signatures, docstrings and the comment on each parameter.', '', '| module | what it holds |', '|---|---|']
    for modname in mods:
        doc = (importlib.import_module(modname).__doc__ or '').strip().split('\n')[0]
        lines.append(f'| [`{modname}`]({modname.split(".")[-1]}.md) | {doc} |')
    return '\n'.join(lines) + '\n'

def try_page():
    "tools/docs/try_page.py, the 'Try it' page's builder (the drawing pad and the models it runs in the browser)"
    spec = importlib.util.spec_from_file_location('try_page', ASSETS/'try_page.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

# ---------------------------------------------------------------- the exercises page

def _slug(text) -> str:
    from markdown.extensions.toc import slugify
    return slugify(html.unescape(_plain(text)), '-')

def page_headings(md) -> list:
    "`(level, text, id, line)` for every heading of a page's Markdown outside fenced code, ids as MkDocs' toc makes them"
    res, ids, fence_mark = [], set(), None
    from markdown.extensions.toc import unique
    lines = md.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'\s{0,3}(`{3,}|~{3,})', line)
        if m:
            if fence_mark is None: fence_mark = m.group(1)
            elif line.strip().startswith(fence_mark) and not line.strip().strip(fence_mark[0]): fence_mark = None
            continue
        if fence_mark is not None: continue
        m = re.match(r'(#{1,6})\s+(.+?)\s*#*\s*$', line)
        if m: res.append((len(m.group(1)), m.group(2), unique(_slug(m.group(2)), ids), i))
    return res

def _first_sentence(md) -> str:
    "The first sentence of the first paragraph of prose in `md`, as Markdown (plain text if cutting it would break a mark)"
    for para in re.split(r'\n\s*\n', md):
        para = para.strip()
        if not para or para.startswith(('<', '```', '~~~', '|', '#', '!')): continue
        m = re.match(r'(.+?[.!?])(?=\s|$)', para, re.S)
        s = ' '.join((m.group(1) if m else para).split())
        if len(s) > 200 or s.count('`') % 2 or s.count('$') % 2: s = _trim(_plain(s), 160)
        return s
    return ''

def lesson_exercises(md) -> dict:
    """What a lesson page's Markdown offers to practise: its "Exercises" section, each heading starting "Exercise"
    (title, anchor, first sentence, checker, whether an answer folds out), and its questionnaire (anchor, questions)"""
    lines, heads = md.splitlines(), page_headings(md)
    res = dict(section=None, exercises=[], questionnaire=None)
    for k, (level, text, hid, line) in enumerate(heads):
        end = next((h[3] for h in heads[k + 1:] if h[0] <= level or re.match(r'(?i)exercise\b', _plain(h[1]))), len(lines))
        body = '\n'.join(lines[line + 1:end])
        plain = _plain(text)
        if re.match(r'(?i)exercises\b', plain) and res['section'] is None: res['section'] = hid
        elif re.match(r'(?i)exercise\b', plain):
            check = re.search(r'\b(check_\w+)\(', body)
            res['exercises'].append(dict(title=text, id=hid, desc=_first_sentence(body), check=check and check.group(1),
                                         answer='<details' in body))
        elif re.match(r'(?i)questionnaire\b', plain) and res['questionnaire'] is None:
            res['questionnaire'] = dict(id=hid, n=len(re.findall(r'<details\b', body)))
    return res

def exercises_page(lessons, extra_links=()) -> str:
    """Markdown for the "Exercises" page: `lessons` is `[(title, page, notebook links, lesson_exercises(...))]` in course
    order; `extra_links` are `(text, page)` for where the checkers and solutions are described"""
    out = ['# Exercises', '',
           "> Every lesson's exercises, lesson by lesson, each linking to its place in the lesson.", '',
           'A code exercise is done in the lesson\'s notebook: it has a cell for your function and a cell that checks it, '
           'saying in one line whether it is right or which mistake it made (`hint_<name>()` and `solution_<name>()` '
           'help when stuck). Run the notebook on your machine (download it from the lesson\'s page) or in Colab. '
           'Questions without a checker, and the questionnaires, have answers that fold out on the lesson\'s page.']
    if extra_links: out += ['', 'More: ' + ' · '.join(f'[{t}]({u})' for t, u in extra_links) + '.']
    for title, page, nb_links, ex in lessons:
        if not ex['exercises'] and not ex['questionnaire']: continue
        out += ['', f'## {title}', '']
        links = [f'[the lesson]({page})'] + ([f'[its exercises]({page}#{ex["section"]})'] if ex['section'] else []) + nb_links
        out += [' · '.join(links), '']
        for e in ex['exercises']:
            note = f' *Checked by `{e["check"]}`.*' if e['check'] else ' *The answer folds out.*' if e['answer'] else ''
            desc = f': {e["desc"]}' if e['desc'] else ''
            out.append(f'- **[{e["title"]}]({page}#{e["id"]})**{desc}{note}')
        q = ex['questionnaire']
        if q: out.append(f'- **[Questionnaire]({page}#{q["id"]})**: {q["n"]} question{"s" if q["n"] != 1 else ""}; each answer folds out.')
    return '\n'.join(out) + '\n'

# ---------------------------------------------------------------- the site

MARKER = '.mnist_basics_docs'  # written into every site this tool builds: only such a folder is ever replaced

class OutRefused(Exception): pass

def out_refusal(out) -> str:
    "Why the folder `out` may not be replaced by a new site (None if it may: absent, empty, or built by this tool)"
    out = Path(out)
    if out.is_symlink(): return f'--out {out} is a symbolic link: give the folder itself'
    r = out.resolve()
    if r == root or r in root.parents: return f'--out {out} is the repository or a folder above it'
    if not out.exists(): return None
    if not out.is_dir(): return f'--out {out} exists and is not a folder'
    marker = out/MARKER
    if marker.is_file() and not marker.is_symlink(): return None
    try: empty = not any(out.iterdir())
    except OSError as e: return f'--out {out} cannot be read ({e.strerror})'
    if empty: return None
    return f'--out {out} exists and was not made by this tool: it holds files and no {MARKER} marker (remove it or choose another folder)'

def notebook_links(rel, cfg) -> list:
    "Markdown links to a notebook's `.ipynb` (copied beside its page) and to the notebook in Colab"
    m = re.match(r'https?://github\.com/([^/]+/[^/]+?)(?:\.git)?/?$', cfg.get('git_url', ''))
    links = [f'[Download the notebook]({rel.name}){{ .nb-download download="{rel.name}" }}']
    if m:
        nbs = cfg.get('nbs_path', 'nbs').strip('/')
        url = f"https://colab.research.google.com/github/{m.group(1)}/blob/{cfg.get('branch', 'main')}/{nbs}/{rel.as_posix()}"
        links.append(f'[Open in Colab]({url}){{ .nb-colab }}')
    return links

def _has_code(nb_path) -> bool:
    return any(c['cell_type'] == 'code' and _text(c['source']).strip()
               for c in json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells'])

def build(out=None, quiet=False, nbs_path=None):
    """Build the site into `out` (default: nbdev's `doc_path`, `_docs/`) from the notebooks in `nbs_path` (default:
    settings.ini's); return the seconds it took. Raises `OutRefused` if `out` is not for this tool to replace."""
    t0 = time.perf_counter()
    cfg = settings()
    out = (Path(out) if out else root/cfg.get('doc_path', '_docs')).absolute()  # MkDocs reads paths from its config's folder
    reason = out_refusal(out)
    if reason: raise OutRefused(reason)
    nbs_path = Path(nbs_path) if nbs_path else root/cfg.get('nbs_path', 'nbs')
    lib_path = root/cfg.get('lib_path', 'mnist_basics')
    if str(root) not in sys.path: sys.path.insert(0, str(root))
    try:  # the new site is made beside `out`, in a folder of its own, and moved into place when complete
        out.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(prefix=f'.{out.name}.new-', dir=out.parent)).absolute()
        umask = os.umask(0); os.umask(umask)
        os.chmod(new, 0o777 & ~umask)  # a site is for reading: the usual permissions of a new folder, not mkdtemp's 0700
    except OSError as e: raise OutRefused(f'--out {out}: cannot make a folder beside it ({e.strerror})') from None
    try:
        with tempfile.TemporaryDirectory(prefix='mnist_basics_docs_') as tmp:
            docs = Path(tmp)/'docs'
            (docs/'assets').mkdir(parents=True)
            for f in ASSETS.iterdir():
                if f.is_file(): shutil.copy(f, docs/'assets'/f.name)
            order = page_order(nbs_path)
            md_rels = {nb: ('index.md' if nb.relative_to(nbs_path) == Path('index.ipynb') else
                            nb.relative_to(nbs_path).with_suffix('.md').as_posix()) for _, nb in order}
            nav, sections, titles, lessons = [], {}, {}, []
            for section, nb_path in order:
                rel = nb_path.relative_to(nbs_path)
                md_rel = md_rels[nb_path]
                title = nb_title(nb_path)
                titles[rel.as_posix()] = title
                md_file = docs/md_rel
                md_file.parent.mkdir(parents=True, exist_ok=True)
                if not quiet: print(f'  {rel}: {plain_title(title)}')
                links = {nb.stem: os.path.relpath(r, Path(md_rel).parent.as_posix() or '.') for nb, r in md_rels.items()}
                nb_links = notebook_links(rel, cfg) if md_rel != 'index.md' and _has_code(nb_path) else []
                if nb_links: shutil.copy(nb_path, md_file.parent/nb_path.name)
                after = f'<p class="nb-links" markdown="1">{" ".join(nb_links)}</p>' if nb_links else ''
                page = nb_markdown(process_nb(nb_path), md_file.parent/f'{Path(md_rel).stem}_files', links, after, title)
                if nb_title(nb_path, default=False) is None: page = f'# {title}\n\n{page}'  # a notebook without one
                md_file.write_text(f'---\ntitle: {json.dumps(plain_title(title))}\n---\n\n{page}', encoding='utf-8')
                entry = {plain_title(title) if md_rel != 'index.md' else 'Home': md_rel}
                if section is None: nav.append(entry)
                else: sections.setdefault(section, []).append(entry)
                if section == SECTIONS[0]:
                    lessons.append((plain_title(title), md_rel, [l.split('{')[0] for l in nb_links], lesson_exercises(page)))
            mods = lib_modules(lib_path)
            if any(ex['exercises'] or ex['questionnaire'] for *_, ex in lessons):
                ex_md = next(n for n in ('exercises.md', 'all_exercises.md', 'exercises_by_lesson.md') if n not in md_rels.values())
                extra = [(plain_title(t), md_rels[nbs_path/r]) for r, t in titles.items()
                         if r != 'index.ipynb' and re.search(r'(?i)\b(exercises|solutions)\b', t) and nbs_path/r in md_rels]
                if any(m.endswith('.exercises') for m in mods): extra.append(('the checkers in the API reference', 'api/exercises.md'))
                (docs/ex_md).write_text(exercises_page(lessons, extra), encoding='utf-8')
                sections.setdefault(SECTIONS[0], []).append({'Exercises': ex_md})
            nav += [{s: sections[s]} for s in SECTIONS if s in sections]
            nav.append(try_page().build(docs, cfg, log=None if quiet else print))  # "Try it": draw a digit, read in the browser
            (docs/'api').mkdir()
            (docs/'api'/'index.md').write_text(api_index(mods), encoding='utf-8')
            api_nav = [{'Overview': 'api/index.md'}]
            for modname in mods:
                short = modname.split('.')[-1]
                (docs/'api'/f'{short}.md').write_text(api_page(modname, titles), encoding='utf-8')
                api_nav.append({modname: f'api/{short}.md'})
            nav.append({'API reference': api_nav})
            mkdocs_build(cfg, docs, new, nav)
            (new/MARKER).write_text('Built by tools/build_docs.py: the next build replaces this whole folder.\n', encoding='utf-8')
            replace_out(new, out)
    finally:  # a failed build leaves nothing behind
        if new.exists(): shutil.rmtree(new, ignore_errors=True)
    secs = time.perf_counter() - t0
    if not quiet: print(f'Built {out} in {secs:.1f} s')
    return secs

def replace_out(new, out):
    "Put the finished site `new` at `out`, replacing `out` only if it is still absent, empty or a site of this tool"
    reason = out_refusal(out)
    if reason: raise OutRefused(reason)
    if out.exists():
        old = out.parent/f'.{out.name}.old-{os.getpid()}-{time.time_ns()}'
        os.rename(out, old)
        os.rename(new, out)
        shutil.rmtree(old)
    else: os.rename(new, out)

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
                             {'toc': {'permalink': True, 'toc_depth': 3}},
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
    mk_build(load_config(str(conf_file)))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', help="output folder (default: settings.ini's doc_path, _docs/)")
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    try: build(args.out, args.quiet)
    except OutRefused as e: ap.exit(2, f'build_docs: error: {e}\n')

if __name__ == '__main__': main()
