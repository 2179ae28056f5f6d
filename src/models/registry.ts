// Names a config uses for models, and the constructors they stand for: `arch: resnet50` for
// encoders, `type: RegularEncoder` / `type: RegularProjection` for the config's model sections.
import type { Generator } from '../torch/index.js';
import { ProjectionHead } from './heads.js';
import { RegularEncoder, resnet, resnetSpecs, type ResNet, type ResNetName, type ResNetOptions }
  from './resnet.js';

export type ArchitectureConstructor = (options?: ResNetOptions) => ResNet;

const architectures = new Map<string, ArchitectureConstructor>(
  (Object.keys(resnetSpecs) as ResNetName[]).map((name) => [name, (o) => resnet(name, o)]));

function unknown(what: string, name: unknown, known: Iterable<string>): Error {
  return new Error(`unknown ${what} '${String(name)}'; known: ${[...known].join(', ')}`);
}

export function architectureNames(): string[] {
  return [...architectures.keys()];
}

/** The encoder constructor for `name` (`resnet18` ... `resnet152`). */
export function architecture(name: string): ArchitectureConstructor {
  const make = architectures.get(name);
  if (make === undefined) throw unknown('architecture', name, architectures.keys());
  return make;
}

/** A config's `encoder.args` (snake_case as in the YAML). */
export interface EncoderArgs {
  arch: string;
  small_images?: boolean;
  in_channels?: number;
  width?: number;
}

/** A config's `projection.args`. */
export interface ProjectionArgs {
  num_layers?: number;
  output_dim?: number;
  batch_norm_first?: boolean;
}

const encoderTypes = ['RegularEncoder'];
const projectionTypes = ['RegularProjection'];

/** Builds the encoder a config's `encoder` section describes. */
export function createEncoder(section: { type: string; args: EncoderArgs },
  generator?: Generator): RegularEncoder {
  if (!encoderTypes.includes(section.type)) {
    throw unknown('encoder type', section.type, encoderTypes);
  }
  const { arch, small_images: smallImages, in_channels: inChannels, width } = section.args;
  if (!architectures.has(arch)) throw unknown('architecture', arch, architectures.keys());
  return new RegularEncoder(arch as ResNetName, { smallImages, inChannels, width, generator });
}

/** Builds the projection head a config's `projection` section describes, on `inputDim` features. */
export function createProjection(section: { type: string; args: ProjectionArgs }, inputDim: number,
  generator?: Generator): ProjectionHead {
  if (!projectionTypes.includes(section.type)) {
    throw unknown('projection type', section.type, projectionTypes);
  }
  const a = section.args;
  return new ProjectionHead(inputDim, {
    numLayers: a.num_layers, outputDim: a.output_dim, batchNormFirst: a.batch_norm_first, generator,
  });
}
