"""What each continuous code of a trained MNIST generator controls: slant and width from image moments.

    python benchmarks/mnist_codes.py RUN/generator.safetensors [--n-noise 256] [--seed 0]

For each continuous code, every value in -2..2 (9 values, as the paper's figures) is drawn with the
same n_noise noise and categorical draws; for each generated digit, with pixel intensities as mass:
slant = mu11 / mu02 (horizontal shift per row, positive leaning right) and width = 4 * sqrt(mu20)
in pixels (second central moments). The table gives each code's Pearson correlation with slant and
width over all images, and the mean slant and width at -2 and +2.
"""

from __future__ import annotations

import argparse

import torch

from gan_infogan_plugin.export import load_generator


def moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, 1, H, W) in [-1, 1] -> slant (N,), width (N,) in pixels."""
    mass = (images[:, 0] + 1) / 2
    h, w = mass.shape[1:]
    ys = torch.arange(h, dtype=mass.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=mass.dtype).view(1, 1, w)
    total = mass.sum((1, 2)).clamp_min(1e-6)
    cy = (mass * ys).sum((1, 2)) / total
    cx = (mass * xs).sum((1, 2)) / total
    dy, dx = ys - cy.view(-1, 1, 1), xs - cx.view(-1, 1, 1)
    mu02 = (mass * dy**2).sum((1, 2)) / total
    mu20 = (mass * dx**2).sum((1, 2)) / total
    mu11 = (mass * dx * dy).sum((1, 2)) / total
    return -mu11 / mu02.clamp_min(1e-6), 4 * mu20.sqrt()  # image rows grow downwards: lean right = negative mu11


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--n-noise", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_generator(args.weights)
    print(f"{args.weights}: step {loaded.step}, spec {loaded.spec}, {args.n_noise} noise draws x 9 values per code")
    print(f"{'code':<6}{'r(slant)':>10}{'r(width)':>10}{'slant -2/+2':>16}{'width -2/+2 px':>18}")
    for code in loaded.spec.continuous:
        with torch.no_grad():
            images = loaded.traverse(code.name, n_noise=args.n_noise, seed=args.seed)
        values = torch.linspace(-2, 2, 9).repeat_interleave(args.n_noise)
        slant, width = moments(images.float())
        ends = lambda x: f"{x[: args.n_noise].mean():.2f}/{x[-args.n_noise :].mean():.2f}"  # noqa: E731
        print(f"{code.name:<6}{pearson(values, slant):>10.2f}{pearson(values, width):>10.2f}{ends(slant):>16}{ends(width):>18}")


if __name__ == "__main__":
    main()
