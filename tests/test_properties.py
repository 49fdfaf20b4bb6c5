"""Property-based tests (hypothesis): generated odd inputs to `prepare_digit`, `load_model`, `read_digit`/`load_stacks` and
`extract_tgz` give a valid result or one of the documented exceptions (ValueError, FileNotFoundError), quickly.
No real data needed; bounded to about a minute in all (`max_examples` and `deadline` below)."""
import io, os, tarfile, tempfile, zlib
from pathlib import Path

import numpy as np, pytest, torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

import mnist_basics.data as data
from mnist_basics.net import MODELS
from mnist_basics.predict import MAX_PIXELS, draw_digit, prepare_digit
from mnist_basics.train import load_model, save_model

DOCUMENTED = (ValueError, FileNotFoundError)  # what the functions raise for bad input; anything else is a bug
FAST = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

MODES = ['1', 'L', 'P', 'RGB', 'RGBA', 'LA', 'I', 'I;16', 'F', 'CMYK']


def picture(w, h, mode, content, seed):
    "A `w`×`h` picture in `mode`: noise, blank, a drawn digit or a stroke"
    rng = np.random.default_rng(seed)
    if content == 'noise': im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
    elif content == 'blank': im = Image.new('L', (w, h), int(rng.integers(0, 256)))
    elif content == 'digit': im = draw_digit(int(rng.choice([3, 7])), (w, h), mode='L')
    else:
        a = np.full((h, w), 255, np.uint8); a[h//3:max(h//3 + 1, 2*h//3), w//4:max(w//4 + 1, 3*w//4)] = 0; im = Image.fromarray(a)
    return im.convert(mode) if mode not in ('I;16',) else Image.fromarray(np.asarray(im.convert('L'), dtype=np.uint16)*257)


@FAST
@given(w=st.integers(1, 400), h=st.integers(1, 400), stretch=st.sampled_from([1, 1, 50, 2000]), mode=st.sampled_from(MODES),
       content=st.sampled_from(['noise', 'blank', 'digit', 'stroke']), seed=st.integers(0, 2**16), fmt=st.sampled_from([None, 'PNG', 'JPEG']),
       cut=st.sampled_from([None, 0.1, 0.5, 0.9]))
def test_prepare_digit_valid_or_documented_error(tmp_path, w, h, stretch, mode, content, seed, fmt, cut):
    w = min(w*stretch, MAX_PIXELS//h, 65_500 if fmt == 'JPEG' else MAX_PIXELS)  # very elongated too, up to the pixel limit (JPEG: 65,535 a side)
    im = picture(w, h, mode, content, seed)
    src = im
    if fmt:
        if fmt == 'JPEG' and im.mode not in ('L', 'RGB', 'CMYK'): im = im.convert('RGB')
        if fmt == 'PNG' and im.mode in ('I', 'F', 'CMYK'): im = im.convert('RGB')  # modes PNG cannot store
        buf = io.BytesIO(); im.save(buf, format=fmt); b = buf.getvalue()
        src = tmp_path/f'p.{fmt.lower()}'
        src.write_bytes(b[:int(len(b)*cut)] if cut else b)
    try: x = prepare_digit(src)
    except DOCUMENTED: return
    assert x.shape == (784,) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


ARCH_VALUES = st.one_of(st.integers(-10, 100), st.integers(10**6, 10**40), st.text(max_size=3), st.none(), st.floats(allow_nan=True))

@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(['linear', 'net', 'cnn', 'other', '']), arch=st.one_of(st.none(), st.dictionaries(
           st.sampled_from(['n_hidden', 'std', 'width', '']), ARCH_VALUES, max_size=2), st.lists(st.integers(), max_size=2)),
       shapes=st.lists(st.lists(st.integers(0, 40), min_size=0, max_size=3), max_size=4), use_real=st.booleans(),
       fmt=st.sampled_from(['mnist_basics', 'other', None]), cut=st.sampled_from([None, 0, 10, 100, 0.5, 0.99]))
def test_load_model_valid_or_documented_error(tmp_path, name, arch, shapes, use_real, fmt, cut):
    if use_real and name in MODELS: params = {k: v.detach() for k, v in MODELS[name][1]().items()}
    else: params = {f'p{i}': torch.zeros(s) for i, s in enumerate(shapes)}
    meta = {} if arch is None else dict(arch=arch)
    fn = tmp_path/'m.pt'
    torch.save(dict(format=fmt, model=name, params=params, meta=meta), fn)
    if cut is not None:
        b = fn.read_bytes(); fn.write_bytes(b[:int(len(b)*cut) if isinstance(cut, float) else cut])
    try: got = load_model(fn)
    except DOCUMENTED: return
    n, model, ps, m = got
    assert n in MODELS and {k: v.shape for k, v in ps.items()} == {k: v.shape for k, v in MODELS[n][1](**m.get('arch', {})).items()}


def png_bytes(w, h, mode, fmt, seed):
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).convert(mode)
    if fmt == 'JPEG' and im.mode not in ('L', 'RGB'): im = im.convert('L')
    if im.mode == 'I' and fmt == 'PNG': im = Image.fromarray(np.asarray(im, dtype=np.uint16)*257)  # PNG stores it as 16-bit
    buf = io.BytesIO()
    try: im.save(buf, format=fmt)
    except (OSError, KeyError): buf = io.BytesIO(); im.convert('L').save(buf, format=fmt)  # a mode this format cannot store
    return buf.getvalue()

def forged(w, h):
    "A PNG header claiming `w`×`h` pixels"
    b = bytearray(png_bytes(1, 1, 'L', 'PNG', 0))
    b[16:24] = w.to_bytes(4, 'big') + h.to_bytes(4, 'big'); b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, 'big')
    return bytes(b)

IMAGE_BYTES = st.one_of(
    st.builds(png_bytes, st.sampled_from([28, 27, 1, 56]), st.sampled_from([28, 29, 1]), st.sampled_from(['L', 'RGB', 'P', '1', 'I', 'LA']),
              st.sampled_from(['PNG', 'PNG', 'JPEG', 'GIF', 'BMP']), st.integers(0, 100)),
    st.builds(forged, st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)),
    st.binary(max_size=200))

@FAST
@given(content=IMAGE_BYTES, cut=st.sampled_from([None, 8, 33, 0.5, 0.95]))
def test_read_digit_valid_or_documented_error(tmp_path, content, cut):
    fn = tmp_path/'d.png'
    fn.write_bytes(content[:int(len(content)*cut) if isinstance(cut, float) else cut])
    try: a = data.read_digit(fn)
    except ValueError as e:
        assert str(fn) in str(e)
        return
    assert a.shape == (28, 28) and a.dtype == np.uint8


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(odd=st.dictionaries(st.sampled_from(['train/3', 'train/7', 'valid/3', 'valid/7']), IMAGE_BYTES, max_size=2),
       names=st.lists(st.text(alphabet='ab.-_ é', min_size=1, max_size=8).filter(lambda n: n not in ('.', '..')), max_size=2), cache=st.booleans())
def test_load_stacks_valid_or_documented_error(tmp_path_factory, odd, names, cache):
    root = tmp_path_factory.mktemp('d')
    for k in ['train/3', 'train/7', 'valid/3', 'valid/7']:
        (root/k).mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(root/k/'0.png')
    for (k, b), name in zip(odd.items(), names + ['x.png']*2): (root/k/name).write_bytes(b)
    for _ in range(2):  # the second time from the cache, if one was written
        try: stacks = data.load_stacks(root, cache=cache)
        except ValueError: return
        assert all(v.dtype == torch.uint8 and v.shape[1:] == (28, 28) and len(v) >= 1 for v in stacks.values())


MEMBER_NAMES = st.sampled_from(['m', 'm/train', 'm/train/3', 'm/train/3/0.png', 'm/valid/7/0.png', './train/3/0.png', 'train/7/1.png',
                                'valid', 'x/y.png', '../evil', '/abs', 'm/../../evil', 'm/link', '.', './', 'labels.csv'])
MEMBERS = st.lists(st.tuples(MEMBER_NAMES, st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                                            tarfile.FIFOTYPE])), min_size=0, max_size=8)

@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=MEMBERS, cut=st.sampled_from([None, 0, 10, 0.5, 0.9]), again=st.booleans())
def test_extract_tgz_inside_its_folder_or_documented_error(tmp_path_factory, members, cut, again):
    root = tmp_path_factory.mktemp('t')
    dest = root/'dest'; dest.mkdir()
    (root/'outside.txt').write_text('keep')
    fn = dest/'a.tgz'
    with tarfile.open(fn, 'w:gz') as tf:
        for name, kind in members:
            m = tarfile.TarInfo(name); m.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE): m.linkname = '../outside.txt'
            payload = png_bytes(28, 28, 'L', 'PNG', 0) if kind == tarfile.REGTYPE else b''
            m.size = len(payload)
            tf.addfile(m, io.BytesIO(payload) if payload else None)
    if cut is not None:
        b = fn.read_bytes(); fn.write_bytes(b[:int(len(b)*cut) if isinstance(cut, float) else cut])
    for _ in range(2 if again else 1):
        try: out = data.extract_tgz(fn)
        except ValueError: out = None
        if out is not None: assert out.parent == dest and out.is_dir()
    assert sorted(p.name for p in root.iterdir()) == ['dest', 'outside.txt'] and (root/'outside.txt').read_text() == 'keep'
    assert not [p for p in dest.iterdir() if '.partial-' in p.name]  # nothing half-done left behind


THREE = draw_digit(3, (120, 120), mode='L')

@FAST
@given(pair=st.lists(st.sampled_from('0123456789'), min_size=2, max_size=2, unique=True), bias=st.floats(-12, 12).filter(lambda b: abs(b) > 1e-3))
def test_any_digit_pair_reports_the_printed_labels_probability(pair, bias):
    "Issue 22, case 1: for any two-digit model, the label is the likelier digit and `prob` is the model's probability of that label"
    from mnist_basics.linear import linear1
    from mnist_basics.predict import predict
    digits = tuple(sorted(pair))
    r = predict(('linear', linear1, dict(weights=torch.zeros(784, 1), bias=torch.tensor([bias])), dict(digits=list(digits))), THREE)[0]
    p_first = 1/(1 + np.exp(-np.float32(bias)))  # the sigmoid of the score: the probability of the first digit
    assert r['label'] == int(digits[0] if bias > 0 else digits[1])
    assert r['prob'] == pytest.approx(max(p_first, 1 - p_first), abs=1e-6) and r['prob'] >= 0.5
    probs = {3: r['prob_3'], 7: 1 - r['prob_3']} if digits == ('3', '7') else r['probs']
    assert probs == {int(digits[0]): pytest.approx(p_first, abs=1e-6), int(digits[1]): pytest.approx(1 - p_first, abs=1e-6)}
    assert probs[r['label']] == r['prob']


@settings(max_examples=60, deadline=None, database=None)
@given(total=st.integers(1, 300), lr=st.floats(1e-4, 1.), pct=st.sampled_from([0.25, 0.1, 0.3, 0.5]))
def test_one_cycle_schedules_any_step_count(total, lr, pct):
    "Issue 22, case 3: the CNNs' schedule gives every step a learning rate in (0, lr], reaching near the peak, at any step count"
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=lr)
    sched, lrs = data.one_cycle(opt, lr, total, pct), []
    for _ in range(total): lrs.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
    assert len(lrs) == total and all(0 <= x <= lr*(1 + 1e-9) for x in lrs) and max(lrs) >= 0.9*lr and lrs[0] > 0


@settings(max_examples=200, deadline=None, database=None)
@given(name=st.text(st.characters(blacklist_characters='/\x00', blacklist_categories=['Cs']), min_size=1, max_size=40))
def test_any_file_name_prints_on_one_line(name):
    "Issue 22, case 13: `shown` keeps any file name on one line (however Python splits lines), unchanged unless it has a control character"
    s = data.shown(Path('/tmp')/name)
    assert len(s.splitlines()) == 1 and '\n' not in s
    import unicodedata
    if not any(unicodedata.category(c) in ('Cc', 'Zl', 'Zp') for c in name): assert s == f'/tmp/{name}'  # no control character, no line break
    else: assert eval(s) == f'/tmp/{name}'  # quoted as Python would: the exact name can be read back


@settings(max_examples=40, deadline=None, database=None)
@given(x=st.integers(100, 300), lean=st.integers(-40, 40), top=st.integers(20, 100), width=st.integers(8, 40))
def test_any_upright_stroke_passes_the_digit_check(x, lean, top, width):
    "Issue 22, case 15: a pen stroke written upright, as a 1 is, in any place, lean and pen width, is not doubted"
    from mnist_basics.predict import digit_doubt, draw_strokes
    assert digit_doubt(prepare_digit(draw_strokes([[(x + lean, top), (x - lean, top + 280)]], width=width))) is None

@settings(max_examples=40, deadline=None, database=None)
@given(w=st.integers(60, 380), h=st.integers(60, 380))
def test_any_filled_box_wider_than_a_stroke_is_doubted(w, h):
    "Issue 22, case 15: a solid rectangle is doubted unless it is narrow and upright like a 1 (at most 0.4 as wide as tall)"
    from mnist_basics.predict import digit_doubt
    a = np.full((400, 400), 255, np.uint8); a[200 - h//2:200 + (h + 1)//2, 200 - w//2:200 + (w + 1)//2] = 0
    doubt = digit_doubt(prepare_digit(Image.fromarray(a)))
    if w > 0.45*h: assert doubt is not None and 'fills its box' in doubt
    elif w < 0.35*h: assert doubt is None  # an upright bar: what a 1 looks like
