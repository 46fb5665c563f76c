#!/bin/sh
# Install the collector's wheelhouse (a tar of requirements.txt pinning each wheel by version and
# sha256, wheels/, and tools/pip-*.whl) into its venv, without any package index. Run by the
# collector role only when the wheelhouse changed; on success it leaves STAMP, the role's marker of
# what is installed.
#
# The venv is made --without-pip and pip runs from its wheel: no ensurepip (Debian's python3-venv)
# and no pip inside the venv, which nothing but this script ever installs into.
# usage: install-wheelhouse.sh VENV TAR PYTHON_VERSION STAMP
set -eu
venv=$1 tar=$2 want=$3 stamp=$4
have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$want" ]; then
	echo "install-wheelhouse: python3 here is $have; the wheelhouse was built for $want (the control node's)" >&2
	exit 3
fi
[ -x "$venv/bin/python" ] || python3 -m venv --without-pip "$venv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xf "$tar" -C "$work"
set -- "$work"/tools/pip-*.whl
"$venv/bin/python" "$1/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-index --no-deps \
	--require-hashes --find-links "$work/wheels" -r "$work/requirements.txt"
rm -f "$venv"/.wheelhouse-* "$tar"
touch "$stamp"
echo "install-wheelhouse: $(grep -c . "$work/requirements.txt") distributions in $venv"
