"""The PyTorch side of bench/groco_loss.ts: times the reference formulation of the GroCo loss.

With GROCO_REFERENCE_REPO naming a checkout of the reference repository (its `diffsort`
dependency importable), the reference's own GroCo module is timed. Without it, the dense
formulation below stands in: each sorting-network layer as products with its four 0/1 matrices
and topk over a differentiable similarity product, written here from the method's description.

Protocol: reads a JSON config line, prints one JSON line {"ready": ..., "label": ...}; then for
every line "run" on stdin, runs forward + backward once and prints {"ms": ..., "cpu_ms": ..., "loss": ...} (wall and
process CPU time).
"""
import contextlib
import json
import math
import os
import sys
import time

import numpy as np
import torch


def odd_even_layers(n):
    """Per layer: (split_a, split_b, combine_min, combine_max) as dense 0/1 matrices."""
    layers = []
    for layer in range(n):
        pairs = [(i, i + 1) for i in range(layer % 2, n - 1, 2)]
        untouched = [w for w in range(n) if all(w not in p for p in pairs)]
        k = len(pairs) + len(untouched)
        split_a, split_b = torch.zeros(k, n), torch.zeros(k, n)
        combine_min, combine_max = torch.zeros(n, k), torch.zeros(n, k)
        for c, (i, j) in enumerate(pairs):
            split_a[c, i] = split_b[c, j] = 1
            combine_min[i, c] = combine_max[j, c] = 1
        for c, w in enumerate(untouched, start=len(pairs)):
            # a wire compared with itself stays as it is
            split_a[c, w] = split_b[c, w] = 1
            combine_min[w, c] = combine_max[w, c] = 0.5
        layers.append((split_a, split_b, combine_min, combine_max))
    return layers


def dense_diffsort(layers, x, steepness):
    """Relaxed odd-even sort with cauchy comparators, every layer as dense products."""
    p = torch.eye(x.shape[1], dtype=x.dtype).repeat(x.shape[0], 1, 1)
    for split_a, split_b, combine_min, combine_max in layers:
        a, b = x @ split_a.T, x @ split_b.T
        alpha = torch.atan(steepness * (b - a)) / math.pi + 0.5
        pa, pb = p @ split_a.T, p @ split_b.T
        p_min = alpha.unsqueeze(-2) * pa + (1 - alpha).unsqueeze(-2) * pb
        p_max = (1 - alpha).unsqueeze(-2) * pa + alpha.unsqueeze(-2) * pb
        p = p_max @ combine_max.T.unsqueeze(-3) + p_min @ combine_min.T.unsqueeze(-3)
        x = (alpha * a + (1 - alpha) * b) @ combine_min.T + ((1 - alpha) * a + alpha * b) @ combine_max.T
    return x, p


class DenseGroCo:
    def __init__(self, n_augs, n_pos_augs, topk_neg, steepness):
        self.n_augs, self.n_pos_augs, self.k, self.steepness = n_augs, n_pos_augs, topk_neg, steepness
        self.layers = {}
        self.bce = torch.nn.BCELoss()
        self.cos = torch.nn.CosineSimilarity(dim=1)

    def anchor_loss(self, z, a):
        anchor = z[a]
        pos = torch.stack([self.cos(anchor, z[p].detach()) for p in range(self.n_pos_augs) if p != a], 1)
        pos, _ = torch.sort(pos, dim=1)
        normalize = lambda t: t / torch.max(t.norm(dim=1, keepdim=True), torch.tensor(1e-8))
        sims = normalize(anchor) @ normalize(anchor.detach()).T
        sims = sims.masked_fill(torch.eye(len(anchor), dtype=torch.bool), -math.inf)
        neg = torch.topk(sims, self.k, dim=1)[0].flip(1)
        s = torch.cat((neg, pos), 1)
        m = s.shape[1]
        if m not in self.layers:
            self.layers[m] = odd_even_layers(m)
        _, perm = dense_diffsort(self.layers[m], s, self.steepness)
        q_neg = perm[:, :, :self.k].sum(2).clamp(0, 1)
        q_pos = perm[:, :, self.k:].sum(2).clamp(0, 1)
        t_neg = torch.zeros_like(q_neg)
        t_neg[:, :self.k] = 1
        return (self.bce(q_pos, 1 - t_neg) + self.bce(q_neg, t_neg)) / 2

    def __call__(self, views):
        z = [v.float() for v in views]
        return sum(self.anchor_loss(z, a) for a in range(self.n_augs)) / self.n_augs


def make_loss(config):
    repo = os.environ.get('GROCO_REFERENCE_REPO')
    args = dict(n_augs=config['n_augs'], n_pos_augs=config['n_pos_augs'],
                topk_neg=config['topk_neg'], steepness=config['steepness'])
    if not repo:
        return 'dense formulation of the bench script (GROCO_REFERENCE_REPO unset)', DenseGroCo(**args)
    sys.path.insert(0, repo)
    try:
        from learning_by_sorting.losses.groco import GroCo
    except ImportError as error:
        raise SystemExit(f'cannot import the reference from GROCO_REFERENCE_REPO={repo}: {error} '
                         '(it needs the diffsort package: pip install diffsort, or add it to PYTHONPATH)')
    loss = GroCo(stop_grad=True, **args)
    names = [f'projection_image_aug{i + 1}' for i in range(config['n_augs'])]

    def run(views):
        value, _ = loss({}, dict(zip(names, views)))
        return value
    return f'reference GroCo from {repo}', run


def main():
    config = json.loads(sys.stdin.readline())
    torch.set_num_threads(config['threads'])
    label, loss = make_loss(config)
    shape = (config['n_augs'], config['batch'], config['dim'])
    data = torch.from_numpy(np.fromfile(config['inputs'], dtype=np.float32).reshape(shape))
    print(json.dumps({'ready': True, 'label': label, 'torch': torch.__version__,
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != 'run':
            break
        views = [data[v].clone().requires_grad_() for v in range(shape[0])]
        with contextlib.redirect_stdout(sys.stderr):  # the reference prints now and then
            start, cpu_start = time.perf_counter(), time.process_time()
            value = loss(views)
            value.backward()
            ms = (time.perf_counter() - start) * 1000
            cpu_ms = (time.process_time() - cpu_start) * 1000
        print(json.dumps({'ms': ms, 'cpu_ms': cpu_ms, 'loss': value.item()}), flush=True)


if __name__ == '__main__':
    main()
