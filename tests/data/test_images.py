import io

import numpy as np
import pytest
from PIL import Image

from chestclip.data.images import bounded_parallel_map, decode_into, fit_square, load_xray, to_grey


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grey_8bit_passes_through():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    assert np.array_equal(load_xray(_png(grey), 8), grey)


def test_16bit_is_scaled_to_full_8bit_range():
    pixels = np.linspace(1000, 4000, 64, dtype=np.uint16).reshape(8, 8)
    decoded = load_xray(_png(pixels), 8)
    assert decoded.min() == 0 and decoded.max() == 255
    assert np.all(np.diff(decoded.ravel().astype(int)) >= 0)  # order kept


def test_rgb_and_rgba():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., :] = 200
    assert np.all(load_xray(_png(rgb), 4) == 200)
    rgba = np.dstack([rgb, np.full((4, 4), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # transparent pixel composites on black
    decoded = load_xray(_png(rgba), 4)
    assert decoded[0, 0] == 0 and decoded[1, 1] == 200


def test_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(buffer, format="JPEG")
    assert abs(int(load_xray(buffer.getvalue(), 32).mean()) - 128) <= 2


@pytest.fixture(scope="module")
def phantom_grey(tmp_path_factory) -> np.ndarray:
    """A 512-px phantom chest X-ray, uint8 [512, 512]."""
    from chestclip.phantom import generate_phantoms

    out = tmp_path_factory.mktemp("phantom512")
    generate_phantoms(out, studies=1, image_size=512, layout="openi", seed=3)
    with Image.open(sorted((out / "NLMCXR_png").glob("*.png"))[0]) as image:
        return np.asarray(image.convert("L"))


@pytest.mark.parametrize(("side", "size"), [(512, 64), (512, 224), (1024, 224)])
def test_jpeg_decodes_to_the_png_pixels(phantom_grey, side, size):
    """The format must not change the model's input: a JPEG q95 of an image gives (within JPEG's
    own loss) the pixels its PNG gives, also when the target is a power-of-two fraction of the
    side (where a reduced-scale JPEG decode differed by up to 16 grey levels)."""
    grey = np.asarray(Image.fromarray(phantom_grey).resize((side, side), Image.Resampling.BICUBIC))
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, format="JPEG", quality=95)
    from_jpeg = load_xray(jpeg.getvalue(), size).astype(int)
    from_png = load_xray(_png(grey), size).astype(int)
    assert np.abs(from_jpeg - from_png).mean() < 0.35
    assert np.abs(from_jpeg - from_png).max() <= 2


def test_pad_keeps_aspect_and_stretch_does_not():
    wide = np.full((50, 100), 255, np.uint8)
    padded = fit_square(wide, 20, "pad")
    assert padded.shape == (20, 20)
    assert padded[0].max() == 0 and padded[-1].max() == 0 and padded[10].min() == 255
    assert fit_square(wide, 20, "stretch").min() == 255


def test_to_grey_constant_16bit_is_black():
    assert to_grey(Image.fromarray(np.full((4, 4), 7, np.uint16))).max() == 0


def test_decode_into_lists_corrupt_truncated_and_missing(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(_png(np.full((16, 16), 90, np.uint8)))
    noisy = _png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(noisy[: len(noisy) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    files = [str(good), str(truncated), str(garbage), str(tmp_path / "missing.png")]
    out = np.zeros((4, 8, 8), np.uint8)
    errors = decode_into(files, None, out, workers=2)
    assert set(errors) == {1, 2, 3}
    assert errors[3] == "file missing"
    assert errors[1].startswith("undecodable image") and errors[2].startswith("undecodable image")
    assert np.all(out[0] == 90)


def test_bounded_parallel_map_keeps_order():
    assert list(bounded_parallel_map(lambda x: x * x, range(100), workers=2, window=4)) == [
        x * x for x in range(100)
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_decode_from_tar_archive(tmp_path, workers):
    import tarfile

    archive = tmp_path / "images.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, value in (("a.png", 10), ("b.png", 20)):
            data = _png(np.full((8, 8), value, np.uint8))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = np.zeros((3, 8, 8), np.uint8)
    errors = decode_into(["b.png", "a.png", "absent.png"], str(archive), out, workers=workers)
    assert list(errors) == [2]
    assert out[0].max() == 20 and out[1].max() == 10
