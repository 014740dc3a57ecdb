#!/bin/sh
# Test doubles for the air-gapped path: tiny .deb files that carry the names and versions of the
# CUDA toolkit parts and of the NVIDIA Container Toolkit packages, with stub commands. The real
# ones are not obtainable on the test machines (TESTHOSTS.md). Never install these elsewhere.
# Usage: make-test-debs.sh OUTDIR   (writes OUTDIR/cuda/*.deb and OUTDIR/toolkit/*.deb)
set -eu
out=$1
rm -rf "$out"
mkdir -p "$out/cuda" "$out/toolkit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# deb DIR NAME VERSION DEPENDS [PATH CONTENT]...
deb() {
  dest=$1 name=$2 version=$3 depends=$4
  shift 4
  root="$work/$name"
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: all"
    echo "Maintainer: provision tests <tests@invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: provision test double of $name (not the real package)"
  } > "$root/DEBIAN/control"
  while [ $# -ge 2 ]; do
    mkdir -p "$root$(dirname "$1")"
    printf '%s\n' "$2" > "$root$1"
    chmod 0755 "$root$1"
    shift 2
  done
  dpkg-deb --root-owner-group --build "$root" "$dest/${name}_${version}_all.deb" >/dev/null
}

deb "$out/cuda" cuda-nvcc-12-8 12.8.93-1 "" /usr/local/cuda-12.8/bin/nvcc '#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver (provision test double)"
echo "Cuda compilation tools, release 12.8, V12.8.93"'
deb "$out/cuda" cuda-cudart-dev-12-8 12.8.90-1 ""
deb "$out/cuda" libcublas-dev-12-8 12.8.4.1-1 ""

v=1.19.1-1
deb "$out/toolkit" libnvidia-container1 "$v" ""
deb "$out/toolkit" libnvidia-container-tools "$v" "libnvidia-container1 (= $v)"
deb "$out/toolkit" nvidia-container-toolkit-base "$v" "" /usr/bin/nvidia-ctk '#!/bin/sh
echo "NVIDIA Container Toolkit CLI version 1.19.1 (provision test double)"' \
  /usr/bin/nvidia-container-runtime '#!/bin/sh
exec runc "$@"'
deb "$out/toolkit" nvidia-container-toolkit "$v" \
  "nvidia-container-toolkit-base (= $v), libnvidia-container-tools (= $v)"
