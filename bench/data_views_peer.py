"""PyTorch peer of bench/data_views.ts: the reference's `dino` 2-view pipeline (PIL +
torchvision transforms, PIL Gaussian blur and solarize) over the same JPEG shards, read
with Python's tarfile in an IterableDataset split over DataLoader workers, as webdataset
does. Prints one JSON line with the throughput."""
import argparse
import io
import json
import random
import tarfile
import time

import torch
from PIL import Image, ImageFilter, ImageOps
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torchvision import transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Blur:
    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        if random.random() <= self.p:
            return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))
        return img


class Solarize:
    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


def view(blur, solarize):
    steps = [
        transforms.RandomResizedCrop(224, scale=(0.14, 1.0),
                                     interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        Blur(blur),
    ]
    if solarize:
        steps.append(Solarize(0.2))
    steps += [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    return transforms.Compose(steps)


class Shards(IterableDataset):
    def __init__(self, shards):
        self.shards = shards
        self.views = [view(1.0, False), view(0.1, True)]

    def __iter__(self):
        info = get_worker_info()
        mine = self.shards if info is None else self.shards[info.id::info.num_workers]
        for shard in mine:
            with tarfile.open(shard, "r|") as tar:
                sample, key = {}, None
                for member in tar:
                    name = member.name
                    k, field = name.split(".", 1)
                    if key is not None and k != key:
                        yield self.process(sample)
                        sample = {}
                    key = k
                    sample[field] = tar.extractfile(member).read()
                if sample:
                    yield self.process(sample)

    def process(self, sample):
        img = Image.open(io.BytesIO(sample["jpg"]))
        img = img.convert("RGB")
        out = {"cls": int(sample["cls"])}
        for n, t in enumerate(self.views):
            out[f"image_aug{n + 1}"] = t(img)
        return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("shards", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loader = DataLoader(Shards(args.shards), batch_size=args.batch, num_workers=args.workers,
                        drop_last=True)
    start = time.perf_counter()
    first = None
    images = 0
    for batch in loader:
        images += batch["cls"].shape[0]
        if first is None:
            first = (time.perf_counter(), images)
    end = time.perf_counter()
    print(json.dumps({
        "images": images,
        "seconds": end - start,
        "steady_images": images - first[1],
        "steady_seconds": end - first[0],
    }))


if __name__ == "__main__":
    main()
