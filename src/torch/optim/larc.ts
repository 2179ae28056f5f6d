// LARC (layer-wise adaptive rate clipping/scaling) around any optimizer, as NVIDIA apex defines
// it: the gradient of each parameter is rescaled by trust * |w| / (|g| + wd |w| + eps) after weight
// decay is folded in; the wrapped optimizer then steps with weight decay 0.
import { noGrad } from '../autograd.js';
import { Optimizer } from './optimizer.js';

export interface LARCOptions {
  trustCoefficient?: number;
  clip?: boolean;
  eps?: number;
}

export class LARC {
  readonly trustCoefficient: number;
  readonly clip: boolean;
  readonly eps: number;

  constructor(readonly optimizer: Optimizer, options: LARCOptions = {}) {
    this.trustCoefficient = options.trustCoefficient ?? 0.001;
    this.clip = options.clip ?? false;
    this.eps = options.eps ?? 1e-8;
  }

  get paramGroups() {
    return this.optimizer.paramGroups;
  }

  get lr(): number {
    return this.optimizer.lr;
  }

  setLr(lr: number): void {
    this.optimizer.setLr(lr);
  }

  zeroGrad(): void {
    this.optimizer.zeroGrad();
  }

  stateDict() {
    return this.optimizer.stateDict();
  }

  loadStateDict(...args: Parameters<Optimizer['loadStateDict']>): void {
    this.optimizer.loadStateDict(...args);
  }

  step(): void {
    const decays: number[] = [];
    noGrad(() => {
      for (const group of this.optimizer.paramGroups) {
        const wd = (group.options.weight_decay as number | undefined) ?? 0;
        decays.push(wd);
        group.options.weight_decay = 0;
        const lr = group.options.lr as number;
        for (const p of group.params) {
          const grad = p.grad;
          if (grad === null) continue;
          const pn = p.norm();
          const gn = grad.norm();
          const paramNorm = pn.item();
          const gradNorm = gn.item();
          pn.dispose();
          gn.dispose();
          if (paramNorm !== 0 && gradNorm !== 0) {
            let adaptive = this.trustCoefficient * paramNorm / (gradNorm + paramNorm * wd + this.eps);
            if (this.clip) adaptive = Math.min(adaptive / lr, 1);
            grad.add_(p, wd).mul_(adaptive);
          }
          grad.dispose();
        }
      }
    });
    try {
      this.optimizer.step();
    } finally {
      this.optimizer.paramGroups.forEach((group, i) => { group.options.weight_decay = decays[i]!; });
    }
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
