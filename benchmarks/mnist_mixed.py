"""Look at a mixed value of a categorical code: the real images of one class that Q puts on another
class's value, below those of the same class on its own value.

    python benchmarks/mnist_mixed.py RUN --data 'root="../shared/data/mnist"' --data 'split="test"' \
        --data download=false --out mixed.png [--code c1] [--n 48]

Q reads every labelled image of the run's data set (its BatchNorm statistics recomputed from generated
batches, as ``gan-recipes eval`` does). Each class goes to the code value that holds most of it (its
own value); the class with the most images on another class's own value is drawn: up to ``n`` of it
on its own value (top), a grey row, up to ``n`` of it on the other value (bottom). The counts are
printed. On MNIST with ``infogan-mnist`` this is the 7s that share the 2s' value (README, Results).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from gan_infogan_plugin.batchnorm import recalibrated
from gan_infogan_plugin.data.base import to_unit_range
from gan_infogan_plugin.evaluate import load_run, q_codes
from gan_infogan_plugin.images import save_grid
from gan_infogan_plugin.metrics import contingency
from gan_infogan_plugin.modes import evaluating
from gan_infogan_plugin.networks import load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--data", action="append", default=[], help="KEY=VALUE of the recipe's [data] table")
    parser.add_argument("--code", default="c1")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--out", default="mixed.png")
    args = parser.parse_args()
    loaded = load_run(args.run, args.data)
    spec, nets = loaded.recipe.codes, loaded.networks
    data = load_data(loaded.recipe.data, nets)
    if data.labels is None or data.images is None:
        raise SystemExit(f"error: data set {data.name} has no labels held in memory to look at")
    column = [code.name for code in spec.codes].index(args.code)
    g, d = nets.generator, nets.discriminator
    images = to_unit_range(data.images)  # (N, C, H, W) in [-1, 1]
    with recalibrated(g, d, spec, batch_size=256, seed=1), evaluating(g, d):
        values = q_codes(lambda x: d(x)[1], images, spec)[:, column].long()
    labels = data.labels.long()
    counts, classes, found = contingency(labels, values)  # (classes, values that occur)
    own = counts.argmax(1)  # each class's own value (its column)
    hosts = np.zeros_like(counts, dtype=bool)
    hosts[:, own] = True  # the values that are some class's own ...
    hosts[np.arange(len(classes)), own] = False  # ... other than the class's own
    row, col = np.unravel_index((counts * hosts).argmax(), counts.shape)
    host_row = np.flatnonzero(own == col)[0]  # the class whose own value it is
    c, v, home_value, host = int(classes[row]), int(found[col]), int(found[own[row]]), int(classes[host_row])
    print(f"{args.run}: {counts[row, col]} of the {counts[row].sum()} images of class {c} are on value {v} "
          f"(class {host}'s own, which holds {counts[host_row, col]} of class {host}); {counts[row, own[row]]} on their own value {home_value}")
    home = ((labels == c) & (values == home_value)).nonzero()[: args.n, 0]
    astray = ((labels == c) & (values == v)).nonzero()[: args.n, 0]
    grey = torch.zeros((8, *images.shape[1:]))  # mid-grey in [-1, 1]
    save_grid(torch.cat([images[home], grey, images[astray]]), args.out, nrow=8)
    print(f"wrote {args.out}: class {c} on its own value (top), on class {host}'s (bottom)")


if __name__ == "__main__":
    main()
