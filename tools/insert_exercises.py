"""Append each lesson's Exercises and Questionnaire sections (from nbs/_exercise_sections.json) to the end of its notebook.

Usage: python tools/insert_exercises.py [--sections nbs/_exercise_sections.json] [KEY=NOTEBOOK ...]
With no KEY=NOTEBOOK pairs, every key of the sections file whose notebook `nbs/<key>.ipynb` exists is used
(the SGD lesson's key is `sgd`: name its notebook, e.g. sgd=nbs/02_sgd.ipynb). A notebook that already has
an '## Exercises' heading is left alone, so running the tool twice changes nothing."""
import argparse, json, secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def has_exercises(nb:dict) -> bool:
    "Whether the notebook already has an Exercises section"
    return any(c['cell_type'] == 'markdown' and ''.join(c['source']).lstrip().startswith('## Exercises') for c in nb['cells'])


def new_cell(cell:dict, taken:set) -> dict:
    "A notebook cell for `cell` ({'cell_type', 'source'}), with an 8-hex-digit id not in `taken`"
    cid = secrets.token_hex(4)
    while cid in taken: cid = secrets.token_hex(4)
    taken.add(cid)
    res = dict(cell_type=cell['cell_type'], id=cid, metadata={}, source=cell['source'].splitlines(keepends=True))
    if cell['cell_type'] == 'code': res.update(execution_count=None, outputs=[])
    return res


def insert(nb_path:Path, cells:list) -> bool:
    "Append `cells` to the notebook at `nb_path`; False (and nothing written) if it already has exercises"
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    if has_exercises(nb): return False
    taken = {c.get('id') for c in nb['cells']}
    nb['cells'] += [new_cell(c, taken) for c in cells]
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sections', default=str(ROOT/'nbs'/'_exercise_sections.json'), help='the sections file')
    ap.add_argument('pairs', nargs='*', metavar='KEY=NOTEBOOK', help='lesson key and notebook path')
    args = ap.parse_args(argv)
    sections = json.loads(Path(args.sections).read_text(encoding='utf-8'))
    if args.pairs: mapping = dict(p.split('=', 1) for p in args.pairs)
    else: mapping = {k: ROOT/'nbs'/f'{k}.ipynb' for k in sections if (ROOT/'nbs'/f'{k}.ipynb').exists()}
    for key, path in mapping.items():
        if key not in sections: raise SystemExit(f'no sections for lesson key {key!r}; keys: {", ".join(sections)}')
        done = insert(Path(path), sections[key])
        print(f'{key}: {path}: ' + ('exercises appended' if done else 'already has an Exercises section, left alone'))
    missing = sorted(set(sections) - set(mapping))
    if missing: print('not inserted (no notebook given or found): ' + ', '.join(missing))


if __name__ == '__main__': main()
