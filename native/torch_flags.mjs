// Prints compiler or linker flags for the libtorch that the addon builds against.
// Default: Debian's libtorch-dev. LIBTORCH=/path selects another build (official archive or a
// Python wheel's torch/ folder); its C++ ABI define is read from its CMake config.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.env.LIBTORCH;
const what = process.argv[2];

function abiDefine(dir) {
  const cmake = join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
  if (existsSync(cmake)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(cmake, 'utf8'));
    if (m) return m[1];
  }
  return '1';
}

function hasCuda(dir) {
  return existsSync(join(dir, 'lib', 'libtorch_cuda.so'));
}

if (!root) {
  const out = {
    include: '/usr/include /usr/include/torch/csrc/api/include',
    cflags: '-D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO',
    libs: '-ltorch -ltorch_cpu -lc10',
    ldflags: '',
  };
  process.stdout.write(out[what] ?? '');
} else {
  if (!existsSync(join(root, 'include', 'torch'))) {
    process.stderr.write(`LIBTORCH=${root}: no include/torch folder there; point LIBTORCH at an ` +
      'unpacked libtorch archive or at the torch/ folder of a PyTorch wheel\n');
    process.exit(1);
  }
  const cuda = hasCuda(root);
  const out = {
    include: `${join(root, 'include')} ${join(root, 'include', 'torch', 'csrc', 'api', 'include')}`,
    cflags: `-D_GLIBCXX_USE_CXX11_ABI=${abiDefine(root)} -DUSE_C10D_GLOO` +
      (cuda ? ' -DGROCO_WITH_CUDA' : ''),
    libs: `-ltorch -ltorch_cpu -lc10${cuda ? ' -ltorch_cuda -lc10_cuda' : ''}`,
    ldflags: `-L${join(root, 'lib')} -Wl,-rpath,${join(root, 'lib')}` +
      (cuda ? ' -Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed' : ''),
  };
  process.stdout.write(out[what] ?? '');
}
