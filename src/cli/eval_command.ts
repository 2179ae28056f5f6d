// `groco eval`: k-NN and linear probe of a checkpoint's encoder.
import { loadConfig, readConfigFile, writeConfigYaml } from '../config/index.js';
import { disposeCheckpoint, loadTrainingCheckpoint } from '../train/checkpoint.js';
import { RunDir } from '../train/run_dir.js';
import { configOverrides, type EvalOptions } from './args.js';
import { buildEncoder, checkpointConfig, joinGroup } from './common.js';
import { buildEvaluations } from './evaluators.js';
import { logger, setupRuntime } from './runtime.js';

export async function runEval(options: EvalOptions): Promise<Record<string, number>> {
  const group = joinGroup(options);
  const rank = group?.rank ?? 0;
  const log = logger(rank === 0);
  const checkpoint = await loadTrainingCheckpoint(options.resume);
  try {
    const base = checkpointConfig(checkpoint.config, checkpoint.path);
    if (base === null && !('encoder' in readConfigFile(options.config).value)) {
      throw new Error(`${checkpoint.path} carries no config, so the encoder is unknown: add an ` +
        `'encoder' section (type RegularEncoder, args.arch ...) to ${options.config}`);
    }
    const config = loadConfig('eval', {
      file: options.config, base,
      overrides: configOverrides(options), name: options.name,
    });
    if (config.evaluator.length === 0) throw new Error(`${options.config}: 'evaluator' lists no evaluator`);
    const runtime = setupRuntime(config, config.trainer?.mixed_precision ?? false);
    const encoder = buildEncoder(config, runtime);
    try {
      encoder.loadStateDict(checkpoint.encoder, { context: `${checkpoint.path}: encoder` });
      log(`loaded the encoder of ${checkpoint.path} (epoch ${checkpoint.epoch})`);
      const evaluations = buildEvaluations({
        config, encoder, featureDim: encoder.featureDim, runtime,
        place: { rank, worldSize: group?.worldSize ?? 1, seed: runtime.seed }, log, online: false, group,
      });
      const results: Record<string, number> = {};
      for (const e of evaluations) Object.assign(results, await e.run(checkpoint.epoch));
      if (rank === 0) {
        const run = RunDir.create(config.save_dir, config.name);
        writeConfigYaml(config, run.file('config.yaml'));
        run.writeJson('results.json', { checkpoint: checkpoint.path, epoch: checkpoint.epoch, ...results });
        run.metric({ type: 'evaluation', epoch: checkpoint.epoch, ...results });
        run.close();
        log(`results written to ${run.file('results.json')}`);
      }
      return results;
    } finally {
      encoder.dispose();
    }
  } finally {
    disposeCheckpoint(checkpoint);
    group?.destroy();
  }
}
