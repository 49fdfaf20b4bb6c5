"The notebooks' saved outputs are what a reader sees first: no warnings, no machine's paths, no tracebacks, no escapes."
import json, re
from pathlib import Path
import pytest

NBS = sorted((Path(__file__).resolve().parent.parent/'nbs').glob('*.ipynb'))

# An absolute path of some machine: a POSIX path under a system or home folder, or a Windows drive path.
ABS_PATH = re.compile(r'(?<![\w.~])(/(tmp|var|work|root|home|Users|usr|opt|private|mnt|srv)/[^\s\'"]*|[A-Za-z]:\\\\?[\w.])')
WARNING = re.compile(r'\b\w*Warning\b:|^\s*warnings\.warn\(', re.M)


def output_texts(nb_path:Path) -> list:
    "(cell number, kind, text) for every saved output of the notebook at `nb_path`"
    res = []
    for i, cell in enumerate(json.loads(nb_path.read_text(encoding='utf-8'))['cells']):
        for o in cell.get('outputs', []):
            kind = o['output_type']
            if kind == 'stream': texts = [(o['name'], ''.join(o['text']))]
            elif kind == 'error': texts = [('error', '\n'.join(o.get('traceback', [])) + o.get('evalue', ''))]
            else: texts = [(k, ''.join(v) if isinstance(v, list) else str(v)) for k, v in o.get('data', {}).items()
                           if k.startswith('text/') or k == 'application/json']
            res += [(i, k, t) for k, t in texts]
    return res


def problems(text:str, kind:str) -> list:
    "What a reader should not see in one output `text` of the given kind"
    found = []
    if kind == 'error' or 'Traceback (most recent call last)' in text: found.append('a traceback')
    if kind == 'stderr': found.append('output on stderr (warnings and errors go there)')
    if WARNING.search(text): found.append(f'a warning: {WARNING.search(text).group(0)!r}')
    if '\x1b[' in text: found.append('an ANSI escape sequence')
    m = ABS_PATH.search(text)
    if m: found.append(f'an absolute path: {m.group(0)!r}')
    return found


@pytest.mark.parametrize('nb_path', NBS, ids=[p.name for p in NBS])
def test_saved_outputs_are_clean(nb_path):
    "Every saved output of every notebook is free of warnings, absolute paths, tracebacks and escapes"
    bad = [f'cell {i} ({kind}): {p}' for i, kind, text in output_texts(nb_path) for p in problems(text, kind)]
    assert not bad, f'{nb_path.name}:\n' + '\n'.join(bad)


@pytest.mark.parametrize('text,kind,expected', [
    ('/work/main/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1491: FutureWarning: deprecated', 'stderr',
     ['output on stderr (warnings and errors go there)', "a warning: 'FutureWarning:'", 'an absolute path'] ),
    ('MnistData(/tmp/fh/data/mnist_sample: 12396 train)', 'stdout', ['an absolute path']),
    ('saved to C:\\Users\\me\\model.pt', 'stdout', ['an absolute path']),
    ('\x1b[0;31mValueError\x1b[0m', 'error', ['a traceback', 'an ANSI escape sequence']),
    ('UserWarning: stand-in', 'text/plain', ["a warning: 'UserWarning:'"]),
])
def test_problems_are_found(text, kind, expected):
    "The scan finds each kind of problem (so the test above cannot pass by seeing nothing)"
    found = problems(text, kind)
    assert len(found) == len(expected) and all(f.startswith(e) for f, e in zip(found, expected)), found


@pytest.mark.parametrize('text', ['MnistData(mnist_sample: 12396 train, 2038 valid)', '~/.fastai/data/mnist_sample',
                                  'accuracy 0.9863 (28 of 2038 wrong)', 'w/ b/ 28/2038', 'train/3/12.png', 'x: 3/7'])
def test_clean_text_passes(text):
    "Relative paths, home-relative paths and ordinary numbers are not flagged"
    assert problems(text, 'stdout') == []


# A plotting call at the top level of a code cell (not inside a `def` or `class`): the cell draws a picture.
DRAWS = re.compile(r'\b(plt\.(subplots|figure|imshow|plot|bar|barh|hist|scatter|matshow)\(|show_images?\(|show_row\('
                   r'|imshow\(|plot_\w+\(|\.plot\(|show_results\(|plot_confusion_matrix\()')

def drawing_cells(nb:dict) -> list:
    "Indices of the code cells of `nb` that call a plotting function at their top level"
    res = []
    for i, cell in enumerate(nb['cells']):
        if cell['cell_type'] != 'code': continue
        in_def = False
        for line in ''.join(cell['source']).splitlines():
            if not line.strip() or line.lstrip().startswith('#'): continue
            if not line[0].isspace(): in_def = line.startswith(('def ', 'class ', '@'))
            if not in_def and DRAWS.search(line): res.append(i); break
    return res

def has_picture(cell:dict) -> bool:
    return any(k in o.get('data', {}) for o in cell.get('outputs', []) for k in ('image/png', 'image/svg+xml'))


@pytest.mark.parametrize('nb_path', NBS, ids=[p.name for p in NBS])
def test_drawing_cells_saved_their_picture(nb_path):
    "Every cell that draws holds its picture (outputs saved under MPLBACKEND=Agg lose every figure, silently)"
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    lost = [i for i in drawing_cells(nb) if not has_picture(nb['cells'][i])]
    assert not lost, f'{nb_path.name}: cells {lost} draw but saved no picture: refresh with tools/run_times.py'


def test_drawing_cells_are_found():
    "The scan sees a top-level plotting call, and not one inside a function (so the test above can fail)"
    cell = lambda src, outs=(): dict(cell_type='code', source=src, outputs=list(outs))
    png = dict(output_type='display_data', data={'image/png': 'iVBOR'}, metadata={})
    nb = dict(cells=[cell('fig, ax = plt.subplots()\nax.plot(x)'), cell('def f():\n    plt.imshow(x)'),
                     cell('show_image(t)', [png]), cell('# plt.plot(x)'), cell('learn.recorder.plot_loss()')])
    assert drawing_cells(nb) == [0, 2, 4]
    assert [has_picture(nb['cells'][i]) for i in (0, 2)] == [False, True]


def test_refresh_keeps_figures_under_agg(tmp_path, monkeypatch):
    "tools/run_times.py saves a figure even when the shell says MPLBACKEND=Agg (how the three notebooks lost theirs)"
    import importlib.util, nbformat
    spec = importlib.util.spec_from_file_location('run_times', Path(__file__).resolve().parent.parent/'tools'/'run_times.py')
    run_times = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_times)
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import matplotlib.pyplot as plt\nplt.plot([0, 1])')])
    nb_path = tmp_path/'fig.ipynb'
    nbformat.write(nb, nb_path)
    run_times.run(nb_path, save=True)
    saved = json.loads(nb_path.read_text(encoding='utf-8'))
    assert drawing_cells(saved) == [0] and has_picture(saved['cells'][0])


@pytest.mark.parametrize('nb_path', NBS, ids=[p.name for p in NBS])
def test_saved_pictures_say_what_they_show(nb_path):
    "Every cell that saved a picture has a `#| fig-alt:` line: the site's alt text, read aloud to a reader who cannot see it"
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    bare = [c.get('id', i) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code' and has_picture(c)
            and not re.search(r'^#\|\s*fig-alt:\s*\S.{15,}', ''.join(c['source']), re.M)]
    assert not bare, f'{nb_path.name}: cells {bare} saved a picture without a `#| fig-alt:` line that says what it shows'
