// The data pipeline: shards, image folders, IDX files, views, loaders, preprocessing.
// Everything produces plain typed arrays; the trainer turns them into tensors.

export { braceExpand, expandShardList, resolveShards, type ResolvedShards } from './brace.js';
export {
  BROKEN_KINDS, BrokenInputLog, DataError, emptyCounts, warnToStderr,
  type BrokenCounts, type BrokenInput, type BrokenKind, type WarningHandler,
} from './broken.js';
export { fashionMnistFiles, parseIdx, readIdx, readIdxDataset, type IdxArray, type IdxDataset } from './idx.js';
export { createImage, decodeImage, encodeJpeg, encodePng, toChannels, type Image8 } from './image.js';
export {
  IMAGE_FILE_EXTENSIONS, listImageFolder, listImageNet, type FolderItem, type ImageFolder,
} from './image_folder.js';
export {
  DataLoader, type Batch, type DatasetSpec, type EpochSummary, type LoaderOptions, type ViewTensor,
} from './loader.js';
export {
  FASHION_MNIST_CLASSES, preprocessFashionMnist, preprocessFolder, preprocessImageNet,
  type PreprocessOptions, type PreprocessProgress, type PreprocessSummary, type SplitSummary,
} from './preprocess.js';
export { pickle, unpickle, UnpicklingError, type PyValue } from './pyd.js';
export { hashSeed, Rng } from './rng.js';
export {
  epochLength, planItems, planShards, shuffleBuffer, splitAssignments,
  type ItemBatch, type ShardAssignment,
} from './sampling.js';
export { listTar, readTar, TarFormatError, TarWriter, type TarEntry, type TarWriterOptions } from './tar.js';
export { gaussianBlurPil, boxRadiusForSigma } from './transforms/blur.js';
export {
  adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, hueShift, rgbToHsv, solarize,
} from './transforms/color.js';
export {
  centerCropBox, randomResizedCropBox, roundHalfEven, shorterSideSize,
} from './transforms/geometry.js';
export { copyBox, resize, resizedCrop, type Box, type Interpolation } from './transforms/resample.js';
export { IMAGENET_MEAN, IMAGENET_STD, normalizeTable, toNormalizedTensor } from './transforms/tensor.js';
export {
  scaledViewSizes, TRANSFORM_TYPES, viewSpecs, ViewPipeline,
  type CenterViewSpec, type RandomViewSpec, type TransformType, type ViewOptions, type ViewParams,
  type ViewSpec,
} from './views.js';
export {
  decodeField, groupMembers, IMAGE_EXTENSIONS, readShardSamples, sampleImage, sampleLabel,
  splitMemberName, type RawSample,
} from './webdataset.js';
