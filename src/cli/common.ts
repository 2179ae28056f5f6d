// Pieces the commands share: plain values from checkpoints, models from configs, process groups.
import { configFromValue, type ConfigDocument, type CommonConfig } from '../config/index.js';
import { createEncoder, type RegularEncoder } from '../models/index.js';
import { distributedEnv, ProcessGroup } from '../distributed/index.js';
import type { Runtime } from './runtime.js';
import type { DistributedOptions } from './args.js';

/** Maps (as checkpoints hold dicts) to plain objects, recursively. */
export function plain(value: unknown): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) out[String(k)] = plain(v);
    return out;
  }
  if (Array.isArray(value)) return Array.from(value, plain);
  return value;
}

export function checkpointConfig(value: unknown, path: string): ConfigDocument | null {
  if (value === null || value === undefined) return null;
  return configFromValue(plain(value), `${path} (its config)`);
}

export function buildEncoder(config: CommonConfig, runtime: Runtime): RegularEncoder {
  const encoder = createEncoder(config.encoder);
  if (runtime.channelsLast) encoder.toChannelsLast();
  if (runtime.device !== 'cpu') encoder.to(runtime.device);
  return encoder;
}

export function joinGroup(options: DistributedOptions): ProcessGroup | null {
  if (!options.distributed) return null;
  const env = distributedEnv();
  if (options.worldSize !== null && options.worldSize !== env.worldSize) {
    throw new Error(`--world-size ${options.worldSize} disagrees with WORLD_SIZE ${env.worldSize}`);
  }
  const timeout = (options.distTimeout ?? 300) * 1000;
  return ProcessGroup.init(env, timeout);
}
