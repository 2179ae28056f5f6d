// Image folders: the ImageNet layout (root/train/<wnid>/*.JPEG, root/val/<wnid>/*) and any
// folder of class subfolders. Class index = position of the folder name in sorted order;
// files sorted within each class. Unreadable folders are reported and skipped.

import { readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

import { BrokenInputLog, errorMessage } from './broken.js';

export const IMAGE_FILE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.ppm', '.bmp', '.tif', '.tiff'];

export interface FolderItem {
  path: string;
  cls: number;
}

export interface ImageFolder {
  root: string;
  /** Class folder names in sorted order (the wnids for ImageNet). */
  classes: string[];
  items: FolderItem[];
}

function isDirectory(path: string, entry: Dirent): boolean {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  return statSync(path).isDirectory(); // follows the link; throws when it dangles or loops
}

function isImageFile(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_FILE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Lists a folder of class subfolders. Folders that cannot be read (permissions, dangling
 * or looping links) are `unreadableFolder`: warned and skipped, or an error when strict.
 * Sorting is by code point, as Python's `sorted` does.
 */
export function listImageFolder(root: string, log = new BrokenInputLog({ strict: true })): ImageFolder {
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch (error) {
    throw new Error(`listImageFolder: cannot read the dataset folder ${root}: ${errorMessage(error)}`);
  }
  const classDirs: string[] = [];
  for (const entry of entries) {
    const path = join(root, entry.name);
    try {
      if (isDirectory(path, entry)) classDirs.push(entry.name);
    } catch (error) {
      log.report({ kind: 'unreadableFolder', file: path, message: errorMessage(error) });
    }
  }
  classDirs.sort(byCodePoint);

  // A class folder that cannot be listed keeps its index (the others' labels stay right).
  const items: FolderItem[] = [];
  const classes = classDirs;
  for (const [cls, name] of classDirs.entries()) {
    const dir = join(root, name);
    let files: string[];
    try {
      files = readdirSync(dir, { withFileTypes: true })
        .filter((e) => !e.isDirectory() && isImageFile(e.name))
        .map((e) => e.name)
        .sort(byCodePoint);
    } catch (error) {
      log.report({ kind: 'unreadableFolder', file: dir, message: errorMessage(error) });
      continue;
    }
    for (const file of files) items.push({ path: join(dir, file), cls });
  }
  if (classes.length === 0) {
    throw new Error(`listImageFolder: ${root} has no readable class subfolders`);
  }
  return { root, classes, items };
}

/** ImageNet's layout: `root/<split>/<wnid>/*`. */
export function listImageNet(
  root: string,
  split: 'train' | 'val',
  log = new BrokenInputLog({ strict: true }),
): ImageFolder {
  return listImageFolder(join(root, split), log);
}
