// groco's public API, one namespace per layer.
export * as torch from './torch/index.js';
export * as diffsort from './diffsort/index.js';
export * as losses from './losses/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as config from './config/index.js';
export * as distributed from './distributed/index.js';
export { knnAccuracy, knnPredict, knnCorrect } from './eval/knn.js';
export { extractFeatures } from './eval/features.js';
export { linearProbe, topkAccuracy } from './eval/linear_probe.js';
export { writeNpy } from './eval/npy.js';
export { pretrain } from './train/pretrain.js';
export { load, save } from './torch/save.js';
