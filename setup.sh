#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs what is missing, builds, then
#   ./setup.sh          install + build only
#   ./setup.sh demo     ... and run the main job on the shipped example
#   ./setup.sh test     ... and run the whole test suite (what CI runs)
# Idempotent: packages and the Python environment already in place are not touched, and an unchanged tree
# rebuilds in seconds.
#
# libtorch comes from the pip `torch` wheel pinned in tools/requirements.txt (CUDA-enabled, cxx11 ABI), inside
# a virtual environment that also holds the exporter's and the parity harness's Python packages. It lives in
# $DG_VENV, default ~/.cache/diffgentor/venv-<hash of tools/requirements.txt>: every clone on the machine shares
# it, and changing a pin makes a new one (docs/development.md "The Python environment and the torch pin").
# DG_TORCH_PREFIX=<libtorch prefix> links another libtorch instead (the environment is still made).
set -euo pipefail
cd "$(dirname "$0")"

REQUIREMENTS=tools/requirements.txt
VENV=${DG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/diffgentor/venv-$(sha256sum "$REQUIREMENTS" | cut -c1-12)}
BUILD_DIR=${DG_BUILD_DIR:-build}
PACKAGES=(cmake ninja-build g++ ccache pkg-config python3 python3-venv
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev
  libonig-dev libutf8proc-dev
  libgtest-dev libgmock-dev googletest  # googletest: the sources, for the engine-only build's engine tests
  clang-format git)  # the `format` and `references` tests

# What `./setup.sh test` adds: a real Slurm cluster for the `slurm` test (tests/slurm/slurm_test.sh), and a
# headless browser for the report's end-to-end test (tests/e2e/report_e2e_test.cpp).
TEST_PACKAGES=(slurmctld slurmd slurm-client munge chromium)

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # A python3 of another origin (pyenv, a container's own) with venv and ensurepip works as well as Debian's;
  # Debian's own python3 ships ensurepip only in python3-venv.
  if [ "$(command -v python3)" != /usr/bin/python3 ] && python3 -c 'import venv, ensurepip' 2>/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-venv ]] || keep+=("$p"); done
    missing=("${keep[@]}")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The pinned Python environment; `.complete` is written last, so an interrupted install is redone whole.
python_env() {
  [ -f "$VENV/.complete" ] && return 0
  echo "setup: creating the Python environment $VENV (pins: $REQUIREMENTS)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
  touch "$VENV/.complete"
}

# ccache keyed on paths relative to the checkout, so a clone in another folder (CI's) hits the same cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}

build() {
  local prefix=${DG_TORCH_PREFIX:-$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')}
  local config="$prefix|$VENV"
  # Configure once per libtorch and environment; a change of either configures afresh.
  if [ ! -f "$BUILD_DIR/build.ninja" ] || [ "$(cat "$BUILD_DIR/.dg_config" 2>/dev/null)" != "$config" ]; then
    rm -f "$BUILD_DIR/CMakeCache.txt"
    # fmt header-only (cmake/Dependencies.cmake): the pip torch ships fmt headers of another version.
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
      -DDG_FMT_INCLUDE=/usr/include -DDG_PYTHON="$VENV/bin/python"
    echo "$config" > "$BUILD_DIR/.dg_config"
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

install_packages "${PACKAGES[@]}"
[ "${1:-}" = test ] && install_packages "${TEST_PACKAGES[@]}"
python_env
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
