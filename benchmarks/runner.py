"""The runner against a bare loop: images/s of `gan-recipes run infogan-mnist` and of a hand-written loop.

    python benchmarks/runner.py [--steps 300] [--repeats 2] [--threads N] [--data ../shared/data/mnist]

Both train the infogan-mnist recipe's networks, batch, optimisers, MI term, shift of D's inputs,
invariance term (``[invariance]``) and fakes for G's update (``trainer.fresh_codes``) on the real MNIST
test set (10,000 digits, torchvision raw layout) for the same number of steps, on this machine's CPU
with the same thread count. The runner runs as users run it (in-process `train`, progress bar off
because there is no terminal, metrics every `log_every` steps, a traversal grid per code and a
checkpoint every `--every` steps, safetensors at the end); the bare loop is the ten-line
loop a user would write, with batches drawn by indexing one in-memory tensor and the runner's CPU
settings (fused Adam, denormals flushed to zero). Times are wall clock from the call to the return
(set-up and the runner's end of run included), and the steady rate of the steps after the first
``log_every`` (the runner's from its metrics.csv); runs alternate and the table gives medians.
Target: runner >= 1.0x bare.
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_infogan_plugin import InfoGAN, paired_cluster_mi, random_affine, random_shift, registry
from gan_infogan_plugin.cpu import cpu_settings
from gan_infogan_plugin.recipes import load_recipe
from gan_infogan_plugin.train import train

ROOT = Path(__file__).resolve().parents[1]


def overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"data.root={str(Path(args.data).resolve())!r}".replace("'", '"'),
        'data.split="test"',
        "data.download=false",
        f"trainer.max_steps={args.steps}",
        f"trainer.sample_every={args.every}",
        f"trainer.checkpoint_every={args.every}",
    ]


def run_runner(args: argparse.Namespace) -> tuple[float, float]:
    """Wall seconds of the whole call, and the steady images/s the run logged (metrics.csv after its first row)."""
    recipe = load_recipe("infogan-mnist", overrides(args))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(recipe, Path(out) / "run", progress=False)
        total = time.perf_counter() - start
        with open(Path(out) / "run" / "metrics.csv", newline="") as f:
            rates = [float(row["images_per_s"]) for row in csv.DictReader(f) if row.get("images_per_s")]
        return total, statistics.median(rates[1:] or rates)


def run_bare(args: argparse.Namespace) -> tuple[float, float]:
    """Wall seconds of the whole call, and the steady images/s (the steps after the first ``log_every``)."""
    recipe = load_recipe("infogan-mnist", overrides(args))
    start = time.perf_counter()
    torch.manual_seed(0)
    spec, model, t = recipe.codes, registry.load("models", recipe.model.name), recipe.trainer
    data = registry.load("datasets", recipe.data.name)(recipe.data, model.image_size, model.channels)
    images = data.images.float().div(127.5).sub(1.0) if data.images.dtype == torch.uint8 else data.images
    g, d = model.build(spec.input_dim)
    info = InfoGAN.wrap(g, d, spec, model.q_layer, recipe.regularizer.lambda_cat, recipe.regularizer.lambda_cont, image_input=False,
                        fixed_std=recipe.q_head.fixed_std)
    opt_g = torch.optim.Adam(g.parameters(), lr=recipe.optim.g.lr, betas=tuple(recipe.optim.g.betas), fused=True)
    opt_d = torch.optim.Adam(info.discriminator_parameters(), lr=recipe.optim.d.lr, betas=tuple(recipe.optim.d.betas), fused=True)
    ones, zeros, shift, inv = torch.ones(t.batch_size), torch.zeros(t.batch_size), recipe.augment.shift, recipe.invariance
    with cpu_settings(torch.device("cpu")):  # the runner's CPU block (train() leaves it when it returns)
        for step in range(t.max_steps):
            if step == t.log_every:
                steady = time.perf_counter()
            real = images[torch.randint(len(images), (t.batch_size,))]
            codes = info.sample(t.batch_size)
            with torch.set_grad_enabled(not t.fresh_codes):  # the recipe's trainer.fresh_codes: G trains on fakes of its own
                fake = g(codes.flat)
            opt_d.zero_grad()
            seen = random_shift(real, shift)
            if inv.enabled:  # the recipe's [invariance]: IIC between Q's classes of the reals and of moved copies
                verdict, q_real = info.discriminate(seen)
                _, q_moved = info.discriminate(random_affine(seen, inv.degrees, inv.zoom, max_shear=inv.shear))
                mi = sum(paired_cluster_mi(a.softmax(1), b.softmax(1)) for a, b in zip(q_real.cat_logits, q_moved.cat_logits))
                loss_d = F.binary_cross_entropy_with_logits(verdict, ones) - inv.weight * mi
            else:
                loss_d = F.binary_cross_entropy_with_logits(d(seen), ones)
            loss_d = loss_d + F.binary_cross_entropy_with_logits(d(random_shift(fake.detach(), shift)), zeros) + info.mi(codes).loss
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            if t.fresh_codes:
                codes = info.sample(t.batch_size)
                fake = g(codes.flat)
            loss_g = F.binary_cross_entropy_with_logits(d(random_shift(fake, shift)), ones) + info.mi(codes).loss
            loss_g.backward()
            opt_g.step()
    end = time.perf_counter()
    return end - start, (t.max_steps - t.log_every) * t.batch_size / (end - steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100, help="sample and checkpoint interval of the runner")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = load_recipe("infogan-mnist").trainer.batch_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, infogan-mnist, batch {batch}, "
          f"{args.steps} steps, median of {args.repeats} alternating runs")
    bare, runner = [], []
    for _ in range(args.repeats):
        bare.append(run_bare(args))
        runner.append(run_runner(args))
    images = args.steps * batch
    (b_wall, b_steady), (r_wall, r_steady) = ([statistics.median(column) for column in zip(*runs)] for runs in (bare, runner))
    b, r = images / b_wall, images / r_wall
    print(f"{'loop':<10}{'images/s':>10}{'s/run':>9}{'steady images/s':>18}")
    print(f"{'bare':<10}{b:>10.1f}{b_wall:>9.1f}{b_steady:>18.1f}")
    print(f"{'runner':<10}{r:>10.1f}{r_wall:>9.1f}{r_steady:>18.1f}")
    print(f"runner / bare = {r / b:.3f} (whole runs), {r_steady / b_steady:.3f} (steady: steps after the first log_every)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
