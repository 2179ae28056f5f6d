// torchvision's ResNet family (18, 34, 50, 101, 152) as feature encoders: the same modules,
// parameter names, shapes and initialisation, without the final fully connected layer.
import { F, callOp, nn, type Generator, type Tensor } from '../torch/index.js';

const { Module, Conv2d, BatchNorm2d, Sequential, MaxPool2d, Linear } = nn;
type Module = nn.Module;

export type BlockKind = 'basic' | 'bottleneck';

export interface ResNetOptions {
  /** Channels of the stem and the first stage; the later stages have 2x, 4x and 8x (default 64). */
  width?: number;
  /** Channels of the input images (default 3). */
  inChannels?: number;
  /** A 3x3 stride-1 first convolution and no max-pool, for 28-64 px images (default false). */
  smallImages?: boolean;
  /** Start the last batch norm of every residual branch at zero (default true, as GroCo does). */
  zeroInitResidual?: boolean;
  /** Source of the initial weights (default: the global generator that `manualSeed` seeds). */
  generator?: Generator;
}

export interface ResNetSpec {
  block: BlockKind;
  /** Residual blocks in each of the four stages. */
  layers: [number, number, number, number];
}

export const resnetSpecs = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
} as const satisfies Record<string, ResNetSpec>;

export type ResNetName = keyof typeof resnetSpecs;

// torchvision's classifier has 1000 outputs; its initial weights are drawn (and dropped here) so
// that a seeded encoder holds exactly the weights a seeded torchvision model would.
const TORCHVISION_CLASSES = 1000;

function expansionOf(block: BlockKind): number {
  return block === 'basic' ? 1 : 4;
}

/** ReLU in place, as torchvision's `ReLU(inplace=True)`: saves one activation per call. */
function relu_(t: Tensor): Tensor {
  callOp('aten::relu_', [t.handle], true);
  return t;
}

/** Runs `layer` on `x` and frees `x`, which the caller no longer needs. */
function consume(layer: Module, x: Tensor): Tensor {
  const y = layer.forward(x);
  if (y !== x) x.dispose();
  return y;
}

function conv(inChannels: number, outChannels: number, kernel: 1 | 3 | 7, stride: number,
  generator?: Generator): nn.Conv2d {
  const padding = (kernel - 1) / 2;
  return new Conv2d(inChannels, outChannels, kernel, { stride, padding, bias: false, generator });
}

/** The 3x3 + 3x3 residual block of ResNet-18 and 34. */
export class BasicBlock extends Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: nn.Sequential | null,
    generator?: Generator) {
    super();
    this.conv1 = this.registerModule('conv1', conv(inPlanes, planes, 3, stride, generator));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', conv(planes, planes, 3, 1, generator));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.downsample = downsample === null ? null : this.registerModule('downsample', downsample);
  }

  /** The batch norm that closes the residual branch (zeroed by `zeroInitResidual`). */
  get lastNorm(): nn.BatchNorm2d {
    return this.bn2;
  }

  forward(x: Tensor): Tensor {
    let out = relu_(consume(this.bn1, this.conv1.forward(x)));
    out = consume(this.bn2, consume(this.conv2, out));

    const identity = this.downsample === null ? x : this.downsample.forward(x);
    out.add_(identity);
    if (identity !== x) identity.dispose();
    return relu_(out);
  }
}

/** The 1x1 + 3x3 + 1x1 residual block of ResNet-50 and deeper (stride on the 3x3, "v1.5"). */
export class Bottleneck extends Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly conv3: nn.Conv2d;
  readonly bn3: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: nn.Sequential | null,
    generator?: Generator) {
    super();
    const outPlanes = planes * expansionOf('bottleneck');
    this.conv1 = this.registerModule('conv1', conv(inPlanes, planes, 1, 1, generator));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', conv(planes, planes, 3, stride, generator));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.conv3 = this.registerModule('conv3', conv(planes, outPlanes, 1, 1, generator));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(outPlanes));
    this.downsample = downsample === null ? null : this.registerModule('downsample', downsample);
  }

  get lastNorm(): nn.BatchNorm2d {
    return this.bn3;
  }

  forward(x: Tensor): Tensor {
    let out = relu_(consume(this.bn1, this.conv1.forward(x)));
    out = relu_(consume(this.bn2, consume(this.conv2, out)));
    out = consume(this.bn3, consume(this.conv3, out));

    const identity = this.downsample === null ? x : this.downsample.forward(x);
    out.add_(identity);
    if (identity !== x) identity.dispose();
    return relu_(out);
  }
}

function checkOption(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`ResNet: option '${name}' expected an integer >= ${min}, got ${String(value)}`);
  }
}

/**
 * A ResNet without its classifier: `forward` maps images (N, C, H, W) to features
 * (N, featureDim) after global average pooling. Keys and shapes are torchvision's (`conv1`, `bn1`,
 * `layer1`..`layer4`, each block `conv1`, `bn1`, ..., `downsample.0`, `downsample.1`).
 */
export class ResNet extends Module {
  readonly featureDim: number;
  readonly block: BlockKind;
  readonly smallImages: boolean;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly maxpool: nn.MaxPool2d | null;
  readonly stages: nn.Sequential[];

  constructor(spec: ResNetSpec, options: ResNetOptions = {}) {
    super();
    const width = options.width ?? 64;
    const inChannels = options.inChannels ?? 3;
    const generator = options.generator;
    checkOption('width', width, 1);
    checkOption('inChannels', inChannels, 1);
    if (!['basic', 'bottleneck'].includes(spec.block)) {
      throw new Error(`ResNet: spec.block expected 'basic' or 'bottleneck', got '${spec.block}'`);
    }
    if (spec.layers.length !== 4) {
      throw new Error(`ResNet: spec.layers expected 4 stage depths, got ${spec.layers.length}`);
    }
    spec.layers.forEach((n, i) => checkOption(`layers[${i}]`, n, 1));
    this.block = spec.block;
    this.smallImages = options.smallImages ?? false;
    const expansion = expansionOf(spec.block);

    // stem
    this.conv1 = this.registerModule('conv1', this.smallImages
      ? conv(inChannels, width, 3, 1, generator)
      : conv(inChannels, width, 7, 2, generator));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(width));
    this.maxpool = this.smallImages ? null
      : this.registerModule('maxpool', new MaxPool2d(3, 2, 1));

    // four stages; the first block of stages 2-4 halves the resolution
    let inPlanes = width;
    this.stages = spec.layers.map((blocks, i) => {
      const planes = width * 2 ** i;
      const stride = i === 0 ? 1 : 2;
      const stage = this.makeStage(inPlanes, planes, blocks, stride, generator);
      inPlanes = planes * expansion;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.featureDim = inPlanes;

    // torchvision builds its classifier here and then re-initialises every convolution
    new Linear(this.featureDim, TORCHVISION_CLASSES, { generator }).dispose();
    this.initialise(options.zeroInitResidual ?? true, generator);
  }

  private makeStage(inPlanes: number, planes: number, blocks: number, stride: number,
    generator?: Generator): nn.Sequential {
    const expansion = expansionOf(this.block);
    const Block = this.block === 'basic' ? BasicBlock : Bottleneck;
    const list: Module[] = [];
    for (let b = 0; b < blocks; b++) {
      const blockIn = b === 0 ? inPlanes : planes * expansion;
      const blockStride = b === 0 ? stride : 1;
      let downsample: nn.Sequential | null = null;
      if (b === 0 && (stride !== 1 || inPlanes !== planes * expansion)) {
        // made before the block, as torchvision does, so the random draws come in its order
        downsample = new Sequential(conv(inPlanes, planes * expansion, 1, stride, generator),
          new BatchNorm2d(planes * expansion));
      }
      list.push(new Block(blockIn, planes, blockStride, downsample, generator));
    }
    return new Sequential(...list);
  }

  private initialise(zeroInitResidual: boolean, generator?: Generator): void {
    for (const [, module] of this.namedModules()) {
      if (module instanceof Conv2d) {
        nn.init.kaimingNormal_(module.param('weight'),
          { mode: 'fan_out', nonlinearity: 'relu', generator });
      } else if (module instanceof BatchNorm2d) {
        nn.init.constant_(module.param('weight'), 1);
        nn.init.constant_(module.param('bias'), 0);
      }
    }
    if (!zeroInitResidual) return;
    for (const stage of this.stages) {
      for (const block of stage.layers as (BasicBlock | Bottleneck)[]) {
        nn.init.constant_(block.lastNorm.param('weight'), 0);
      }
    }
  }

  forward(images: Tensor): Tensor {
    if (images.ndim !== 4) {
      throw new Error('ResNet: expected images of shape (N, C, H, W), got ' +
        `[${images.shape.join(', ')}]`);
    }
    const expected = this.conv1.inChannels;
    if (images.size(1) !== expected) {
      throw new Error(`ResNet: expected images with ${expected} channels, got shape ` +
        `[${images.shape.join(', ')}]`);
    }

    let x = relu_(consume(this.bn1, this.conv1.forward(images)));
    if (this.maxpool !== null) x = consume(this.maxpool, x);
    for (const stage of this.stages) x = consume(stage, x);

    const pooled = F.adaptiveAvgPool2d(x, 1);  // (N, featureDim, 1, 1)
    x.dispose();
    const features = pooled.flatten(1);
    pooled.dispose();
    return features;
  }
}

export function resnet(name: ResNetName, options: ResNetOptions = {}): ResNet {
  const spec = resnetSpecs[name];
  if (spec === undefined) {
    throw new Error(`resnet: unknown architecture '${String(name)}'; known: ` +
      `${Object.keys(resnetSpecs).join(', ')}`);
  }
  return new ResNet({ block: spec.block, layers: [...spec.layers] }, options);
}

export const resnet18 = (options: ResNetOptions = {}): ResNet => resnet('resnet18', options);
export const resnet34 = (options: ResNetOptions = {}): ResNet => resnet('resnet34', options);
export const resnet50 = (options: ResNetOptions = {}): ResNet => resnet('resnet50', options);
export const resnet101 = (options: ResNetOptions = {}): ResNet => resnet('resnet101', options);
export const resnet152 = (options: ResNetOptions = {}): ResNet => resnet('resnet152', options);

/**
 * The reference's encoder module: a ResNet held as its child `encoder`, so its state-dict keys
 * are `encoder.conv1.weight`, ... as in GroCo checkpoints (`module.encoder.` when saved from a
 * data-parallel wrapper; loading accepts both).
 */
export class RegularEncoder extends Module {
  readonly encoder: ResNet;

  constructor(readonly arch: ResNetName, options: ResNetOptions = {}) {
    super();
    this.encoder = this.registerModule('encoder', resnet(arch, options));
  }

  get featureDim(): number {
    return this.encoder.featureDim;
  }

  forward(images: Tensor): Tensor {
    return this.encoder.forward(images);
  }
}
