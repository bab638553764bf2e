"""How Q reads a trained run with G, D and Q in training or eval mode, before and after the BatchNorm
running statistics are recomputed (issue 17; gan_infogan_plugin.batchnorm).

    python benchmarks/batchnorm_modes.py RUN_DIR_OR_CHECKPOINT [--real 5000] [--data split=test]

One row per setting: Q's MI bound per code on 2,048 generated images and, on ``--real`` real images of the
run's data set (in random batches of 256, and in batches sorted by label), the first categorical code's
Hungarian accuracy and label-free MI. "train" means batch statistics (the running statistics of a copy
are updated and thrown away); "eval" the running statistics, as the checkpoint holds them or recomputed.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from gan_infogan_plugin import QHead
from gan_infogan_plugin.batchnorm import recalibrate
from gan_infogan_plugin.evaluate import _real_images, load_run, real_subset
from gan_infogan_plugin.metrics import hungarian_accuracy, real_code_mi
from gan_infogan_plugin.networks import load_data
from gan_infogan_plugin.regularizer import MIRegularizer


@torch.no_grad()
def generated_mi(g, dq, spec, n: int = 2048, batch: int = 256) -> dict[str, float]:
    """Q's MI bound per code, the mean over n generated images (codes from seed 0)."""
    regularizer, rng, sums = MIRegularizer(spec), torch.Generator().manual_seed(0), {}
    for _ in range(n // batch):
        codes = spec.sample(batch, generator=rng)
        for key, value in regularizer(dq(g(codes.flat))[1], codes).stats.items():
            if key.startswith("mi/"):
                sums[key[3:]] = sums.get(key[3:], 0.0) + float(value) * batch / n
    return sums


@torch.no_grad()
def real_scores(dq, images, labels, order, batch: int = 256) -> tuple[float, float]:
    """(accuracy, MI real) of the first categorical code, Q reading the images in batches taken in ``order``."""
    logits = None
    for start in range(0, len(images), batch):
        index = order[start : start + batch]
        out = dq(images[index])[1].cat_logits[0]
        logits = torch.empty(len(images), out.shape[1]) if logits is None else logits
        logits[index] = out
    return hungarian_accuracy(logits.argmax(1).numpy(), labels.numpy())[0], real_code_mi(logits)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--real", type=int, default=5000, help="real images (0: none)")
    p.add_argument("--data", action="append", default=[], help="a key of the run's [data] table: split=test")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = load_run(args.run, args.data)
    spec = run.recipe.codes
    nets = run.networks
    recalibrated = (copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator))
    recalibrate(*recalibrated, spec)
    images = labels = None
    if args.real and spec.categorical:
        data = load_data(run.recipe.data, nets)
        images, labels = _real_images(data, real_subset(len(data), args.real, 0))
    orders = {} if labels is None else {
        "random": torch.from_numpy(np.random.default_rng(0).permutation(len(images))),
        "sorted": torch.from_numpy(np.argsort(labels.numpy(), kind="stable")),
    }
    print(f"{run.run.path} step {run.step}; MI bound per code on generated images"
          + ("; real images: accuracy / MI real of " + spec.categorical[0].name + " in random | label-sorted batches" if orders else ""))
    settings = [(f"G {g} D {d} Q {q}", (nets.generator, nets.discriminator), (g, d, q))
                for g in ("train", "eval") for d in ("train", "eval") for q in ("train", "eval")]
    settings += [(f"recalibrated, G {g} D eval Q eval", recalibrated, (g, "eval", "eval")) for g in ("train", "eval")]
    for label, nets, modes in settings:
        g, dq = (copy.deepcopy(n) for n in nets)
        q = next(m for m in dq.modules() if isinstance(m, QHead))  # Q lives in D: set D's mode, then Q's
        for module, mode in zip((g, dq, q), modes):
            module.train(mode == "train")
        text = "  ".join(f"{code} {mi:+.3f}" for code, mi in generated_mi(g, copy.deepcopy(dq), spec).items())
        for name, order in orders.items():
            accuracy, mi_real = real_scores(copy.deepcopy(dq), images, labels, order)
            text += f"  {'|' if name == 'sorted' else '  real'} {accuracy:.3f} / {mi_real:.3f}"
        print(f"{label:35s} {text}", flush=True)


if __name__ == "__main__":
    main()
