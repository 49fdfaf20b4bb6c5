"README.md is generated from nbs/index.ipynb and must stay in sync with it."
import re, sys
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'))
import make_readme

def test_readme_in_sync():
    make_readme.main(['--check'])

def test_check_detects_stale_readme(tmp_path):
    dest = tmp_path/'README.md'
    dest.write_text('stale\n')
    with pytest.raises(SystemExit, match='out of date'): make_readme.main(['--check'], dest=dest)
    make_readme.main([], dest=dest)
    make_readme.main(['--check'], dest=dest)
    assert dest.read_text().startswith(make_readme.HEADER)

def test_readme_has_two_setup_commands():
    "Exactly two commands a newcomer pastes: one trains, one tests; .ci/run runs the second"
    cmds = re.findall(r'^python3 -m venv \.venv && .*$', (root/'README.md').read_text(), re.M)
    assert len(cmds) == 2, cmds
    assert 'mnist_train' in cmds[0] and 'pytest' in cmds[1]

def test_readme_is_a_landing_page():
    "At most 1,200 words (a newcomer's first page), with the course table's lessons linked and the moved sections linked"
    text = (root/'README.md').read_text()
    assert len(text.split()) <= 1200, len(text.split())
    lessons = sorted(p.stem for p in (root/'nbs').glob('[0-8][0-9]_*.ipynb'))
    for name in lessons: assert f'[`{name}`](nbs/{name}.ipynb)' in text, name
    for page in ('usage', 'benchmarks', 'limits', 'portability', 'developing'):
        assert f'(nbs/{page}.ipynb)' in text and (root/'nbs'/f'{page}.ipynb').is_file(), page
