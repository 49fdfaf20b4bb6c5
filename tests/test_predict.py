"Predicting your own digit: drawn 3s and 7s of many sizes, colours and formats; bad pictures; bad model files; the CLI."
import io, json, os, re, subprocess, sys, time, zlib
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from mnist_basics.predict import (MAX_PIXELS, centre_of_mass, draw_digit, mnist_predict, open_image, predict,
                                  prepare_digit)
from mnist_basics.net import net_params, linear_params
from mnist_basics.train import train, save_model, load_model

from conftest import REAL_SAMPLE

CMD = str(Path(sys.executable).parent/'mnist_predict')

pytestmark = pytest.mark.real_sample  # trains on the real sample (see conftest.isolated_env)

@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    "`simple_net` trained once for this module on the real sample (a few seconds), saved as a model file"
    if not (REAL_SAMPLE/'train').is_dir(): pytest.fail(f'the real MNIST_SAMPLE is not at {REAL_SAMPLE}')
    res = train('net', log=None, data=REAL_SAMPLE)
    assert res['valid_accuracy'] > 0.975
    return save_model(tmp_path_factory.mktemp('model')/'net.pt', 'net', res['params'], accuracy=res['valid_accuracy'])

@pytest.fixture(scope='module')
def loaded(model_file): return load_model(model_file)

@pytest.fixture(scope='module')
def three_png(tmp_path_factory):
    "A plain black-on-white 3, 600×400 PNG"
    fn = tmp_path_factory.mktemp('three')/'three.png'
    draw_digit(3).save(fn)
    return fn

def shifted_diff(a, b):
    "Mean absolute difference of two prepared digits, allowing `b` a whole-pixel shift (centring rounds to whole pixels)"
    a, b = a.view(28, 28), b.view(28, 28)
    return min((a - b.roll((dr, dc), (0, 1))).abs().mean().item() for dr in (-1, 0, 1) for dc in (-1, 0, 1))

def check_prepared(x):
    "`x` looks like an MNIST digit: 784 floats in [0, 1], brightest 1, ink within 20 pixels, centred by mass"
    assert x.shape == (784,) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() == 1
    im = x.view(28, 28)
    rows, cols = torch.nonzero(im.sum(1))[:, 0], torch.nonzero(im.sum(0))[:, 0]
    assert 17 <= max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) <= 20
    r, c = centre_of_mass(im.numpy())
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5, (r, c)

# ---- drawn digits: every size, colour scheme and format gives the right label ----

def _to_16bit(im): return Image.fromarray(np.asarray(im.convert('L'), dtype=np.uint16)*257)
def _to_palette(im): return im.convert('P', palette=Image.Palette.ADAPTIVE, colors=16)

STYLES = {  # name: (mode, ink, paper, convert after drawing, formats)
    'black_on_white': ('RGB', 'black', 'white', None, ('PNG', 'JPEG')),
    'white_on_black': ('L', 255, 0, None, ('PNG', 'JPEG')),
    'blue_on_yellow': ('RGB', (30, 60, 200), (250, 230, 60), None, ('PNG', 'JPEG')),
    'dim_grey_paper': ('L', 30, 110, None, ('PNG', 'JPEG')),  # a photo in poor light: the paper is darker than mid-grey
    'black_on_transparent': ('RGBA', (0, 0, 0, 255), (0, 0, 0, 0), None, ('PNG',)),
    'white_on_transparent': ('RGBA', (255, 255, 255, 255), (255, 255, 255, 0), None, ('PNG',)),
    'red_on_white_half_alpha': ('RGBA', (200, 0, 0, 255), (255, 255, 255, 128), None, ('PNG',)),
    'grey_alpha_LA': ('LA', (0, 255), (255, 0), None, ('PNG',)),
    'palette': ('RGB', (0, 90, 0), (240, 240, 240), _to_palette, ('PNG',)),
    'sixteen_bit': ('L', 0, 255, _to_16bit, ('PNG',)),
}
SIZES = [(64, 64), (300, 200), (1200, 1600)]
CASES = [(size, style, fmt) for size in SIZES for style, v in STYLES.items() for fmt in v[-1]]

@pytest.mark.parametrize('size, style, fmt', CASES, ids=[f'{s[0]}x{s[1]}-{st}-{f}' for s, st, f in CASES])
def test_drawn_digits_are_prepared_and_labelled(tmp_path, model_file, size, style, fmt):
    mode, ink, paper, post, _ = STYLES[style]
    files = []
    for d in (3, 7):
        im = draw_digit(d, size, ink=ink, paper=paper, mode=mode)
        if post: im = post(im)
        fn = tmp_path/f'{d}.{fmt.lower().replace("jpeg", "jpg")}'
        im.save(fn, format=fmt, **(dict(quality=85) if fmt == 'JPEG' else {}))
        files.append(fn)
    with Image.open(files[0]) as saved: assert saved.mode == im.mode and saved.format == fmt
    for fn in files: check_prepared(prepare_digit(fn))
    res = predict(model_file, files)
    assert [r['label'] for r in res] == [3, 7], res
    assert [r['file'] for r in res] == [str(f) for f in files]
    for r in res:
        assert 0.5 < r['prob'] <= 1 and 0 <= r['prob_3'] <= 1
        assert r['prob'] == pytest.approx(r['prob_3'] if r['label'] == 3 else 1 - r['prob_3'])

@pytest.mark.parametrize('width', [0.03, 0.15])
@pytest.mark.parametrize('centre', [(0.5, 0.5), (0.25, 0.3), (0.8, 0.7)])
def test_thin_thick_and_off_centre(loaded, width, centre):
    "A fine pen or a marker, the digit small and anywhere on a large page: same answer"
    ims = [draw_digit(d, (1200, 900), width=width, height=0.3, centre=centre) for d in (3, 7)]
    for im in ims: check_prepared(prepare_digit(im))
    assert [r['label'] for r in predict(loaded, ims)] == [3, 7]

def test_polarity_and_colour_do_not_matter(three_png):
    x = prepare_digit(three_png)
    assert torch.allclose(prepare_digit(draw_digit(3, ink='white', paper='black')), x, atol=1e-5)
    assert torch.allclose(prepare_digit(draw_digit(3, ink=(30, 60, 200), paper=(250, 230, 60))), x, atol=1e-5)
    assert torch.allclose(prepare_digit(draw_digit(3, ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode='RGBA')), x, atol=1e-5)
    assert torch.allclose(prepare_digit(draw_digit(3, ink=(255, 255, 255, 255), paper=(0, 0, 0, 0), mode='RGBA')), x, atol=1e-5)
    assert shifted_diff(prepare_digit(draw_digit(3, (1200, 800))), x) < 0.02  # twice as large

def test_jpeg_close_to_png(tmp_path, three_png):
    draw_digit(3).save(tmp_path/'three.jpg', quality=70)
    assert shifted_diff(prepare_digit(tmp_path/'three.jpg'), prepare_digit(three_png)) < 0.03

def test_uneven_light_and_dust(loaded, three_png):
    "Paper lit unevenly (brighter to the right and bottom), noise and a speck of dust: the same digit, right label"
    x = prepare_digit(three_png)
    rng = np.random.default_rng(0)
    for d in (3, 7):
        g = np.asarray(draw_digit(d, (600, 400), mode='L'), dtype=np.float32)/255
        light = np.linspace(0.45, 0.95, 600)[None, :]*np.linspace(0.8, 1, 400)[:, None]
        photo = (g*light + rng.normal(0, 0.015, g.shape)).clip(0, 1)
        photo[20:23, 30:33] = 0  # dust
        im = Image.fromarray((photo*255).astype(np.uint8))
        p = prepare_digit(im)
        check_prepared(p)
        if d == 3: assert shifted_diff(p, x) < 0.05
        assert predict(loaded, im)[0]['label'] == d

def test_exif_rotation(tmp_path, loaded, three_png):
    "A phone stores the picture sideways with an EXIF orientation tag: it is turned upright first"
    exif = Image.Exif(); exif[0x0112] = 6  # 'rotate 90° clockwise to view'
    for d in (3, 7):
        draw_digit(d).transpose(Image.Transpose.ROTATE_90).save(tmp_path/f'{d}.jpg', exif=exif, quality=90)
        with Image.open(tmp_path/f'{d}.jpg') as saved: assert saved.size == (400, 600)
    assert shifted_diff(prepare_digit(tmp_path/'3.jpg'), prepare_digit(three_png)) < 0.03
    assert [r['label'] for r in predict(loaded, [tmp_path/'3.jpg', tmp_path/'7.jpg'])] == [3, 7]

def test_in_memory_images_and_arguments(loaded, model_file, three_png):
    im = draw_digit(7)
    assert predict(loaded, im)[0]['file'] is None and predict(loaded, im)[0]['label'] == 7
    assert predict(model_file, str(three_png))[0]['file'] == str(three_png)  # one path, as str
    assert predict(loaded, []) == []
    assert im.size == (600, 400) and im.mode == 'RGB'  # the caller's image is left alone
    assert predict(str(model_file), [three_png]) == predict(loaded, [three_png])

def test_real_mnist_digits_change_little(loaded):
    "An MNIST digit is already prepared: preparing it again changes it little, and the model does as well on it"
    files = sorted((REAL_SAMPLE/'valid'/'3').glob('*.png'))[:100] + sorted((REAL_SAMPLE/'valid'/'7').glob('*.png'))[:100]
    truth = torch.tensor([3]*100 + [7]*100)
    def pixels(f):
        with Image.open(f) as im: return torch.from_numpy(np.asarray(im, dtype=np.float32)/255).view(784)
    orig = torch.stack([pixels(f) for f in files])
    again = torch.stack([prepare_digit(f) for f in files])
    assert (again - orig).abs().mean() < 0.03
    _, model, params, _ = loaded
    with torch.no_grad(): acc_orig = ((model(orig, **params).view(-1) > 0) == (truth == 3)).float().mean().item()
    acc_again = (torch.tensor([r['label'] for r in predict(loaded, files)]) == truth).float().mean().item()
    assert acc_again >= acc_orig - 0.01, (acc_orig, acc_again)

# ---- bad pictures: clear errors that name the file ----

def forged_png(fn, w, h):
    "A 1×1 PNG whose header (IHDR) claims `w`×`h` pixels, with a valid checksum"
    buf = io.BytesIO(); Image.new('L', (1, 1)).save(buf, 'PNG'); b = bytearray(buf.getvalue())
    assert b[12:16] == b'IHDR'
    b[16:24] = w.to_bytes(4, 'big') + h.to_bytes(4, 'big')
    b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, 'big')
    Path(fn).write_bytes(b)
    return Path(fn)

@pytest.mark.parametrize('w, h, shown', [(6000, 5000, '6000×5000 = 30,000,000 pixels'),  # our limit
                                         (10_000, 10_000, '100,000,000 pixels'),  # PIL's DecompressionBombWarning
                                         (20_000, 20_000, '400,000,000 pixels')])  # PIL's DecompressionBombError
def test_huge_picture_refused_before_decoding(tmp_path, w, h, shown):
    fn = forged_png(tmp_path/'huge.png', w, h)
    if w*h <= Image.MAX_IMAGE_PIXELS:
        with Image.open(fn) as im: assert im.size == (w, h)  # the forged header reads as valid
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e: prepare_digit(fn)
    assert time.perf_counter() - t0 < 0.5
    msg = str(e.value)
    assert str(fn) in msg and shown in msg and 'too large' in msg
    assert MAX_PIXELS == 25_000_000 and 'the limit is MAX_PIXELS = 25,000,000 pixels' in msg

def test_real_file_just_over_the_limit(tmp_path):
    fn = tmp_path/'big.png'
    Image.new('1', (5001, 5000)).save(fn)  # 25,005,000 pixels, a few kilobytes
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r'5001×5000 = 25,005,000 pixels.*MAX_PIXELS = 25,000,000'): prepare_digit(fn)
    assert time.perf_counter() - t0 < 0.5
    with pytest.raises(ValueError, match='the image is too large'): prepare_digit(Image.new('1', (5001, 5000)))

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'image file not found: {re.escape(str(tmp_path))}/nine.png'):
        prepare_digit(tmp_path/'nine.png')

@pytest.mark.parametrize('name, content', [('random.png', os.urandom(2000)), ('notes.jpg', b'just some text\n'*20),
                                           ('empty.png', b'')])
def test_not_an_image(tmp_path, name, content):
    (tmp_path/name).write_bytes(content)
    with pytest.raises(ValueError, match=f'{re.escape(str(tmp_path/name))} is not an image.*expected a PNG or JPEG'):
        prepare_digit(tmp_path/name)

def test_other_format_truncated_and_folder(tmp_path, three_png):
    draw_digit(3).save(tmp_path/'three.gif')
    with pytest.raises(ValueError, match='expected a PNG or JPEG'): prepare_digit(tmp_path/'three.gif')
    (tmp_path/'cut.png').write_bytes(three_png.read_bytes()[:300])
    with pytest.raises(ValueError, match=r'cut.png could not be decoded as a PNG or JPEG'): prepare_digit(tmp_path/'cut.png')
    draw_digit(3).save(tmp_path/'cut.jpg'); (tmp_path/'cut.jpg').write_bytes((tmp_path/'cut.jpg').read_bytes()[:1000])
    with pytest.raises(ValueError, match=r'cut.jpg could not be decoded'): prepare_digit(tmp_path/'cut.jpg')
    with pytest.raises(ValueError, match='is not a file'): prepare_digit(tmp_path)

@pytest.mark.parametrize('mode, colour, fmt', [('RGB', 'white', 'PNG'), ('L', 0, 'PNG'), ('RGB', 'white', 'JPEG'),
                                               ('RGBA', (0, 0, 0, 0), 'PNG'), ('L', 128, 'JPEG')])
def test_blank_picture_has_no_ink(tmp_path, mode, colour, fmt):
    fn = tmp_path/f'blank.{fmt.lower()}'
    Image.new(mode, (300, 200), colour).save(fn, format=fmt)
    with pytest.raises(ValueError, match=f'{re.escape(str(fn))} has no ink'): prepare_digit(fn)

def test_shading_alone_is_not_ink(tmp_path):
    g = (np.linspace(0.5, 1, 300)[None, :]*np.linspace(0.8, 1, 200)[:, None]*255).astype(np.uint8)
    with pytest.raises(ValueError, match='no ink'): prepare_digit(Image.fromarray(g))

def test_predict_stops_at_a_bad_picture(tmp_path, model_file, three_png):
    with pytest.raises(FileNotFoundError, match='nine.png'): predict(model_file, [three_png, tmp_path/'nine.png'])

# ---- bad model files: refused with clear errors, and a malicious pickle never runs ----

class Evil:
    "Unpickling this runs a shell command (how a malicious 'model file' would attack)"
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def bad_model_files(d, good_params):
    "name -> (file, expected exception, message pattern)"
    d = Path(d)
    save_model(d/'small.pt', 'net', net_params(n_hidden=10))  # another architecture, saved under the name 'net'
    save_model(d/'swapped.pt', 'linear', good_params)  # net tensors, saved as 'linear'
    (d/'junk.pt').write_bytes(os.urandom(3000))
    torch.save(Evil(d/'pwned'), d/'evil.pt')
    torch.save(dict(format='mnist_basics', model='net', params=Evil(d/'pwned'), meta={}), d/'evil_dict.pt')
    torch.save([1, 2, 3], d/'list.pt')  # a valid, harmless pickle that is not a state dict
    torch.save({'w1': torch.zeros(784, 30)}, d/'bare_state_dict.pt')
    torch.save(dict(format='mnist_basics', model='net', params=good_params), d/'no_meta.pt')
    save_model(d/'nan.pt', 'net', {k: torch.full_like(v, float('nan')) for k, v in good_params.items()})
    not_model = 'is not a mnist_basics model file'
    return {'small.pt': (ValueError, 'the tensors do not fit model'), 'swapped.pt': (ValueError, 'do not fit model'),
            'junk.pt': (ValueError, not_model), 'evil.pt': (ValueError, not_model), 'evil_dict.pt': (ValueError, not_model),
            'list.pt': (ValueError, not_model), 'bare_state_dict.pt': (ValueError, not_model),
            'nan.pt': (ValueError, r"\(model 'net'\) returned scores that are not finite numbers"),
            'missing.pt': (FileNotFoundError, 'model file not found')}

def test_bad_model_files_refused(tmp_path, loaded, three_png):
    for name, (exc, pattern) in bad_model_files(tmp_path, loaded[2]).items():
        with pytest.raises(exc, match=pattern) as e: predict(tmp_path/name, [three_png])
        assert str(tmp_path/name) in str(e.value), (name, str(e.value))
    assert not (tmp_path/'pwned').exists()  # the malicious pickle's command never ran
    assert predict(tmp_path/'no_meta.pt', [three_png])[0]['label'] == 3  # meta is optional: a bare save still loads

def test_any_model_in_MODELS(monkeypatch, tmp_path, three_png, loaded):
    "predict relies only on the convention `scores = model(x, **params)`, N×784 in, positive score for 3"
    import mnist_basics.net as net
    _, simple, params, _ = loaded
    def flat(xb, w1, b1, w2, b2, extra): return simple(xb, w1=w1, b1=b1, w2=w2, b2=b2) + 0*extra.sum()
    def flat_params(std=1.0): return {k: torch.zeros_like(v) for k, v in params.items()} | dict(extra=torch.zeros(3))
    def broken(xb, w): return xb@w  # w has the wrong shape for x: a RuntimeError inside the model
    def too_few(xb, w): return w[:1]  # one score, whatever the number of images
    monkeypatch.setitem(net.MODELS, 'flat', (flat, flat_params))
    monkeypatch.setitem(net.MODELS, 'broken', (broken, lambda std=1.0: dict(w=torch.zeros(5, 1))))
    monkeypatch.setitem(net.MODELS, 'too_few', (too_few, lambda std=1.0: dict(w=torch.zeros(5, 1))))
    save_model(tmp_path/'flat.pt', 'flat', {k: v.detach() for k, v in params.items()} | dict(extra=torch.ones(3)))
    res = predict(tmp_path/'flat.pt', [three_png, draw_digit(7)])
    assert [r['label'] for r in res] == [3, 7]
    save_model(tmp_path/'broken.pt', 'broken', dict(w=torch.zeros(5, 1)))
    with pytest.raises(ValueError, match=r"broken.pt \(model 'broken'\) could not score the images"): predict(tmp_path/'broken.pt', three_png)
    save_model(tmp_path/'too_few.pt', 'too_few', dict(w=torch.zeros(5, 1)))
    with pytest.raises(ValueError, match='returned 1 scores for 2 images'): predict(tmp_path/'too_few.pt', [three_png, three_png])

def test_cnn_model_file(tmp_path, three_png):
    "The CNN registered in MODELS by mnist_basics.cnn (one epoch is enough for clear drawings)"
    import mnist_basics.net as net
    assert 'cnn' in net.MODELS  # registered by mnist_basics.cnn, imported by mnist_basics.train: a regression, not a skip
    res = train('cnn', epochs=1, log=None, data=REAL_SAMPLE)
    fn = save_model(tmp_path/'cnn.pt', 'cnn', res['params'])
    ims = [draw_digit(d, size, ink=ink, paper=paper) for d in (3, 7) for size in SIZES
           for ink, paper in (('black', 'white'), ('white', 'black'), ((30, 60, 200), (250, 230, 60)))]
    assert [r['label'] for r in predict(fn, ims)] == [3]*9 + [7]*9
    save_model(tmp_path/'cnn_as_net.pt', 'net', res['params'])
    with pytest.raises(ValueError, match="do not fit model 'net'"): predict(tmp_path/'cnn_as_net.pt', three_png)

# ---- the command ----

def run_cli(capsys, images, **kwargs):
    "Call mnist_predict in-process; (exit code or None, stdout, stderr)"
    code = None
    try: mnist_predict([str(i) for i in images], **kwargs)
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err

def test_cli_text_output(capsys, tmp_path, model_file):
    files = [tmp_path/'a3.png', tmp_path/'b7.jpg']
    draw_digit(3, (300, 200)).save(files[0]); draw_digit(7, (300, 200)).save(files[1])
    code, out, err = run_cli(capsys, files, model=str(model_file))
    assert code is None and err == ''
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf'{re.escape(str(files[0]))}: 3 \(probability (0\.[5-9]\d|1\.00)\)', lines[0]), lines[0]
    assert re.fullmatch(rf'{re.escape(str(files[1]))}: 7 \(probability (0\.[5-9]\d|1\.00)\)', lines[1]), lines[1]

def test_cli_errors_exit_2(capsys, tmp_path, loaded, model_file, three_png):
    (tmp_path/'blank.png').write_bytes(b'')
    Image.new('L', (50, 50), 255).save(tmp_path/'white.png')
    forged_png(tmp_path/'huge.png', 30000, 30000)
    cases = [([three_png], {}, 'no model given: use --model FILE'),
             ([three_png, tmp_path/'nine.png'], dict(model=str(model_file)), 'image file not found'),
             ([tmp_path/'white.png'], dict(model=str(model_file)), 'white.png has no ink'),
             ([tmp_path/'blank.png'], dict(model=str(model_file)), 'expected a PNG or JPEG'),
             ([tmp_path/'huge.png'], dict(model=str(model_file)), 'the limit is MAX_PIXELS = 25,000,000 pixels')]
    for name, (exc, pattern) in bad_model_files(tmp_path, loaded[2]).items():
        cases.append(([three_png], dict(model=str(tmp_path/name)), pattern))
    for images, kw, pattern in cases:
        code, out, err = run_cli(capsys, images, **kw)
        assert code == 2, (images, kw, err)
        assert err.startswith('mnist_predict: error: ') and re.search(pattern, err), err
        assert out == ('' if len(images) == 1 else f'{three_png}: 3 (probability 1.00)\n') and 'Traceback' not in err  # good pictures are still labelled
    assert not (tmp_path/'pwned').exists()

def test_cli_json_subprocess(tmp_path, model_file):
    "The real console script: one JSON object per line, one line per picture, in the order given"
    files = []
    for i, d in enumerate((7, 3, 3)):
        fn = tmp_path/f'{i}_{d}.{"png" if i else "jpg"}'
        draw_digit(d, (400, 500), ink=(20, 20, 120), paper=(245, 240, 225)).save(fn)
        files.append(fn)
    r = subprocess.run([CMD, '--model', str(model_file), *map(str, files), '--json'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert [(row['file'], row['label']) for row in rows] == [(str(files[0]), 7), (str(files[1]), 3), (str(files[2]), 3)]
    for row in rows: assert set(row) == {'file', 'label', 'prob', 'prob_3', 'looks_like_digit', 'doubt'} and row['prob'] > 0.5

def test_cli_bad_input_subprocess(tmp_path, model_file):
    (tmp_path/'photo.jpg').write_text('this is not a JPEG')
    r = subprocess.run([CMD, '--model', str(model_file), str(tmp_path/'photo.jpg')], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.startswith(f'mnist_predict: error: {tmp_path/"photo.jpg"} is not an image'), r.stderr
    assert 'Traceback' not in r.stderr
    r = subprocess.run([CMD, '--model', str(model_file)], capture_output=True, text=True)  # no pictures: argparse's own error
    assert r.returncode == 2 and 'mnist_predict: error: the following arguments are required: images' in r.stderr
