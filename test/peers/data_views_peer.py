"""torchvision peer for test/data_views_torchvision.test.ts.

Reads a JSON list of cases (an image file and view parameters sampled by the TypeScript
pipeline), applies the same operations with torchvision's functional API on PIL images
(plus PIL's GaussianBlur, as the reference repository does), and writes the normalised
float32 views, concatenated, to the output file.
"""
import json
import sys

import numpy as np
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps
from torchvision.transforms import InterpolationMode

MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def render(case):
    img = Image.open(case["image"])
    img = img.convert("RGB" if case["channels"] == 3 else "L")
    p = case["params"]
    mode = MODES[case["interpolation"]]
    if case["kind"] == "center":
        img = F.resize(img, case["resize"], mode)
        img = F.center_crop(img, case["crop"])
    else:
        box = p["box"]
        img = F.resized_crop(img, box["top"], box["left"], box["height"], box["width"],
                             [case["size"], case["size"]], mode)
    if p["flip"]:
        img = F.hflip(img)
    jitter = p["jitter"]
    if jitter is not None:
        for part in jitter["order"]:
            if part == 0:
                img = F.adjust_brightness(img, jitter["brightness"])
            elif part == 1:
                img = F.adjust_contrast(img, jitter["contrast"])
            elif part == 2:
                img = F.adjust_saturation(img, jitter["saturation"])
            else:
                img = F.adjust_hue(img, jitter["hue"])
    if p["grayscale"]:
        img = F.rgb_to_grayscale(img, num_output_channels=len(img.getbands()))
    if p["blurSigma"] is not None:
        img = img.filter(ImageFilter.GaussianBlur(radius=p["blurSigma"]))
    if p["solarize"]:
        img = ImageOps.solarize(img, 128)
    tensor = F.normalize(F.to_tensor(img), case["mean"], case["std"])
    return tensor.numpy().astype(np.float32)


def all_colours_hue(out_path, hue):
    """adjust_hue over every 24-bit colour (a 4096 x 4096 image)."""
    codes = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1)
    img = Image.fromarray(rgb.astype(np.uint8).reshape(4096, 4096, 3), "RGB")
    np.asarray(F.adjust_hue(img, hue)).tofile(out_path)


def main():
    if sys.argv[1] == "hue":
        all_colours_hue(sys.argv[2], float(sys.argv[3]))
        return
    cases = json.load(open(sys.argv[1]))
    with open(sys.argv[2], "wb") as out:
        for case in cases:
            out.write(render(case).tobytes())


if __name__ == "__main__":
    main()
