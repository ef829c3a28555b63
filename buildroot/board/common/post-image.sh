#!/bin/sh
# post-image.sh BINARIES_DIR [GENIMAGE_CFG]: the disk image from the board's
# genimage.cfg (default: board/common/genimage.cfg). Buildroot runs it with
# BINARIES_DIR and TARGET_DIR set; make image-sim runs it the same way.
# BOOT_DIR (default: TARGET_DIR/boot) is what goes on the boot partition.
set -eu

bin=${1:?usage: post-image.sh BINARIES_DIR [GENIMAGE_CFG]}
cfg=${2:-$(dirname "$0")/genimage.cfg}
: "${TARGET_DIR:?TARGET_DIR must name the root file system tree}"
tmp=${BUILD_DIR:-$bin}/genimage.tmp

rm -rf "$tmp"
# The root file system's /boot is the boot partition's content; the rest of
# the tree is in rootfs.squashfs already (hence a root path of /boot only).
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/boot"
cp -a "${BOOT_DIR:-$TARGET_DIR/boot}/." "$root/boot/"
genimage --rootpath "$root" --tmppath "$tmp" --inputpath "$bin" \
	--outputpath "$bin" --config "$cfg"
rm -rf "$tmp"
