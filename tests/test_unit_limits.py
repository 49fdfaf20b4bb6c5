"Unit tests of the safety limits: picture size in `predict`, archive members in `extract_tgz`, image checks in `read_digit`."
import io, os, re, stat, tarfile, zlib
from pathlib import Path
import numpy as np, pytest
from PIL import Image
import mnist_basics.data as data
from mnist_basics.predict import MAX_PIXELS, open_image

from conftest import write_png, digit_pixels

# ---- the picture-size limit, at its boundary ----

def forged_png(fn, w, h):
    "A 1×1 PNG whose header claims `w`×`h` pixels (valid checksum): its size is known, its pixels cannot be decoded"
    buf = io.BytesIO(); Image.new('L', (1, 1)).save(buf, 'PNG'); b = bytearray(buf.getvalue())
    b[16:24] = w.to_bytes(4, 'big') + h.to_bytes(4, 'big')
    b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, 'big')
    Path(fn).write_bytes(b)
    return Path(fn)

def too_big(name, detail):
    return f'{name} is too large: {detail}; the limit is MAX_PIXELS = 25,000,000 pixels (25 megapixels): shrink the picture first'

def test_max_pixels_is_25_megapixels():
    assert MAX_PIXELS == 25_000_000

def test_file_at_the_limit_is_decoded_one_pixel_more_is_not(tmp_path):
    "5000×5000 passes the size check (and fails later, decoding the forged pixels); 25,000,001 pixels is refused first"
    at = forged_png(tmp_path/'at.png', 5000, 5000)
    with pytest.raises(ValueError, match=f'^{re.escape(str(at))} could not be decoded'): open_image(at)
    over = forged_png(tmp_path/'over.png', 25_000_001, 1)
    with pytest.raises(ValueError) as e: open_image(over)
    assert str(e.value) == too_big(over, '25000001×1 = 25,000,001 pixels')

def test_image_objects_at_the_limit(tmp_path):
    "In memory: 25,000,000 pixels are accepted, 25,000,001 refused (named by file name if it has one)"
    im = open_image(Image.new('1', (5000, 5000)))
    assert im.size == (5000, 5000)
    with pytest.raises(ValueError) as e: open_image(Image.new('1', (25_000_001, 1)))
    assert str(e.value) == too_big('the image', '25000001×1 = 25,000,001 pixels')
    fn = forged_png(tmp_path/'big.png', 5001, 5000)
    with Image.open(fn) as opened, pytest.raises(ValueError) as e: open_image(opened)
    assert str(e.value) == too_big(fn, '5001×5000 = 25,005,000 pixels')

@pytest.mark.parametrize('w, h', [(10_000, 10_000), (20_000, 20_000)], ids=['bomb-warning', 'bomb-error'])
def test_pils_own_limits_read_as_ours(tmp_path, w, h):
    "Above PIL's decompression-bomb limits PIL refuses first: the same message, with the count PIL gives"
    fn = forged_png(tmp_path/'huge.png', w, h)
    with pytest.raises(ValueError) as e: open_image(fn)
    assert str(e.value) == too_big(fn, f'{w*h:,} pixels')

def test_a_pil_limit_message_without_a_count_is_passed_on(tmp_path, monkeypatch):
    "Should PIL's message not give the number of pixels, ours quotes it"
    def bomb(fn, formats): raise Image.DecompressionBombError('some other wording')
    monkeypatch.setattr(Image, 'open', bomb)
    with pytest.raises(ValueError) as e: open_image(forged_png(tmp_path/'huge.png', 10, 10))
    assert str(e.value) == too_big(tmp_path/'huge.png', 'some other wording')

def test_other_warnings_while_opening_are_not_errors(tmp_path, monkeypatch):
    "Only PIL's decompression-bomb warning becomes an error: any other warning while reading the header is let through"
    fn = Image.new('L', (8, 8)).save(tmp_path/'ok.png') or tmp_path/'ok.png'
    real = Image.open
    def warns(f, formats):
        import warnings; warnings.warn('an odd chunk', UserWarning); return real(f, formats=formats)
    monkeypatch.setattr(Image, 'open', warns)
    with pytest.warns(UserWarning, match='an odd chunk'): assert open_image(fn).size == (8, 8)

def test_open_image_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e: open_image(tmp_path/'nine.png')
    assert str(e.value) == f'image file not found: {tmp_path/"nine.png"}'
    with pytest.raises(ValueError) as e: open_image(tmp_path)
    assert str(e.value) == f'{tmp_path} is not a file: expected a PNG or JPEG image'
    Image.new('L', (8, 8)).save(tmp_path/'x.gif')
    with pytest.raises(ValueError) as e: open_image(tmp_path/'x.gif')
    assert str(e.value) == f'{tmp_path/"x.gif"} is not an image this can read: expected a PNG or JPEG file'

def test_open_image_turns_a_phone_picture_upright(tmp_path):
    "An EXIF orientation tag is applied, to files and to images in memory"
    exif = Image.Exif(); exif[0x0112] = 6
    Image.new('L', (40, 30), 255).save(tmp_path/'side.jpg', exif=exif)
    assert open_image(tmp_path/'side.jpg').size == (30, 40)
    with Image.open(tmp_path/'side.jpg') as im: assert open_image(im).size == (30, 40)

# ---- archive members ----

def info(name, type=tarfile.REGTYPE):
    m = tarfile.TarInfo(name); m.type = type
    return m

@pytest.mark.parametrize('name', ['mnist/../../outside.txt', '../mnist', 'mnist/a/../../..', '/etc/passwd', '\\evil.txt',
                                  '//host/share'])
def test_members_that_would_land_outside_are_refused(name):
    with pytest.raises(ValueError) as e: data._check_members('a.tgz', [info('mnist'), info(name)])
    assert str(e.value) == f"a.tgz: unsafe archive member {name!r} would land outside the target folder; refusing to unpack"

def test_dotdot_inside_a_name_is_fine():
    "Only a `..` path part is unsafe, not two dots inside a name"
    assert data._check_members('a.tgz', [info('mnist'), info('mnist/a..b.png'), info('mnist/..x')]) == 'mnist'

@pytest.mark.parametrize('type, what', [(tarfile.SYMTYPE, 'is a link'), (tarfile.LNKTYPE, 'is a link'),
                                        (tarfile.FIFOTYPE, 'is not a file or folder'), (tarfile.CHRTYPE, 'is not a file or folder'),
                                        (tarfile.BLKTYPE, 'is not a file or folder')])
def test_links_and_devices_are_refused(type, what):
    with pytest.raises(ValueError) as e: data._check_members('a.tgz', [info('mnist', tarfile.DIRTYPE), info('mnist/x', type)])
    assert str(e.value) == f"a.tgz: archive member 'mnist/x' {what}; refusing to unpack"

def test_exactly_one_top_level_folder():
    "One top-level folder (a `.` entry aside) is its name; none or several are refused, listing at most five"
    assert data._check_members('a.tgz', [info('.', tarfile.DIRTYPE), info('mnist', tarfile.DIRTYPE), info('mnist/1.png')]) == 'mnist'
    for tops, shown in [([], []), (list('ab'), list('ab')), (list('gfedcba'), list('abcde'))]:
        with pytest.raises(ValueError) as e: data._check_members('a.tgz', [info(t) for t in tops])
        assert str(e.value) == ("a.tgz: expected one top-level folder in the archive (like mnist_sample/) or the folders train/ and "
                                f"valid/, found {shown or 'nothing'}")

def make_tgz(fn, members):
    "A .tgz of `members`: (name, bytes or None for a folder, mode)"
    with tarfile.open(fn, 'w:gz') as tf:
        for name, content, mode in members:
            m = tarfile.TarInfo(name); m.mode = mode
            if content is None: m.type = tarfile.DIRTYPE; tf.addfile(m)
            else: m.size = len(content); tf.addfile(m, io.BytesIO(content))
    return fn

def test_extract_tgz_unpacks_via_a_hidden_partial_folder_with_the_data_filter(tmp_path, monkeypatch):
    "Unpacked into `.mnist.partial-*` beside the target, then renamed; setuid and group/other write bits are dropped"
    fn = make_tgz(tmp_path/'a.tgz', [('mnist', None, 0o755), ('mnist/x.txt', b'hello', 0o6777)])
    seen, real = [], tarfile.TarFile.extractall
    def spy(self, path, *a, **kw): seen.append(Path(path)); return real(self, path, *a, **kw)
    monkeypatch.setattr(tarfile.TarFile, 'extractall', spy)
    assert data.extract_tgz(fn) == tmp_path/'mnist'
    (partial,) = seen
    assert partial.parent == tmp_path and partial.name.startswith('.mnist.partial-')
    assert (tmp_path/'mnist'/'x.txt').read_bytes() == b'hello'
    mode = stat.S_IMODE((tmp_path/'mnist'/'x.txt').stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH)
    assert sorted(os.listdir(tmp_path)) == ['a.tgz', 'mnist']
    assert data.extract_tgz(str(fn)) == tmp_path/'mnist' and len(seen) == 1  # the second time: reused, not unpacked

def test_extract_tgz_into_another_folder(tmp_path):
    fn = make_tgz(tmp_path/'a.tgz', [('mnist', None, 0o755), ('mnist/x.txt', b'hi', 0o644)])
    (tmp_path/'dest').mkdir()
    assert data.extract_tgz(fn, tmp_path/'dest') == tmp_path/'dest'/'mnist'
    assert (tmp_path/'dest'/'mnist'/'x.txt').read_bytes() == b'hi' and not (tmp_path/'mnist').exists()

def test_extract_tgz_refusals(tmp_path):
    "A missing archive, an empty one, an unsafe one: refused, nothing unpacked"
    with pytest.raises(FileNotFoundError) as e: data.extract_tgz(tmp_path/'no.tgz')
    assert str(e.value) == f'archive not found: {tmp_path/"no.tgz"}'
    empty = make_tgz(tmp_path/'empty.tgz', [])
    with pytest.raises(ValueError, match=r'expected one top-level folder in the archive \(like mnist_sample/\) or the folders train/ and valid/, found nothing$'):
        data.extract_tgz(empty)
    bad = make_tgz(tmp_path/'bad.tgz', [('mnist', None, 0o755), ('mnist/../../x.txt', b'x', 0o644)])
    with pytest.raises(ValueError, match=f"^{re.escape(str(bad))}: unsafe archive member"): data.extract_tgz(bad)
    assert sorted(os.listdir(tmp_path)) == ['bad.tgz', 'empty.tgz']

def test_extract_tgz_refuses_a_folder_and_a_foreign_folder_in_the_way(tmp_path):
    "Not a file: named; a folder of the target's name that it did not unpack: left alone, with what to do"
    with pytest.raises(ValueError) as e: data.extract_tgz(tmp_path)
    assert str(e.value) == f"{tmp_path} is a folder, not a .tgz archive"
    fn = make_tgz(tmp_path/'a.tgz', [('mnist', None, 0o755), ('mnist/x.txt', b'new', 0o644)])
    (tmp_path/'mnist').mkdir(); (tmp_path/'mnist'/'x.txt').write_text('mine')
    with pytest.raises(ValueError) as e: data.extract_tgz(fn)
    assert str(e.value) == (f"{fn}: cannot unpack it to {tmp_path/'mnist'}: a folder of that name is already there that was not "
                            "unpacked from an archive by mnist_basics; rename or remove that folder, or use it directly as the data folder")
    assert (tmp_path/'mnist'/'x.txt').read_text() == 'mine'

def test_extract_tgz_replaces_what_it_unpacked_from_an_older_archive(tmp_path):
    "A new archive of the same name: its folder replaces the one the old archive made; nothing else is left behind"
    fn = make_tgz(tmp_path/'a.tgz', [('mnist', None, 0o755), ('mnist/x.txt', b'old', 0o644)])
    target = data.extract_tgz(fn)
    make_tgz(fn, [('mnist', None, 0o755), ('mnist/y.txt', b'new', 0o644)])
    assert data.extract_tgz(fn) == target
    assert sorted(os.listdir(target)) == [data.SOURCE_NAME, 'y.txt'] and (target/'y.txt').read_bytes() == b'new'
    assert sorted(os.listdir(tmp_path)) == ['a.tgz', 'mnist']

def test_extract_tgz_of_a_folders_contents(tmp_path):
    "An archive of train/ and valid/ themselves (tar -C folder .) unpacks into a folder named after the archive"
    fn = make_tgz(tmp_path/'digits.tgz', [('./', None, 0o755), ('./train', None, 0o755), ('./train/x.txt', b'x', 0o644),
                                          ('./valid', None, 0o755)])
    target = data.extract_tgz(fn)
    assert target == tmp_path/'digits' and (target/'train'/'x.txt').read_bytes() == b'x' and (target/'valid').is_dir()

def test_extract_tgz_top_level_file_and_folder_of_one_name(tmp_path):
    "A top-level file `mnist` first and then a folder `mnist/`: not one top-level folder"
    fn = make_tgz(tmp_path/'a.tgz', [('mnist', b'a file', 0o644), ('mnist/x.txt', b'x', 0o644)])
    with pytest.raises(ValueError) as e: data.extract_tgz(fn)
    assert str(e.value) == f"{fn}: expected one top-level folder in the archive, found more"
    assert os.listdir(tmp_path) == ['a.tgz']

def test_a_lone_top_level_file_is_not_a_folder():
    with pytest.raises(ValueError) as e: data._check_members('a.tgz', [info('x.txt')])
    assert str(e.value) == ("a.tgz: expected one top-level folder in the archive (like mnist_sample/) or the folders train/ and "
                            "valid/, found ['x.txt']")

def test_extract_tgz_first_member_unsafe(tmp_path):
    "Even the first member, checked alone before anything else, is refused"
    bad = make_tgz(tmp_path/'bad.tgz', [('../x.txt', b'x', 0o644)])
    with pytest.raises(ValueError, match=f"^{re.escape(str(bad))}: unsafe archive member '../x.txt'"): data.extract_tgz(bad)
    assert os.listdir(tmp_path) == ['bad.tgz']

@pytest.mark.parametrize('kind', ['text', 'plain-tar'])
def test_extract_tgz_refuses_what_is_not_a_gzipped_tar(tmp_path, kind):
    fn = tmp_path/'a.tgz'
    if kind == 'text': fn.write_text('not an archive')
    else:
        with tarfile.open(fn, 'w') as tf: m = tarfile.TarInfo('mnist'); m.type = tarfile.DIRTYPE; tf.addfile(m)
    with pytest.raises(ValueError) as e: data.extract_tgz(fn)
    assert str(e.value).startswith(f"{fn}: not a readable .tgz archive (expected a gzip-compressed tar such as fastai's mnist_sample.tgz): ")
    assert os.listdir(tmp_path) == ['a.tgz']

def test_move_into_place(tmp_path):
    "The finished folder is renamed into place; if another run's folder is there already, theirs is kept"
    (tmp_path/'src').mkdir(); (tmp_path/'src'/'a').write_text('mine')
    data._move_into_place(tmp_path/'src', tmp_path/'dest')
    assert (tmp_path/'dest'/'a').read_text() == 'mine' and not (tmp_path/'src').exists()
    (tmp_path/'src').mkdir(); (tmp_path/'src'/'a').write_text('second')
    data._move_into_place(tmp_path/'src', tmp_path/'dest')
    assert (tmp_path/'dest'/'a').read_text() == 'mine'
    with pytest.raises(OSError): data._move_into_place(tmp_path/'gone', tmp_path/'nowhere')

# ---- read_digit ----

def test_read_digit_returns_the_pixels(tmp_path):
    px = digit_pixels(3)
    got = data.read_digit(write_png(tmp_path/'d.png', px))
    assert got.dtype == np.uint8 and np.array_equal(got, px)

@pytest.mark.parametrize('size', [(27, 28), (28, 27), (29, 28), (28, 29)])
def test_read_digit_size_is_exactly_28x28(tmp_path, size):
    fn = write_png(tmp_path/'d.png', size=size)
    with pytest.raises(ValueError) as e: data.read_digit(fn)
    assert str(e.value) == f'{fn}: expected a 28×28 image, found {size[0]}×{size[1]}'

def test_read_digit_refuses_other_formats_and_modes(tmp_path):
    fn = write_png(tmp_path/'d.png', fmt='BMP')
    with pytest.raises(ValueError) as e: data.read_digit(fn)
    assert str(e.value) == f'{fn}: expected a PNG image, found BMP'
    fn = write_png(tmp_path/'c.png', mode='RGB')
    with pytest.raises(ValueError) as e: data.read_digit(fn)
    assert str(e.value) == f"{fn}: expected an 8-bit grayscale image (mode 'L'), found mode 'RGB'"
    (tmp_path/'t.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=f'^{tmp_path}/t.png: not a readable PNG image \\('): data.read_digit(tmp_path/'t.png')

def test_read_digit_refuses_a_huge_picture_from_its_header(tmp_path):
    fn = forged_png(tmp_path/'huge.png', 20_000, 20_000)
    with pytest.raises(ValueError) as e: data.read_digit(fn)
    assert str(e.value).startswith(f"{fn}: expected a 28×28 image, found a far larger one (refused before decoding: ")

def test_read_digit_lets_other_warnings_through(tmp_path, monkeypatch):
    "Only PIL's decompression-bomb warning is an error: another warning while opening still gives the pixels"
    px, real = digit_pixels(5), Image.open
    fn = write_png(tmp_path/'d.png', px)
    def warns(f, *a, **kw):
        import warnings; warnings.warn('an odd chunk', UserWarning); return real(f, *a, **kw)
    monkeypatch.setattr(Image, 'open', warns)
    with pytest.warns(UserWarning, match='an odd chunk'): assert np.array_equal(data.read_digit(fn), px)

def test_open_image_header_cut_short(tmp_path):
    "A PNG cut off inside its header: named, with PIL's reason"
    fn = tmp_path/'cut.png'
    buf = io.BytesIO(); Image.new('L', (8, 8)).save(buf, 'PNG'); fn.write_bytes(buf.getvalue()[:20])
    with pytest.raises(ValueError) as e: open_image(fn)
    assert str(e.value).startswith(f"{fn} could not be read as a PNG or JPEG image (") and str(e.value).endswith(")")

# ---- issue 22: a top folder's name at the file system's limit, and one named like the archive ----

def test_extract_tgz_top_folder_name_at_the_limit(tmp_path):
    "A top folder of 255 bytes (the usual limit) unpacks, though its temporary folder's name would be longer; 256 bytes is refused by length"
    fn = make_tgz(tmp_path/'a.tgz', [('é'*127 + 'x', None, 0o755), ('é'*127 + 'x/y.txt', b'hi', 0o644)])  # 255 bytes, 128 characters
    assert data.extract_tgz(fn) == tmp_path/('é'*127 + 'x') and (tmp_path/('é'*127 + 'x')/'y.txt').read_bytes() == b'hi'
    fn = make_tgz(tmp_path/'b.tgz', [('é'*128, None, 0o755), ('é'*128 + '/y.txt', b'hi', 0o644)])  # 256 bytes
    with pytest.raises(ValueError) as e: data.extract_tgz(fn)
    assert str(e.value) == f"{fn}: cannot unpack it: its top-level folder's name is 256 bytes long, more than file systems allow (255)"

def test_extract_tgz_top_folder_named_like_a_file_there(tmp_path):
    "A top folder that would replace the archive itself, or another file: refused by name, both left as they were"
    (tmp_path/'arc').mkdir()
    fn = make_tgz(tmp_path/'arc'/'x.tgz', [('x.tgz', None, 0o755), ('x.tgz/y.txt', b'hi', 0o644)])
    with pytest.raises(ValueError) as e: data.extract_tgz(fn)
    assert str(e.value) == f"{fn}: cannot unpack it: its top-level folder x.tgz would replace {fn}, which is this archive itself; rename the archive or that file"
    fn2 = make_tgz(tmp_path/'b.tgz', [('notes', None, 0o755), ('notes/y.txt', b'hi', 0o644)])
    (tmp_path/'notes').write_text('mine')
    with pytest.raises(ValueError) as e: data.extract_tgz(fn2)
    assert str(e.value) == f"{fn2}: cannot unpack it: its top-level folder notes would replace {tmp_path/'notes'}, which is a file; rename the archive or that file"
    assert (tmp_path/'notes').read_text() == 'mine' and sorted(os.listdir(tmp_path/'arc')) == ['x.tgz']

def test_messages_name_files_on_one_line(tmp_path):
    "A file name with a newline is quoted in the messages of `read_digit` and `extract_tgz`"
    fn = write_png(tmp_path/'a\nb.png', size=(28, 29))
    with pytest.raises(ValueError) as e: data.read_digit(fn)
    assert str(e.value) == f"{str(fn)!r}: expected a 28×28 image, found 28×29"
    missing = tmp_path/'c\n.tgz'
    with pytest.raises(FileNotFoundError) as e: data.extract_tgz(missing)
    assert str(e.value) == f"archive not found: {str(missing)!r}"
