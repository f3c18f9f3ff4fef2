#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs what is missing, builds, then
#   ./setup.sh          install + build only
#   ./setup.sh demo     ... and run the main job on the shipped example
#   ./setup.sh test     ... and run the whole test suite (what CI runs)
# Idempotent: packages already installed are not touched, and an unchanged tree rebuilds in seconds.
# DG_TORCH_PREFIX=<libtorch prefix> builds against another libtorch (a CUDA one: README "CUDA build") in
# build-torch/ instead of Debian's CPU libtorch.
set -euo pipefail
cd "$(dirname "$0")"

TORCH_PREFIX=${DG_TORCH_PREFIX:-}
BUILD_DIR=${DG_BUILD_DIR:-$([ -n "$TORCH_PREFIX" ] && echo build-torch || echo build)}
TORCH_PACKAGES=(libtorch-dev libopenblas0-pthread)
[ -n "$TORCH_PREFIX" ] && TORCH_PACKAGES=()
# python3-torch serves the exporter's unit tests (tools/export/tests) and the parity self-check.
TEST_PACKAGES=()
[ "${1:-}" = test ] && TEST_PACKAGES=(python3-torch python3-numpy)
PACKAGES=(cmake ninja-build g++ ccache pkg-config
  "${TORCH_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev
  libonig-dev libutf8proc-dev
  libgtest-dev libgmock-dev)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    local extra=()
    # Another libtorch (a pip torch ships fmt headers of its own): Debian's fmt, header-only, searched first.
    [ -n "$TORCH_PREFIX" ] && extra=(-DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DDG_FMT_INCLUDE=/usr/include)
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}"
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

install_packages
build

case "${1:-}" in
  "") ;;
  demo)
    # A real batch on the CPU with no download: a tiny Qwen-Image-Edit-2511 bundle (random weights,
    # real interfaces) edits the three example rows (single- and multi-image).
    bundle=out/models/Qwen-Image-Edit-2511-tiny
    [ -f "$bundle/torchscript/manifest.json" ] || "$BUILD_DIR/diffgentor" make-tiny --model_type qwen --out "$bundle"
    exec "$BUILD_DIR/diffgentor" edit --backend diffusers --model_name "$bundle" --device cpu \
      --input examples/edit.csv --output_name_column output_name --output_dir out/example \
      --seed 0 ;;
  test)
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 ;;
  *)
    echo "usage: ./setup.sh [demo|test]" >&2; exit 2 ;;
esac
