#!/bin/sh
# post-build.sh TARGET_DIR: what the overlay cannot say by itself — the
# board's profile in terminald's config and the programme's public key.
# Buildroot runs it after the overlay with BR2_CONFIG set (the values come
# from BR2_PACKAGE_TERMINALD_BOARD and _PROGRAMME_KEY); make image-sim runs
# it with TUANJU_BOARD_PROFILE and TUANJU_PROGRAMME_KEY instead.
set -eu

target=${1:?usage: post-build.sh TARGET_DIR}

# brvar NAME: a string option from Buildroot's .config, unquoted.
brvar() {
	[ -n "${BR2_CONFIG:-}" ] || return 0
	sed -n "s/^$1=\"\(.*\)\"\$/\1/p" "$BR2_CONFIG"
}
profile=${TUANJU_BOARD_PROFILE-$(brvar BR2_PACKAGE_TERMINALD_BOARD)}
key=${TUANJU_PROGRAMME_KEY-$(brvar BR2_PACKAGE_TERMINALD_PROGRAMME_KEY)}

conf=$target/etc/tuanju/terminald.toml
[ -f "$conf" ] || { echo "post-build.sh: $conf missing (is the overlay applied?)" >&2; exit 1; }
case $profile in
"" | gpio) sed -i 's/^board_profile = .*/board_profile = ""/' "$conf" ;;
*[!a-z0-9-]*) echo "post-build.sh: bad board profile name '$profile'" >&2; exit 1 ;;
*) sed -i "s/^board_profile = .*/board_profile = \"$profile\"/" "$conf" ;;
esac

if [ -n "$key" ]; then
	grep -q 'BEGIN' "$key" || { echo "post-build.sh: $key is not a PEM public key" >&2; exit 1; }
	install -D -m 0444 "$key" "$target/etc/tuanju/programme.pub"
else
	echo "post-build.sh: WARNING: no programme key: every unit will refuse its bundle" >&2
fi

# /data is the data partition's mount point; the root is read-only.
mkdir -p "$target/data"
