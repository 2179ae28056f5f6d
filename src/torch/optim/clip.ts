// Gradient-norm clipping (torch.nn.utils.clip_grad_norm_) and the mixed-precision loss scaler.
import { noGrad } from '../autograd.js';
import { stack, Tensor } from '../tensor.js';

/** Scales gradients so their total norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  return noGrad(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
    if (grads.length === 0) return 0;
    const norms = grads.map((g) => g.norm(normType));
    const all = stack(norms);
    const totalT = normType === Infinity ? all.max() : all.norm(normType);
    const total = totalT.item();
    for (const t of [...norms, all, totalT]) t.dispose();
    const coef = maxNorm / (total + 1e-6);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    for (const g of grads) g.dispose();
    return total;
  });
}

/**
 * Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler): scale the loss, then
 * `unscaleAndCheck` before clipping, `stepped` reports whether the step may be taken, `update`
 * grows or backs off the scale. Its state goes into checkpoints.
 */
export class GradScaler {
  scale: number;
  growthTracker = 0;

  constructor(readonly options: { initScale?: number; growthFactor?: number; backoffFactor?: number;
    growthInterval?: number; enabled?: boolean } = {}) {
    this.scale = options.initScale ?? 65536;
  }

  get enabled(): boolean {
    return this.options.enabled ?? true;
  }

  scaleLoss(loss: Tensor): Tensor {
    return this.enabled ? loss.mul(this.scale) : loss;
  }

  /** Divides gradients by the scale; returns false when any is infinite or NaN. */
  unscaleAndCheck(params: Tensor[]): boolean {
    if (!this.enabled) return true;
    return noGrad(() => {
      let finite = true;
      for (const p of params) {
        const g = p.grad;
        if (g === null) continue;
        g.mul_(1 / this.scale);
        const ok = g.isfinite();
        const all = ok.all();
        if (all.item() === 0) finite = false;
        for (const t of [ok, all, g]) t.dispose();
      }
      return finite;
    });
  }

  update(finite: boolean): void {
    if (!this.enabled) return;
    if (!finite) {
      this.scale *= this.options.backoffFactor ?? 0.5;
      this.growthTracker = 0;
      return;
    }
    this.growthTracker++;
    if (this.growthTracker >= (this.options.growthInterval ?? 2000)) {
      this.scale *= this.options.growthFactor ?? 2;
      this.growthTracker = 0;
    }
  }

  stateDict(): { scale: number; growth_factor: number; backoff_factor: number; growth_interval: number;
    _growth_tracker: number } {
    return {
      scale: this.scale, growth_factor: this.options.growthFactor ?? 2,
      backoff_factor: this.options.backoffFactor ?? 0.5,
      growth_interval: this.options.growthInterval ?? 2000, _growth_tracker: this.growthTracker,
    };
  }

  loadStateDict(state: { scale?: number; _growth_tracker?: number }): void {
    if (typeof state.scale === 'number') this.scale = state.scale;
    if (typeof state._growth_tracker === 'number') this.growthTracker = state._growth_tracker;
  }
}
