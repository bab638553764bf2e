"""augment: random_shift moves every image by whole pixels with replicated borders; affine and
random_affine rotate and zoom about the centre."""

import numpy as np
import pytest
import torch

from gan_infogan_plugin import random_shift
from gan_infogan_plugin.augment import affine, random_affine

IMAGE = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def reference_shifts(image: np.ndarray, s: int) -> list[np.ndarray]:
    """Every window of the edge-padded image (numpy's own padding): the (2s + 1)^2 allowed results."""
    padded = np.pad(image, s, mode="edge")
    h, w = image.shape
    return [padded[dy : dy + h, dx : dx + w] for dy in range(2 * s + 1) for dx in range(2 * s + 1)]


def test_hand_computed_windows_and_every_offset_drawn():
    out = random_shift(IMAGE.expand(400, 1, 3, 3), 1, torch.Generator().manual_seed(0))
    seen = {tuple(o.flatten().tolist()) for o in out[:, 0]}
    # the corner windows, by hand: moved down-right by one, and up-left by one
    assert (1, 1, 2, 1, 1, 2, 4, 4, 5) in seen and (5, 6, 6, 8, 9, 9, 8, 9, 9) in seen
    assert tuple(IMAGE.flatten().tolist()) in seen  # no move
    allowed = {tuple(w.flatten().tolist()) for w in reference_shifts(IMAGE.numpy(), 1)}
    assert seen == allowed and len(allowed) == 9


def test_each_image_and_channel_moves_together_and_independently_of_the_others():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(64, 3, 8, 8, generator=gen)
    out = random_shift(images, 2, torch.Generator().manual_seed(2))
    assert out.shape == images.shape
    moves = set()
    for image, shifted in zip(images.numpy(), out.numpy()):
        windows = reference_shifts(image[0], 2)
        (k,) = [i for i, w in enumerate(windows) if np.array_equal(w, shifted[0])]
        for c in (1, 2):  # the same move for every channel of an image
            assert np.array_equal(reference_shifts(image[c], 2)[k], shifted[c])
        moves.add(k)
    assert len(moves) > 10  # images get their own moves


def test_a_fill_value_borders_with_that_value():
    out = random_shift(IMAGE.expand(200, 1, 3, 3), 1, torch.Generator().manual_seed(0), fill=-1.0)
    seen = {tuple(o.flatten().tolist()) for o in out[:, 0]}
    assert (-1, -1, -1, -1, 1, 2, -1, 4, 5) in seen and (5, 6, -1, 8, 9, -1, -1, -1, -1) in seen
    padded = np.pad(IMAGE.numpy(), 1, constant_values=-1.0)
    assert seen == {tuple(padded[dy : dy + 3, dx : dx + 3].flatten().tolist()) for dy in range(3) for dx in range(3)}


def test_reproducible_with_a_generator_and_zero_is_the_identity():
    x = torch.rand(8, 1, 6, 6)
    a = random_shift(x, 2, torch.Generator().manual_seed(5))
    b = random_shift(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert random_shift(x, 0) is x
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(x, -1)


def test_gradient_reaches_the_input_pixels_each_output_pixel_came_from():
    x = torch.rand(16, 1, 5, 5, requires_grad=True)
    random_shift(x, 1, torch.Generator().manual_seed(3)).sum().backward()
    # every output pixel is one input pixel: the gradients add up to the number of output pixels
    assert x.grad.sum().item() == pytest.approx(16 * 25)
    assert (x.grad.flatten(1).sum(1) == 25).all()


def test_affine_by_hand_quarter_turns_and_identity():
    """affine: a quarter turn is torch.rot90 (counter-clockwise as displayed), angle 0 and scale 1 the input."""
    x = torch.rand(2, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    turned = affine(x, torch.tensor([90.0, -90.0]), torch.ones(2))
    assert torch.allclose(turned[0], torch.rot90(x[0], 1, (1, 2)), atol=1e-5)
    assert torch.allclose(turned[1], torch.rot90(x[1], -1, (1, 2)), atol=1e-5)
    assert torch.allclose(affine(x, torch.zeros(2), torch.ones(2)), x, atol=1e-6)


def test_affine_zoom_enlarges_about_the_centre():
    """Scale 2 on a centred 2x2 block of a 6x6 image: the centre stays 1, the block grows to the 4x4
    middle (bilinear: 0.75 at its edge), and the corners stay the background."""
    x = torch.zeros(1, 1, 6, 6)
    x[..., 2:4, 2:4] = 1.0
    out = affine(x, torch.zeros(1), torch.full((1,), 2.0))[0, 0]
    assert torch.allclose(out[2:4, 2:4], torch.ones(2, 2))
    assert torch.allclose(out[1, 2:4], torch.full((2,), 0.75)) and out[0, 0].item() < 0.1


def test_random_affine_is_reproducible_bounded_and_differentiable():
    x = torch.rand(5, 1, 9, 9, requires_grad=True)
    a = random_affine(x, 15.0, 0.1, torch.Generator().manual_seed(3))
    b = random_affine(x, 15.0, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, random_affine(x, 15.0, 0.1, torch.Generator().manual_seed(4)))
    assert random_affine(x, 0.0, 0.0) is x
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for degrees, zoom in ((-1.0, 0.1), (10.0, 1.0), (10.0, -0.1)):
        with pytest.raises(ValueError, match="max_degrees"):
            random_affine(x, degrees, zoom)


def test_affine_shear_by_hand_leans_a_vertical_line_to_the_right():
    """A shear of 45 degrees moves each row of a square image by its height above the centre in pixels
    (tan 45 = 1): the centre column of a 7x7 image becomes the anti-diagonal, its top at the right.
    A shear of 0 (and shears=None) leaves the rotation and zoom as they were."""
    x = torch.zeros(1, 1, 7, 7)
    x[..., 3] = 1.0
    sheared = affine(x, torch.zeros(1), torch.ones(1), torch.full((1,), 45.0))[0, 0]
    assert torch.allclose(sheared, torch.eye(7).flip(1), atol=1e-5)
    assert torch.allclose(affine(x, torch.zeros(1), torch.ones(1), torch.full((1,), -45.0))[0, 0], torch.eye(7), atol=1e-5)
    y = torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(1))
    degrees, scales = torch.tensor([10.0, -30.0, 90.0]), torch.tensor([1.0, 0.8, 1.2])
    assert torch.equal(affine(y, degrees, scales, torch.zeros(3)), affine(y, degrees, scales))


def test_random_affine_shear_is_drawn_after_the_rest_and_bounded():
    """Without shear the draws are those of before (same generator, same images); with it every image
    gets its own shear within the bound, checked against affine() with the same draws by hand."""
    x = torch.rand(6, 1, 9, 9)
    gen = lambda: torch.Generator().manual_seed(8)  # noqa: E731
    u = torch.rand(2, 6, generator=gen()) * 2 - 1
    assert torch.equal(random_affine(x, 15.0, 0.1, gen()), affine(x, u[0] * 15.0, 1 + u[1] * 0.1))
    g = gen()
    u, shear = torch.rand(2, 6, generator=g) * 2 - 1, (torch.rand(6, generator=g) * 2 - 1) * 20.0
    assert shear.abs().max() <= 20.0 and len(set(shear.tolist())) == 6
    assert torch.equal(random_affine(x, 15.0, 0.1, gen(), max_shear=20.0), affine(x, u[0] * 15.0, 1 + u[1] * 0.1, shear))
    assert not torch.equal(random_affine(x, 0.0, 0.0, gen(), max_shear=20.0), x)
    for bad in (-1.0, 90.0):
        with pytest.raises(ValueError, match="max_shear"):
            random_affine(x, 15.0, 0.1, max_shear=bad)
