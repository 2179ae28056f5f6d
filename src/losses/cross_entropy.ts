// Cross-entropy of a linear classifier's logits against class labels (the linear probe).
import { F, Tensor, tidy } from '../torch/index.js';
import { OptionChecker, apiNames, lossPrecision, describeValue, type Loss, type LossOutput,
  type OptionNamer } from './common.js';

export class CrossEntropyLoss implements Loss {
  readonly type: string = 'CrossEntropyLoss';

  constructor(options: Record<string, never> = {}, namer: OptionNamer = apiNames) {
    new OptionChecker('CrossEntropyLoss', namer).known(options, []);
  }

  /** `views[0]`: logits (B, C); `labels`: (B) int64 class indices in [0, C). Mean over B. */
  forward(views: readonly Tensor[], labels?: Tensor): LossOutput {
    const logits = views?.[0];
    if (!(logits instanceof Tensor) || logits.ndim !== 2) {
      throw new Error(`CrossEntropyLoss: argument 'views' expected [logits (B, C)], got ` +
        `${describeValue(logits ?? views)}`);
    }
    const [batch, classes] = logits.shape as [number, number];
    if (!(labels instanceof Tensor) || labels.ndim !== 1 || labels.shape[0] !== batch ||
      labels.dtype !== 'int64') {
      throw new Error(`CrossEntropyLoss: argument 'labels' expected an int64 Tensor (${batch}), ` +
        `got ${describeValue(labels)}`);
    }
    const range = tidy(() => [labels.min().item(), labels.max().item()]);
    if (range[0]! < 0 || range[1]! >= classes) {
      throw new Error(`CrossEntropyLoss: argument 'labels' expected classes in ` +
        `[0, ${classes - 1}], got values in [${range[0]}, ${range[1]}]`);
    }
    const loss = tidy(() => F.crossEntropy(lossPrecision(logits), labels));
    return { loss, info: { cross_entropy: loss.item() } };
  }

  dispose(): void {}
}
