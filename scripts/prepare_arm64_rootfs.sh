#!/usr/bin/env bash
# Prepare an arm64 (aarch64) Debian root filesystem with numpy and ONNX Runtime, for
# `prunegate parity-arm64`: the exported artifact is then run by ONNX Runtime's aarch64 build under
# qemu user-mode emulation, and its logits are compared with the host's. Correctness only: timings
# under emulation mean nothing and are never reported.
#
# Usage (as root; needs network access to the Debian mirror and the Python package registry):
#   scripts/prepare_arm64_rootfs.sh [ROOTFS_DIR]          # default: .prunegate-cache/arm64-rootfs
# Environment:
#   SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
#   ORT_VERSION / NUMPY_VERSION (default: the versions in the project's .venv, so both sides match).
#
# Steps: apt-get install debootstrap qemu-user-static binfmt-support (if missing); enable the
# qemu-aarch64 binfmt_misc handler (mounting binfmt_misc if needed); debootstrap --arch=arm64 a minimal
# Debian with python3; `pip download --platform manylinux2014_aarch64 --only-binary=:all:
# --python-version <rootfs python>` the wheels of onnxruntime and numpy (no dependencies: importing
# onnxruntime needs only numpy); install them offline into the rootfs's /usr/local/lib/python3.X/
# dist-packages; copy qemu-aarch64-static into the rootfs (so `chroot ROOTFS qemu-aarch64-static
# /usr/bin/python3` works even where binfmt_misc is unavailable later); smoke-test the import.
# Re-running it on a prepared directory only re-checks and re-installs the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOTFS="${1:-.prunegate-cache/arm64-rootfs}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
VENV_PY=".venv/bin/python"
[ -x "$VENV_PY" ] || VENV_PY=python3
ORT_VERSION="${ORT_VERSION:-$($VENV_PY -c 'import onnxruntime; print(onnxruntime.__version__)')}"
NUMPY_VERSION="${NUMPY_VERSION:-$($VENV_PY -c 'import numpy; print(numpy.__version__)')}"
log() { echo "prepare_arm64_rootfs: $*" >&2; }
die() { echo "prepare_arm64_rootfs: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null; then
    log "installing debootstrap qemu-user-static binfmt-support"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support >/dev/null
fi

# binfmt_misc lets the kernel run arm64 binaries through qemu (needed by debootstrap's second stage).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
        || die "binfmt_misc is not available (cannot mount /proc/sys/fs/binfmt_misc); run this on a host or a privileged container"
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 || die "cannot enable the qemu-aarch64 binfmt handler"
fi

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    log "debootstrap $SUITE arm64 into $ROOTFS (minbase + python3; downloads ~40 MB of .debs)"
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    debootstrap --arch=arm64 --variant=minbase --include=python3,libstdc++6 "$SUITE" "$ROOTFS" "$MIRROR" >&2 \
        || die "debootstrap failed (see $ROOTFS/debootstrap/debootstrap.log)"
fi
cp /usr/bin/qemu-aarch64-static "$ROOTFS/usr/bin/qemu-aarch64-static"

PYVER="$(basename "$(readlink -f "$ROOTFS/usr/bin/python3")")"   # e.g. python3.11
PYVER="${PYVER#python}"
[ -n "$PYVER" ] || die "cannot find the rootfs's python3 version"
WHEELS="$ROOTFS/opt/prunegate/wheels"
SITE="$ROOTFS/usr/local/lib/python$PYVER/dist-packages"
mkdir -p "$WHEELS" "$SITE"
log "downloading aarch64 wheels onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION for Python $PYVER"
"$VENV_PY" -m pip download --quiet --dest "$WHEELS" --no-deps --only-binary=:all: \
    --platform manylinux2014_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    --python-version "$PYVER" --implementation cp \
    "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
log "installing the wheels offline into $SITE"
"$VENV_PY" -m pip install --quiet --no-index --no-deps --upgrade --target "$SITE" \
    --platform manylinux2014_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    --python-version "$PYVER" --implementation cp --only-binary=:all: "$WHEELS"/*.whl

log "smoke test: import onnxruntime under emulation (chroot, /sys and /proc not mounted)"
chroot "$ROOTFS" /usr/bin/qemu-aarch64-static /usr/bin/python3 -c \
    'import platform, numpy, onnxruntime as o; print(platform.machine(), "numpy", numpy.__version__, "onnxruntime", o.__version__, o.get_available_providers())'
log "ready: $ROOTFS"
