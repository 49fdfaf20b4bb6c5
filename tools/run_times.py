#!/usr/bin/env python
"""Run notebooks top to bottom in a fresh Jupyter kernel, save their outputs, and put their run times in the README's tables.

    python tools/run_times.py                    # every notebook in nbs/ (index.ipynb last), outputs saved in place
    python tools/run_times.py 03_linear 07_cnn   # some of them (names without .ipynb)
    python tools/run_times.py --no-save          # only time them: the notebooks on disk are left as they are

The saved outputs are what a reader sees before running anything, so refresh them after changing a notebook. Each
notebook runs as a reader's "Run All" does (a real kernel, working folder `nbs/`), is then cleaned with `nbdev_clean`,
and its wall-clock time goes into the "run time" column of its row in `nbs/index.ipynb` (rows that start with
"| `name` |" or "| [`name`](name.ipynb) |"). Run `python tools/make_readme.py` afterwards to regenerate README.md. It exits non-zero, naming the
notebook and cell, if a notebook fails; nothing is saved for that notebook.
"""
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
# Jupyter's inline backend, whatever the shell says: a kernel started with MPLBACKEND=Agg (as CI sets it) draws every
# figure into nothing, and the saved notebook silently loses them all.
INLINE = 'module://matplotlib_inline.backend_inline'


def run(nb_path:Path, save:bool=True) -> float:
    "Execute `nb_path` in a fresh kernel; save its outputs when `save`; the wall-clock seconds it took"
    nb = nbformat.read(nb_path, as_version=4)
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(NBS)}})
    client.execute(env={**os.environ, 'MPLBACKEND': INLINE})
    secs = time.perf_counter() - t0
    if save:
        nbformat.write(nb, nb_path)
        subprocess.run([Path(sys.executable).parent/'nbdev_clean', '--fname', str(nb_path)], check=True, cwd=ROOT)
    return secs


def fmt(secs:float) -> str:
    "A run time as a reader would say it: '8 s', '2 min'"
    return f'{secs:.0f} s' if secs < 90 else f'{secs/60:.0f} min'


def put_times(times:dict, index:Path=NBS/'index.ipynb'):
    "Write `times` (notebook name -> seconds) into the last column of the matching rows of the index's tables"
    raw = json.loads(index.read_text(encoding='utf-8'))
    for cell in raw['cells']:
        if cell['cell_type'] != 'markdown': continue
        lines = ''.join(cell['source']).split('\n')
        for i, line in enumerate(lines):
            m = re.match(r'\| \[?`(\w+)`(?:\]\([^)]*\))? \|', line)
            if m and m.group(1) in times: lines[i] = line.rsplit('|', 2)[0] + f'| {fmt(times[m.group(1)])} |'
        cell['source'] = '\n'.join(lines).splitlines(keepends=True)
    index.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    subprocess.run([Path(sys.executable).parent/'nbdev_clean', '--fname', str(index)], check=True, cwd=ROOT)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('names', nargs='*', help='notebook names without .ipynb (default: all, index last)')
    ap.add_argument('--no-save', action='store_true', help='time only: leave the notebooks on disk unchanged')
    args = ap.parse_args()
    paths = [NBS/f'{n}.ipynb' for n in args.names] or sorted(p for p in NBS.glob('[0-9]*.ipynb')) + [NBS/'index.ipynb']
    missing = [p.name for p in paths if not p.is_file()]
    if missing: ap.error(f"no such notebook in nbs/: {', '.join(missing)}")
    times = {}
    for p in paths:
        try: times[p.stem] = run(p, save=not args.no_save)
        except CellExecutionError as e:
            print(f'{p.name}: a cell failed: {str(e).strip().splitlines()[-1]}', file=sys.stderr)
            return 1
        print(f'{p.stem:16} {fmt(times[p.stem]):>7}', flush=True)
    if not args.no_save: put_times(times)
    return 0


if __name__ == '__main__': sys.exit(main())
