export * from './schema.js';
export {
  ConfigError, checkConfig, configPurpose, validateEvalConfig, validatePretrainConfig,
} from './validate.js';
export type { CheckResult, LocatedProblem, ValidateOptions } from './validate.js';
export {
  applyOverrides, configFromValue, configToYaml, loadConfig, parseConfigText, parseOverride,
  readConfigFile, writeConfigYaml,
} from './load.js';
export type { ConfigDocument, ConfigOverride, LoadConfigOptions } from './load.js';
export { formatPath } from './rules.js';
export type { ConfigPath, ConfigProblem, PathSegment } from './rules.js';
export { resolvePrecision } from './runtime.js';
export type { ComputePrecision } from './runtime.js';
