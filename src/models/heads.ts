// The heads put on the encoder's features: the projection head of pretraining and the linear
// classifier of the linear probe. Module and key names follow the reference implementation, so
// its checkpoints load: `projection.0.weight`, `projection.1.running_mean`, ... and
// `projection.weight`, `projection.bias`.
import { nn, type Generator, type Tensor } from '../torch/index.js';

const { Module, Linear, BatchNorm1d, ReLU, Sequential } = nn;

export interface ProjectionHeadOptions {
  /** Linear layers in the head (default 3); the first `numLayers - 1` keep the input width. */
  numLayers?: number;
  /** Width of the output (default 2048 for GroCo; SimCLR uses 128). */
  outputDim?: number;
  /** Normalise the input features with a BatchNorm1d first (default false). */
  batchNormFirst?: boolean;
  generator?: Generator;
}

function checkInt(owner: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${owner}: argument '${name}' expected an integer >= ${min}, ` +
      `got ${String(value)}`);
  }
}

/**
 * `numLayers - 1` times [Linear(d, d, no bias), BatchNorm1d(d), ReLU], then Linear(d, out) whose
 * bias exists but is frozen, then BatchNorm1d(out) without affine parameters.
 */
export class ProjectionHead extends Module {
  readonly projection: nn.Sequential;
  readonly inputDim: number;
  readonly outputDim: number;
  /** The output layer, whose bias stays at its initial value ("for comparability"). */
  readonly output: nn.Linear;

  constructor(inputDim: number, options: ProjectionHeadOptions = {}) {
    super();
    const numLayers = options.numLayers ?? 3;
    const outputDim = options.outputDim ?? 2048;
    checkInt('ProjectionHead', 'inputDim', inputDim, 1);
    checkInt('ProjectionHead', 'numLayers', numLayers, 1);
    checkInt('ProjectionHead', 'outputDim', outputDim, 1);
    this.inputDim = inputDim;
    this.outputDim = outputDim;
    const generator = options.generator;

    const layers: nn.Module[] = [];
    if (options.batchNormFirst ?? false) layers.push(new BatchNorm1d(inputDim));
    for (let i = 0; i < numLayers - 1; i++) {
      layers.push(new Linear(inputDim, inputDim, { bias: false, generator }),
        new BatchNorm1d(inputDim), new ReLU());
    }
    this.output = new Linear(inputDim, outputDim, { generator });
    layers.push(this.output, new BatchNorm1d(outputDim, { affine: false }));
    this.projection = this.registerModule('projection', new Sequential(...layers));
    // the bias exists (checkpoints carry it) but is not trained, as in the reference
    this.output.param('bias').requiresGrad_(false);
  }

  forward(features: Tensor): Tensor {
    return this.projection.forward(features);
  }
}

export interface LinearClassifierOptions {
  generator?: Generator;
}

/** Linear(featureDim, numClasses) with weights N(0, 0.01) and bias 0, for the linear probe. */
export class LinearClassifier extends Module {
  readonly projection: nn.Linear;

  constructor(readonly inputDim: number, readonly numClasses = 1000,
    options: LinearClassifierOptions = {}) {
    super();
    checkInt('LinearClassifier', 'inputDim', inputDim, 1);
    checkInt('LinearClassifier', 'numClasses', numClasses, 1);
    this.projection = this.registerModule('projection',
      new Linear(inputDim, numClasses, { generator: options.generator }));
    nn.init.normalInit_(this.projection.param('weight'), 0, 0.01, options.generator);
    nn.init.constant_(this.projection.param('bias'), 0);
  }

  forward(features: Tensor): Tensor {
    return this.projection.forward(features);
  }
}

/** The parameters an optimizer should update: those that require a gradient. */
export function trainableParameters(...modules: nn.Module[]): Tensor[] {
  return modules.flatMap((m) => m.parameters().filter((p) => p.requiresGrad));
}
