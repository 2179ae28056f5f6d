#!/usr/bin/env bash
# Installs what groco needs, only what is missing, then builds the addon and the TypeScript.
# Idempotent: a second run with nothing to do takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential python3 libtorch-dev libgloo-dev libopenblas0-pthread
  python3-torch python3-torchvision python3-numpy dataset-fashion-mnist)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=''
  [ "$(id -u)" -eq 0 ] || sudo='sudo'
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# node_modules follows package-lock.json; the addon follows its sources; dist follows src.
lock_sum=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -f node_modules/.groco-lock ] || [ "$(cat node_modules/.groco-lock)" != "$lock_sum" ]; then
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$lock_sum" > node_modules/.groco-lock
fi

addon=build/Release/groco_native.node
native_sum=$(cat binding.gyp native/src/* native/torch_flags.mjs | sha256sum | cut -c1-16)
native_sum="$native_sum-${LIBTORCH:-system}"
if [ ! -f "$addon" ] || [ ! -f build/.groco-native ] || [ "$(cat build/.groco-native)" != "$native_sum" ]; then
  echo "setup: building the libtorch addon (a few minutes on 2 cores)"
  npx node-gyp rebuild -j "$(nproc)"
  echo "$native_sum" > build/.groco-native
fi

npx tsc -p tsconfig.json
