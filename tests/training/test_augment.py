import torch

from chestclip.training.augment import XrayAugment


def test_shape_range_and_randomness():
    torch.manual_seed(0)
    image = torch.rand(1, 32, 32)
    augment = XrayAugment()
    first, second = augment(image), augment(image)
    assert first.shape == image.shape and first.min() >= 0 and first.max() <= 1
    assert not torch.equal(first, second)


def test_zero_strength_is_identity():
    image = torch.rand(1, 16, 16)
    augment = XrayAugment(degrees=0, scale=0, shift=0, brightness=0, contrast=0)
    assert torch.allclose(augment(image), image, atol=1e-5)


def test_never_flips_left_right():
    torch.manual_seed(1)
    image = torch.zeros(1, 64, 64)
    image[:, 24:40, 4:16] = 1  # bright block on the image's left
    augment = XrayAugment(degrees=10, scale=0.1, shift=0.1, brightness=0, contrast=0)
    for _ in range(20):
        out = augment(image)
        assert out[..., :32].sum() > 5 * out[..., 32:].sum()
