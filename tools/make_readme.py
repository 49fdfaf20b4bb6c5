"""Write README.md from nbs/index.ipynb (Quarto, and so `nbdev_readme`, is not available here).

Markdown cells are copied as they are, with links to notebooks (`x.ipynb`) and images made relative to the
repository's root; code cells become ```python blocks and their saved text outputs plain ``` blocks; a saved picture
is written to `nbs/images/` and shown from there. Cells marked `#| hide` are left out, and `#| echo: false` cells
show only their outputs. `--check` exits 1 when README.md or one of its pictures is stale.
"""
import base64, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'
IMAGES = 'images'  # beside the notebook, in nbs/

def output_text(out):
    "The plain-text form of one saved cell output, or '' for outputs with none (or with a picture)"
    if out['output_type'] == 'stream': return ''.join(out['text'])
    data = out.get('data', {})
    return '' if 'image/png' in data else ''.join(data.get('text/plain', ''))

def from_root(md:str, nbs_dir:str='nbs') -> str:
    "Markdown links and images relative to the notebook (`x.ipynb`, `images/x.png`) made relative to the repository's root"
    return re.sub(r'(\]\()(?![\w+.-]+:|/|#)([^)\s]+)', lambda m: f'{m.group(1)}{nbs_dir}/{m.group(2)}', md)

def cell_md(cell, pictures:dict):
    "Markdown for one notebook cell; its pictures are added to `pictures` (file name in nbs/ -> bytes)"
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return from_root(src)
    lines = src.splitlines()
    opts = [l.strip().replace(' ', '') for l in lines if l.startswith('#|')]
    if '#|hide' in opts or '#|exporti' in opts: return ''
    code = '' if '#|echo:false' in opts else '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    alt = next((l.split(':', 1)[1].strip() for l in lines if re.match(r'#\|\s*fig-alt:', l)), 'a figure')
    parts = [f'```python\n{code}\n```'] if code else []
    outs = ''.join(output_text(o) for o in cell.get('outputs', [])).rstrip()
    if outs: parts.append(f'```\n{outs}\n```')
    for o in cell.get('outputs', []):
        png = o.get('data', {}).get('image/png')
        if not png: continue
        name = f"{IMAGES}/readme_{cell.get('id', len(pictures))}_{len(pictures)}.png"
        pictures[name] = base64.b64decode(''.join(png))
        parts.append(f'![{alt}](nbs/{name})')
    return '\n\n'.join(parts)

def readme(nb_path=root/'nbs'/'index.ipynb') -> tuple:
    "README text for the notebook at `nb_path`, and its pictures (file name relative to nbs/ -> bytes)"
    cells, pictures = json.loads(Path(nb_path).read_text())['cells'], {}
    text = HEADER + '\n\n'.join(s for s in (cell_md(c, pictures) for c in cells) if s) + '\n'
    return text, pictures

def main(args, dest=root/'README.md', nb_path=root/'nbs'/'index.ipynb'):
    "Write `dest` from `nb_path`, and its pictures beside the notebook; with `--check` in `args` only check that they are current"
    text, pictures = readme(nb_path)
    nbs = Path(nb_path).parent
    stale = [n for n, b in pictures.items() if not (nbs/n).is_file() or (nbs/n).read_bytes() != b]
    if '--check' in args:
        if not dest.exists() or dest.read_text() != text or stale:
            sys.exit(f'{dest} is out of date with {nb_path}: run python tools/make_readme.py')
        return
    old = [p for p in (nbs/IMAGES).glob('readme_*.png') if f'{IMAGES}/{p.name}' not in pictures] if (nbs/IMAGES).is_dir() else []
    for n in stale:
        (nbs/n).parent.mkdir(exist_ok=True)
        tmp = (nbs/n).with_suffix('.tmp'); tmp.write_bytes(pictures[n]); tmp.replace(nbs/n)
    for p in old: p.unlink()
    tmp = dest.with_name(dest.name + '.tmp'); tmp.write_text(text); tmp.replace(dest)

if __name__ == '__main__': main(sys.argv[1:])
