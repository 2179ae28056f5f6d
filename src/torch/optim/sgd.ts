// Stochastic gradient descent with exactly torch.optim.SGD's update.
import { noGrad } from '../autograd.js';
import { Tensor, keep } from '../tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  maximize?: boolean;
}

export class SGD extends Optimizer {
  constructor(params: ParamsInput, options: SGDOptions) {
    const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false, maximize = false } = options;
    if (!(lr >= 0)) throw new Error(`SGD: argument 'lr' expected a number >= 0, got ${lr}`);
    if (!(momentum >= 0)) throw new Error(`SGD: argument 'momentum' expected a number >= 0, got ${momentum}`);
    if (!(weightDecay >= 0)) {
      throw new Error(`SGD: argument 'weightDecay' expected a number >= 0, got ${weightDecay}`);
    }
    if (nesterov && (momentum <= 0 || dampening !== 0)) {
      throw new Error('SGD: nesterov momentum requires a momentum and zero dampening');
    }
    super(params, {
      lr, momentum, dampening, weight_decay: weightDecay, nesterov, maximize,
    });
  }

  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        const o = group.options;
        const lr = o.lr as number;
        const momentum = o.momentum as number;
        const dampening = o.dampening as number;
        const wd = o.weight_decay as number;
        for (const p of group.params) {
          const grad = p.grad;
          if (grad === null) continue;
          let d = o.maximize ? grad.neg() : grad;
          if (d !== grad) grad.dispose();
          if (wd !== 0) {
            const decayed = d.add(p, wd);
            d.dispose();
            d = decayed;
          }
          if (momentum !== 0) {
            const state = this.stateOf(p);
            let buf = state.get('momentum_buffer') as Tensor | undefined;
            if (buf === undefined) {
              buf = keep(d.clone());
              state.set('momentum_buffer', buf);
            } else {
              buf.mul_(momentum).add_(d, 1 - dampening);
            }
            if (o.nesterov) {
              const next = d.add(buf, momentum);
              d.dispose();
              d = next;
            } else {
              d.dispose();
              d = buf;
            }
          }
          p.add_(d, -lr);
          if (d !== this.state.get(p)?.get('momentum_buffer')) d.dispose();
        }
      }
    });
  }
}
