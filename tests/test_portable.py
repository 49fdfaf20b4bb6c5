"What a user sees from the commands is clean on any machine: one line per warning, no stray characters, no tracebacks."
import os, subprocess, sys
from pathlib import Path
import pytest

from mnist_basics.train import load_model

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def offline_env(tmp_path) -> dict:
    "An environment with an empty fastai folder and every download refused at once (a closed port as the proxy)"
    env = {k: v for k, v in os.environ.items() if k not in ('MNIST_BASICS_DATA', 'no_proxy', 'NO_PROXY', 'PYTHONWARNINGS')}
    closed = 'http://127.0.0.1:9'
    return {**env, 'FASTAI_HOME': str(tmp_path/'fastai'), 'http_proxy': closed, 'https_proxy': closed,
            'HTTP_PROXY': closed, 'HTTPS_PROXY': closed}


def test_offline_standin_warning_is_one_line(tmp_path):
    "Offline with no data, mnist_train trains on the stand-in and says so in exactly one clean line on stderr"
    r = subprocess.run([BIN/'mnist_train', '--model', 'linear', '--epochs', '1'], capture_output=True, text=True,
                       env=offline_env(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith('mnist_train: warning: MNIST_SAMPLE is not on this machine and could not be downloaded from https://'), lines[0]
    assert 'stand-in' in lines[0]
    assert '█' not in r.stdout + r.stderr and 'Traceback' not in r.stderr and 'FutureWarning' not in r.stderr
    assert r.stdout.splitlines()[-1].startswith('linear: validation accuracy'), r.stdout


@pytest.mark.parametrize('content,expected', [
    (b'', 'unreadable: the file is empty'),
    (bytes(range(256))*4, 'unreadable: it is binary data of an unknown kind, not a file written by torch.save'),
    (b'PK\x03\x04' + bytes(100), 'the file is damaged or cut short'),  # looks like torch.save's zip, but is cut short
])
def test_unreadable_model_message_is_short(tmp_path, content, expected):
    "A file that is not a model gets a short reason, not torch's page-long text cut mid-word"
    fn = tmp_path/'model.pt'; fn.write_bytes(content)
    with pytest.raises(ValueError) as e: load_model(fn)
    msg = str(e.value)
    assert msg.startswith(f'{fn} is not a mnist_basics model file ({expected}') and msg.endswith(')'), msg
    assert len(msg) < len(str(fn)) + 160 and 'weights_only' not in msg and 'miniz' not in msg, msg


def test_kernel_matrix_settings():
    "The kernel matrix knows its settings, and refuses an unknown one with one line naming it"
    r = subprocess.run([sys.executable, ROOT/'tools'/'kernel_matrix.py', '--list'], capture_output=True, text=True)
    assert r.returncode == 0
    names = [l.split()[0] for l in r.stdout.splitlines()]
    assert names == ['default', 'avx2', 'aten-default', 'threads-1', 'threads-2'], r.stdout
    assert 'ATEN_CPU_CAPABILITY=avx2' in r.stdout and 'MKL_ENABLE_INSTRUCTIONS=AVX2' in r.stdout
    r = subprocess.run([sys.executable, ROOT/'tools'/'kernel_matrix.py', '--settings', 'avx3'], capture_output=True, text=True)
    assert r.returncode == 2 and 'unknown setting(s) avx3' in r.stderr.splitlines()[-1], r.stderr
