// Adam and AdamW with torch.optim's updates (1.13, single-tensor path).
import { noGrad } from '../autograd.js';
import { Tensor, keep, scalarTensor } from '../tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

abstract class AdamBase extends Optimizer {
  constructor(params: ParamsInput, options: AdamOptions, defaultDecay: number) {
    const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = defaultDecay, amsgrad = false } = options;
    const name = new.target.name;
    if (!(lr >= 0)) throw new Error(`${name}: argument 'lr' expected a number >= 0, got ${lr}`);
    for (const [i, b] of betas.entries()) {
      if (!(b >= 0 && b < 1)) throw new Error(`${name}: argument 'betas[${i}]' expected a number in [0, 1), got ${b}`);
    }
    super(params, { lr, beta1: betas[0], beta2: betas[1], eps, weight_decay: weightDecay, amsgrad });
  }

  protected abstract decoupled: boolean;

  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        const o = group.options;
        const lr = o.lr as number;
        const b1 = o.beta1 as number;
        const b2 = o.beta2 as number;
        const wd = o.weight_decay as number;
        for (const p of group.params) {
          let grad = p.grad;
          if (grad === null) continue;
          const state = this.stateOf(p);
          if (!state.has('step')) {
            state.set('step', keep(scalarTensor(0)));
            state.set('exp_avg', keep(p.mul(0)));
            state.set('exp_avg_sq', keep(p.mul(0)));
            if (o.amsgrad) state.set('max_exp_avg_sq', keep(p.mul(0)));
          }
          const stepT = state.get('step') as Tensor;
          stepT.add_(1);
          const step = stepT.item();
          if (this.decoupled) {
            p.mul_(1 - lr * wd);
          } else if (wd !== 0) {
            const decayed = grad.add(p, wd);
            grad.dispose();
            grad = decayed;
          }
          const expAvg = state.get('exp_avg') as Tensor;
          const expAvgSq = state.get('exp_avg_sq') as Tensor;
          expAvg.mul_(b1).add_(grad, 1 - b1);
          expAvgSq.mul_(b2).addcmul_(grad, grad, 1 - b2);
          grad.dispose();
          const bc1 = 1 - Math.pow(b1, step);
          const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, step));
          let second = expAvgSq;
          if (o.amsgrad) {
            const max = state.get('max_exp_avg_sq') as Tensor;
            const next = max.maximum(expAvgSq);
            max.copy_(next);
            next.dispose();
            second = max;
          }
          const root = second.sqrt();
          const denom = root.div_(bc2Sqrt).add_(o.eps as number);
          p.addcdiv_(expAvg, denom, -lr / bc1);
          denom.dispose();
        }
      }
    });
  }
}

export class Adam extends AdamBase {
  protected decoupled = false;
  constructor(params: ParamsInput, options: AdamOptions = {}) {
    super(params, options, 0);
  }
}

export class AdamW extends AdamBase {
  protected decoupled = true;
  constructor(params: ParamsInput, options: AdamOptions = {}) {
    super(params, options, 1e-2);
  }
}
