// Models: the ResNet encoders, the projection head and linear classifier, and their registry.
export * from './resnet.js';
export * from './heads.js';
export * from './registry.js';
