// Bounds on the shape of an unpickled value, so that code walking it recursively stays bounded.

import type { PickleLimits } from './pickle_reader.js';
import { OrderedDict, PyObject } from './values.js';

function children(node: unknown): unknown[] | undefined {
  if (Array.isArray(node)) return node;
  if (node instanceof Map) {
    const items: unknown[] = [];
    for (const [key, value] of node) items.push(key, value);
    if (node instanceof OrderedDict && node.attributes) items.push(node.attributes);
    return items;
  }
  if (node instanceof Set) return [...node];
  if (node instanceof PyObject) return [node.state];
  return undefined;
}

/**
 * Checks that the result nests at most `maxDepth` containers deep, has at most `maxTreeNodes`
 * values when shared parts are counted at each use, and has no cycles, so that code walking it
 * recursively stays bounded. Linear in the number of distinct containers.
 */
export function checkTree(root: unknown, limits: PickleLimits): void {
  const rootChildren = children(root);
  if (!rootChildren) return;

  interface Frame { node: object; items: unknown[]; next: number; depth: number; size: number }
  const finished = new Map<object, { depth: number; size: number }>();
  const onPath = new Set<object>([root as object]);
  const path: Frame[] = [{ node: root as object, items: rootChildren, next: 0, depth: 0, size: 1 }];

  while (path.length > 0) {
    const frame = path[path.length - 1];
    if (frame.next < frame.items.length) {
      const child = frame.items[frame.next++];
      const items = children(child);
      if (!items) {
        frame.size += 1;
      } else if (onPath.has(child as object)) {
        throw new Error('the pickle holds a container that contains itself (a cycle)');
      } else {
        const known = finished.get(child as object);
        if (known) {
          if (path.length + known.depth > limits.maxDepth) {
            throw new Error(`nesting deeper than the limit of ${limits.maxDepth}`);
          }
          frame.depth = Math.max(frame.depth, known.depth);
          frame.size += known.size;
        } else {
          if (path.length + 1 > limits.maxDepth) {
            throw new Error(`nesting deeper than the limit of ${limits.maxDepth}`);
          }
          onPath.add(child as object);
          path.push({ node: child as object, items, next: 0, depth: 0, size: 1 });
        }
      }
      if (frame.size > limits.maxTreeNodes) {
        throw new Error(
          `the result has more than ${limits.maxTreeNodes} values counting shared parts ` +
            'at each use (limit maxTreeNodes)',
        );
      }
      continue;
    }

    path.pop();
    onPath.delete(frame.node);
    const done = { depth: frame.depth + 1, size: frame.size };
    finished.set(frame.node, done);
    const parent = path[path.length - 1];
    if (parent) {
      parent.depth = Math.max(parent.depth, done.depth);
      parent.size += done.size;
      if (parent.size > limits.maxTreeNodes) {
        throw new Error(
          `the result has more than ${limits.maxTreeNodes} values counting shared parts ` +
            'at each use (limit maxTreeNodes)',
        );
      }
    }
  }
}
