# The PyTorch side of bench/models.ts: the same training steps and tiny ops, timed in PyTorch.
# Reads one JSON request per line on stdin and answers one JSON line per request, so the two
# sides can take turns within one run.
import json
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

models = {}


def setup(req):
    """Builds (once per configuration) the model, optimizer and batch of a training benchmark."""
    key = req['key']
    if key in models:
        return models[key]
    torch.manual_seed(0)
    model = getattr(torchvision.models, req['arch'])(zero_init_residual=True)
    x = torch.randn(req['batch'], 3, req['size'], req['size'])
    if req['channels_last']:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (req['batch'],))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    models.clear()
    models[key] = (model.train(), optimizer, x, labels)
    return models[key]


def train_steps(req):
    model, optimizer, x, labels = setup(req)
    bf16 = req['precision'] == 'bfloat16'
    times = []
    for _ in range(req['steps']):
        start = time.perf_counter()
        cpu_start = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        times.append({'wall': time.perf_counter() - start, 'cpu': time.process_time() - cpu_start})
    return {'times': times, 'loss': loss.item()}


def tiny_ops(req):
    a = torch.ones(1)
    b = torch.ones(1)
    calls = req['calls']
    out = {}
    for _ in range(1000):
        c = a + b
        a.add_(b)
        c = torch.relu(a)
    start = time.perf_counter()
    for _ in range(calls):
        c = a + b
    out['add'] = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for _ in range(calls):
        a.add_(b)
    out['add_'] = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for _ in range(calls):
        c = torch.relu(a)
    out['relu'] = (time.perf_counter() - start) / calls
    del c
    return out


def main():
    for line in sys.stdin:
        req = json.loads(line)
        if req['command'] == 'threads':
            torch.set_num_threads(req['threads'])
            answer = {'threads': torch.get_num_threads(), 'torch': torch.__version__}
        elif req['command'] == 'train':
            answer = train_steps(req)
        elif req['command'] == 'tiny':
            answer = tiny_ops(req)
        else:
            answer = {'error': f"unknown command {req['command']}"}
        print(json.dumps(answer), flush=True)


if __name__ == '__main__':
    main()
