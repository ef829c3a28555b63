#!/bin/sh
# Orange Pi Zero 2W: U-Boot's distro boot reads /extlinux/extlinux.conf on
# the boot partition (made from the root's /boot).
set -eu
target=${1:?usage: post-build.sh TARGET_DIR}
install -D -m 0644 "$(dirname "$0")/extlinux.conf" "$target/boot/extlinux/extlinux.conf"
