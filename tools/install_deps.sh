#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages strata builds, tests and trains with.
# Only missing packages are installed, so a ready machine is not touched.
#   tools/install_deps.sh           what the build, the tests and the training jobs need
#   tools/install_deps.sh --torch   also Debian's PyTorch, for bench/compare_cpu.sh and
#                                   tests/golden/make_fixtures.py (not needed by the tests)
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libopenblas-openmp-dev libopenblas-dev libhdf5-dev hdf5-tools zlib1g-dev
  openmpi-bin libopenmpi-dev libboost-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libjpeg62-turbo-dev
  python3 python3-h5py python3-numpy python3-pil
  dataset-fashion-mnist fortunes
  slurm-wlm slurmctld slurmd slurm-client munge
)
[ "${1:-}" = "--torch" ] && packages+=(python3-torch)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
