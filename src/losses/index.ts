// The losses by the names the reference's configs give them (`loss: {type, args}`).
import { CrossEntropyLoss } from './cross_entropy.js';
import { configNames, OptionChecker, type Loss, type LossContext } from './common.js';
import { groCoFromConfig } from './groco.js';
import {
  ntXentAllCombinationsFromConfig, ntXentFromConfig, ntXentMoreNegativesFromConfig,
} from './nt_xent.js';

export * from './common.js';
export * from './cross_entropy.js';
export * from './groco.js';
export * from './nt_xent.js';
export * from './similarities.js';

type Factory = (args: Record<string, unknown>, context: LossContext) => Loss;

const registry: Record<string, Factory> = {
  GroCo: groCoFromConfig,
  NT_Xent: ntXentFromConfig,
  NT_XentWithMoreNegatives: ntXentMoreNegativesFromConfig,
  NT_XentAllCombinations: ntXentAllCombinationsFromConfig,
  CrossEntropyLoss: (args) => {
    new OptionChecker('CrossEntropyLoss', configNames).known(args, []);
    return new CrossEntropyLoss();
  },
};

export const LOSS_TYPES = Object.keys(registry);

/**
 * Builds a loss from a config's `type` and `args` (snake_case, as in the reference's YAML). The
 * context carries what the run provides, such as the gather of negatives across ranks.
 */
export function createLoss(type: string, args: Record<string, unknown> = {},
  context: LossContext = {}): Loss {
  const factory = Object.hasOwn(registry, type) ? registry[type] : undefined;
  if (factory === undefined) {
    throw new Error(`loss: type expected one of ${LOSS_TYPES.join(', ')}, ` +
      `got ${JSON.stringify(type)}`);
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new Error(`loss: args of ${type} expected a mapping, got ${JSON.stringify(args)}`);
  }
  return factory(args, context);
}
