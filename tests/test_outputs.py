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
