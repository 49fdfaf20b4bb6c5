"""Write README.md from nbs/index.ipynb (Quarto, and so `nbdev_readme`, is not available here).

Markdown cells are copied as they are; code cells become ```python blocks and their saved outputs
plain ``` blocks; cells marked `#| hide` are left out. `--check` exits 1 when README.md is stale.
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'

def output_text(out):
    "The plain-text form of one saved cell output, or '' for outputs with none"
    if out['output_type'] == 'stream': return ''.join(out['text'])
    return ''.join(out.get('data', {}).get('text/plain', ''))

def cell_md(cell):
    "Markdown for one notebook cell"
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return src
    lines = src.splitlines()
    if any(l.strip().replace(' ', '') in ('#|hide', '#|exporti') for l in lines): return ''
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    outs = ''.join(output_text(o) for o in cell.get('outputs', [])).rstrip()
    md = f'```python\n{code}\n```' if code else ''
    return md + (f'\n\n```\n{outs}\n```' if outs else '')

def readme(nb_path=root/'nbs'/'index.ipynb'):
    "README text for the notebook at `nb_path`"
    cells = json.loads(Path(nb_path).read_text())['cells']
    return HEADER + '\n\n'.join(s for s in map(cell_md, cells) if s) + '\n'

def main(args, dest=root/'README.md', nb_path=root/'nbs'/'index.ipynb'):
    "Write `dest` from `nb_path`, or with `--check` in `args` only check that it is current"
    text = readme(nb_path)
    if '--check' in args:
        if not dest.exists() or dest.read_text() != text:
            sys.exit(f'{dest} is out of date with {nb_path}: run python tools/make_readme.py')
        return
    tmp = dest.with_name(dest.name + '.tmp'); tmp.write_text(text); tmp.replace(dest)

if __name__ == '__main__': main(sys.argv[1:])
