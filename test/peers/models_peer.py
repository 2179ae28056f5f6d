# The PyTorch side of the model tests: torchvision's ResNets and the reference's projection head,
# run on the same inputs as groco's. Tensors travel as raw little-endian files plus a manifest.
# Usage: python3 models_peer.py with a JSON list of jobs ({'command': ..., ...}) on stdin; prints
# one JSON line: the list of their answers. One process serves a whole test file (import is slow).
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision


def dump(folder, tensors):
    """Writes each tensor as <index>.bin and a manifest of keys, shapes and dtypes."""
    os.makedirs(folder, exist_ok=True)
    manifest = []
    for i, (key, value) in enumerate(tensors.items()):
        value = value.detach().contiguous()
        name = f'{i}.bin'
        value.numpy().tofile(os.path.join(folder, name))
        manifest.append({'key': key, 'shape': list(value.shape),
                         'dtype': str(value.dtype).replace('torch.', ''), 'file': name})
    with open(os.path.join(folder, 'manifest.json'), 'w') as f:
        json.dump(manifest, f)


def encoder(arch, zero_init_residual, small_images=False, in_channels=3):
    model = getattr(torchvision.models, arch)(zero_init_residual=zero_init_residual)
    model.fc = torch.nn.Identity()
    if small_images:
        width = model.conv1.out_channels
        model.conv1 = torch.nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        torch.nn.init.kaiming_normal_(model.conv1.weight, mode='fan_out', nonlinearity='relu')
        model.maxpool = torch.nn.Identity()
    return model


def buffers_of(model):
    return {k: v for k, v in model.state_dict().items() if 'running' in k or 'num_batches' in k}


def resnet_run(req):
    """Seeded init, eval and train forwards, then SGD steps, all dumped under req['dir']."""
    torch.set_num_threads(req['threads'])
    folder = req['dir']
    torch.manual_seed(req['seed'])
    model = encoder(req['arch'], req['zero_init_residual'], req.get('small_images', False),
                    req.get('in_channels', 3))
    dump(os.path.join(folder, 'init'), model.state_dict())
    initial = copy.deepcopy(model)

    generator = torch.Generator().manual_seed(req['seed'] + 1)
    x = torch.randn(req['input_shape'], generator=generator)
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    if req.get('eval_only'):
        dump(os.path.join(folder, 'io'), {'x': x, 'y_eval': y_eval})
        return {'features': list(y_eval.shape)}

    model.train()
    y_train = model(x).detach()
    dump(os.path.join(folder, 'after_train_forward'), buffers_of(model))
    target = torch.randn(y_train.shape, generator=generator)
    answer = {}
    io = {}
    if req.get('bf16_channels_last'):
        answer['bf16_loss'] = bf16_channels_last(initial, x, target, io)

    optimizer = torch.optim.SGD(model.parameters(), lr=req['lr'], momentum=req['momentum'],
                                weight_decay=req['weight_decay'])
    losses = []
    for _ in range(req['steps']):
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    dump(os.path.join(folder, 'after_steps'), model.state_dict())
    model.eval()
    with torch.no_grad():
        y_eval_after = model(x)
    io.update({'x': x, 'target': target, 'y_eval': y_eval, 'y_train': y_train,
               'y_eval_after': y_eval_after})
    dump(os.path.join(folder, 'io'), io)
    answer['losses'] = losses
    return answer


def bf16_channels_last(model, x, target, io):
    """Eval output, then a train forward and backward, in channels-last under bfloat16 autocast."""
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        io['y_eval_bf16'] = model(x).float()
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = model(x)
    loss = F.mse_loss(y.float(), target)
    loss.backward()
    io['grad_conv1_bf16'] = model.conv1.weight.grad.contiguous()
    return loss.item()


def resnet_keys(req):
    """Keys and shapes of each architecture's state dict without the classifier."""
    out = {}
    for arch in req['archs']:
        model = encoder(arch, True)
        out[arch] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return out


class ProjectionHead(torch.nn.Module):
    """The reference's projection head, module for module (its Sequential is `projection`)."""

    def __init__(self, input_dim, num_layers, output_dim, batch_norm_first):
        super().__init__()
        self.projection = projection_layers(input_dim, num_layers, output_dim, batch_norm_first)

    def forward(self, x):
        return self.projection(x)


def projection_layers(input_dim, num_layers, output_dim, batch_norm_first):
    layers = []
    if batch_norm_first:
        layers.append(torch.nn.BatchNorm1d(input_dim))
    for _ in range(num_layers - 1):
        layers += [torch.nn.Linear(input_dim, input_dim, bias=False),
                   torch.nn.BatchNorm1d(input_dim), torch.nn.ReLU(inplace=True)]
    layers += [torch.nn.Linear(input_dim, output_dim, bias=True),
               torch.nn.BatchNorm1d(output_dim, affine=False)]
    layers[-2].bias.requires_grad = False
    return torch.nn.Sequential(*layers)


def projection_run(req):
    torch.set_num_threads(req['threads'])
    folder = req['dir']
    torch.manual_seed(req['seed'])
    head = ProjectionHead(req['input_dim'], req['num_layers'], req['output_dim'],
                           req['batch_norm_first'])
    dump(os.path.join(folder, 'init'), head.state_dict())
    generator = torch.Generator().manual_seed(req['seed'] + 1)
    x = torch.randn(req['batch'], req['input_dim'], generator=generator)
    target = torch.randn(req['batch'], req['output_dim'], generator=generator)

    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=req['lr'], momentum=req['momentum'],
                                weight_decay=req['weight_decay'])
    losses = []
    outputs = {}
    for step in range(req['steps']):
        optimizer.zero_grad(set_to_none=True)
        y = head(x)
        outputs[f'y{step}'] = y.detach().clone()
        loss = F.mse_loss(y, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    head.eval()
    with torch.no_grad():
        outputs['y_eval'] = head(x)
    dump(os.path.join(folder, 'after_steps'), head.state_dict())
    dump(os.path.join(folder, 'io'), {'x': x, 'target': target, **outputs})
    return {'losses': losses, 'trainable': len(params)}


COMMANDS = {'resnet_run': resnet_run, 'resnet_keys': resnet_keys,
            'projection_run': projection_run}

if __name__ == '__main__':
    jobs = json.loads(sys.stdin.read())
    print(json.dumps([COMMANDS[job['command']](job) for job in jobs]))
