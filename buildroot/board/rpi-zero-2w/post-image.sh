#!/bin/sh
# Raspberry Pi Zero 2 W: the boot partition holds the firmware (with
# config.txt and cmdline.txt), the device tree and the kernel; then the
# common post-image makes the disk with this board's genimage.cfg.
set -eu
bin=${1:?usage: post-image.sh BINARIES_DIR}
here=$(dirname "$0")
boot=$bin/boot-files
rm -rf "$boot"
mkdir -p "$boot"
cp -a "$bin"/rpi-firmware/. "$boot/"
cp "$bin"/*.dtb "$bin/Image" "$boot/"
BOOT_DIR=$boot "$here/../common/post-image.sh" "$bin" "$here/genimage.cfg"
