// What every command sets up before it computes: threads, device, seed, precision, logging.
import { cudaDeviceCount, manualSeed, native, setNumThreads, type DType } from '../torch/index.js';
import { resolvePrecision, type CommonConfig } from '../config/index.js';

export interface Runtime {
  device: string;
  precision: DType;
  channelsLast: boolean;
  seed: number;
}

export function setupRuntime(config: CommonConfig, mixedPrecision: boolean, seedOffset = 0): Runtime {
  const r = config.runtime;
  if (r.threads !== null) setNumThreads(r.threads);
  const device = r.device === 'cuda' ? 'cuda:0' : r.device;
  if (device.startsWith('cuda')) {
    if (!native.builtWithCuda) {
      throw new Error(`runtime.device: '${r.device}' needs a CUDA build of libtorch; this addon was built ` +
        'against a CPU libtorch. Rebuild with LIBTORCH=/path/to/cuda/libtorch, or use --device cpu.');
    }
    const index = Number(device.split(':')[1] ?? 0);
    if (index >= cudaDeviceCount()) {
      throw new Error(`runtime.device: '${r.device}' but ${cudaDeviceCount()} CUDA device(s) are visible`);
    }
  }
  const seed = (config.seed ?? 0) + seedOffset;
  manualSeed(seed);
  return {
    device,
    precision: resolvePrecision(r, mixedPrecision) as DType,
    channelsLast: r.channels_last,
    seed,
  };
}

/** Progress and results go to stderr and stdout of rank 0 only. */
export function logger(isMain: boolean): (line: string) => void {
  return (line) => {
    if (isMain) process.stderr.write(line + '\n');
  };
}
