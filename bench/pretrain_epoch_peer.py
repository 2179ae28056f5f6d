"""The PyTorch side of bench/pretrain_epoch.ts: the reference implementation pretraining on
Fashion-MNIST with the settings of a groco config, then its weighted k-NN evaluator.

The reference's own modules do the work: RegularEncoder, RegularProjection, GroCo, the cosine
schedule with warm-up, the SSLTrainer epoch loop and KNNEvaluator, imported from the checkout
named by GROCO_REFERENCE_REPO (its `diffsort` dependency importable, and python3-tqdm installed
for the evaluator). This file only supplies what the reference has no option for: the
Fashion-MNIST dataset read from its IDX files, and the small-image ResNet of the groco config
(3x3 stride-1 stem, no max-pool, any width and input channels), which torchvision cannot build.

Usage: python3 pretrain_epoch_peer.py '<json settings>'. Progress goes to stderr (the
reference's own prints included); the last line of stdout is one JSON object with the results.
`python3 pretrain_epoch_peer.py --check` only imports the reference and says whether it can.
"""
import gzip
import importlib.util
import json
import os
import random
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms


def import_reference():
    repo = os.environ.get('GROCO_REFERENCE_REPO')
    if not repo:
        raise SystemExit('GROCO_REFERENCE_REPO is not set: name a checkout of the reference repository')
    sys.path.insert(0, repo)
    try:
        from learning_by_sorting.evaluators.knn import KNNEvaluator
        from learning_by_sorting.losses.groco import GroCo
        from learning_by_sorting.models.encoder import RegularEncoder
        from learning_by_sorting.models.projection import RegularProjection
        from learning_by_sorting.trainer.ssl_trainer import SSLTrainer
        from learning_by_sorting.utils.scheduler import CustomCosineSchedulerWithWarmup
    except ImportError as error:
        raise SystemExit(f'cannot import the reference from GROCO_REFERENCE_REPO={repo}: {error} '
                         '(it needs diffsort on PYTHONPATH and python3-tqdm)')

    # The package's dataloader/__init__ imports webdataset, which the views do not need.
    path = os.path.join(repo, 'learning_by_sorting', 'dataloader', 'transforms.py')
    spec = importlib.util.spec_from_file_location('reference_transforms', path)
    views = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(views)
    return types.SimpleNamespace(
        KNNEvaluator=KNNEvaluator, GroCo=GroCo, RegularEncoder=RegularEncoder,
        RegularProjection=RegularProjection, SSLTrainer=SSLTrainer,
        CosineSchedule=CustomCosineSchedulerWithWarmup, views=views)


def read_idx(file):
    with gzip.open(file, 'rb') as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class FashionMnist(torch.utils.data.Dataset):
    """Samples as the reference's preprocess_sample makes them: {'cls', 'image_aug1', ...}."""

    def __init__(self, root, train, views):
        prefix = 'train' if train else 't10k'
        self.images = read_idx(os.path.join(root, f'{prefix}-images-idx3-ubyte.gz'))
        self.labels = read_idx(os.path.join(root, f'{prefix}-labels-idx1-ubyte.gz')).astype(np.int64)
        self.views = views

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index], mode='L')
        sample = {'cls': int(self.labels[index])}
        for n, view in enumerate(self.views):
            sample[f'image_aug{n + 1}'] = view(image)
        return sample


def small_image_resnet(arch, in_channels, width):
    """torchvision's ResNet with the stem for small images, rebuilt at the given width."""
    net = getattr(torchvision.models, arch)(zero_init_residual=True)
    block = type(net.layer1[0])
    depths = [len(net.layer1), len(net.layer2), len(net.layer3), len(net.layer4)]
    net.inplanes = width
    net.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.maxpool = nn.Identity()
    net.layer1 = net._make_layer(block, width, depths[0])
    net.layer2 = net._make_layer(block, width * 2, depths[1], stride=2)
    net.layer3 = net._make_layer(block, width * 4, depths[2], stride=2)
    net.layer4 = net._make_layer(block, width * 8, depths[3], stride=2)
    net.fc = nn.Linear(width * 8 * block.expansion, 1000)

    # the initialisation torchvision's constructor gives, on the new modules
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    for m in net.modules():
        last_bn = getattr(m, 'bn3', None) or getattr(m, 'bn2', None)
        if isinstance(m, block) and last_bn is not None:
            nn.init.constant_(last_bn.weight, 0)
    return net


def build_encoder(ref, args):
    encoder = ref.RegularEncoder(args['arch'])
    if args['small_images'] or args['in_channels'] != 3 or args['width'] != 64:
        if not args['small_images']:
            raise SystemExit('the peer builds other widths and channel counts only for small_images')
        net = small_image_resnet(args['arch'], args['in_channels'], args['width'])
        encoder.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        encoder.encoder = net
    return encoder


def post_transform(view):
    return transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize(mean=view['mean'], std=view['std'])])


def train_views(ref, view):
    if view['transform_type'] != 'dino':
        raise SystemExit(f"the peer implements the 'dino' views only, not {view['transform_type']}")
    post = post_transform(view)
    crops = ref.views.get_dino_aug_transforms(size=view['image_size'], n_augs=view['n_augs'])
    return [transforms.Compose([crop, post]) for crop in crops]


def val_view(view):
    return transforms.Compose([transforms.Resize(view['resize']),
                               transforms.CenterCrop(view['image_size']), post_transform(view)])


class TimedBatches:
    """Passes a loader's batches on and times each step: from asking for a batch to asking for
    the next (or, for an epoch's last, to the end of the epoch loop)."""

    def __init__(self, loader):
        self.loader = loader
        self.step_seconds = []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        start = time.perf_counter()
        for batch in self.loader:
            yield batch
            now = time.perf_counter()
            self.step_seconds.append(now - start)
            start = now


def main():
    if sys.argv[1:] == ['--check']:
        import_reference()
        print(json.dumps({'torch': torch.__version__}))
        return
    settings = json.loads(sys.argv[1])
    ref = import_reference()
    torch.set_num_threads(settings['threads'])

    # seeding as the reference's train.py does
    seed = settings['seed']
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)

    data = settings['train_data']
    train_set = FashionMnist(data['root'], True, train_views(ref, data))
    sampler = torch.utils.data.RandomSampler(train_set, num_samples=data['dataset_size'])
    train_loader = TimedBatches(torch.utils.data.DataLoader(
        train_set, batch_size=data['batch_size'], sampler=sampler, num_workers=data['num_workers'],
        drop_last=True, persistent_workers=data['num_workers'] > 0))
    steps_per_epoch = len(train_loader)

    encoder = build_encoder(ref, settings['encoder'])
    projection = ref.RegularProjection(input_dim=encoder.feature_dim, **settings['projection'])
    loss = ref.GroCo(distributed=False, **settings['loss']).to('cpu')

    parameters = [p for p in list(encoder.parameters()) + list(projection.parameters())
                  if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=settings['learning_rate'], **settings['sgd'])
    epochs = settings['epochs']
    schedule = ref.CosineSchedule(optimizer, settings['learning_rate'], epochs * steps_per_epoch,
                                  warmup_epochs=settings['warmup_epochs'] * steps_per_epoch)

    run = types.SimpleNamespace(model_dir=None, resume=None)
    trainer = ref.SSLTrainer(
        encoder=encoder, projection=projection, loss=loss, optimizer=optimizer,
        lr_scheduler=schedule, epochs=epochs, config=run, train_data_loader=train_loader,
        gpu=None, scheduler_update='iter', writer=None, save_latest=False,
        log_step=settings['log_step'], clip_grad=settings['clip_grad'],
        mixed_precision=settings['mixed_precision'])

    # The reference prints its progress on stdout; the results line must stay the last one there.
    stdout = sys.stdout
    sys.stdout = sys.stderr
    epoch_logs = []
    for epoch in range(epochs):
        epoch_logs.append(trainer._train_epoch(epoch))
    step_seconds = train_loader.step_seconds

    knn_settings = settings['knn']
    bank_data, query_data = settings['knn_bank'], settings['knn_query']
    loaders = []
    for view in (bank_data, query_data):
        dataset = FashionMnist(view['root'], view['train'], [val_view(view)])
        loaders.append((torch.utils.data.DataLoader(
            dataset, batch_size=view['batch_size'], shuffle=False,
            num_workers=view['num_workers']), None))
    evaluator = ref.KNNEvaluator(**knn_settings)
    started = time.perf_counter()
    knn = evaluator.validate(epoch=epochs - 1, encoder=encoder, dataloaders_samplers=loaders, gpu=None)
    knn_seconds = time.perf_counter() - started
    sys.stdout = stdout

    print(json.dumps({
        'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'steps': trainer.step, 'steps_per_epoch': steps_per_epoch,
        'step_seconds': step_seconds, 'train_loss': [log['train_loss'] for log in epoch_logs],
        'knn': {key: value * 100 for key, value in knn.items()}, 'knn_seconds': knn_seconds,
    }), flush=True)


if __name__ == '__main__':
    main()
