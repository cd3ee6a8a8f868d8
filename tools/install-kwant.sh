#!/usr/bin/env bash
# Build Kwant 1.5.0 from source against numpy 2 with the MUMPS solver, into the given venv.
#
# Kwant 1.5.0 ships only a source distribution whose pre-generated Cython C files do not
# compile against numpy 2, so the C files are deleted and regenerated with Cython.  The
# built wheel is kept in a per-user cache keyed by Python and numpy versions, so a fresh
# clone installs it in seconds.  Usage: tools/install-kwant.sh PATH/TO/VENV
set -euo pipefail
venv=$(cd "${1:?usage: install-kwant.sh VENV}" && pwd)
py="$venv/bin/python"
version=1.5.0

if "$py" -c "import kwant, kwant.linalg.mumps" 2>/dev/null; then
    exit 0
fi

key=$("$py" -c "import sys, numpy; print(f'py{sys.version_info[0]}{sys.version_info[1]}-numpy{numpy.__version__}')")
cache=${ASE_HAMGNN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ase-hamgnn}/kwant-$version-$key
wheel=$(ls "$cache"/kwant-*.whl 2>/dev/null | head -n 1 || true)

if [ -z "$wheel" ]; then
    echo "Building Kwant $version from source with MUMPS (about a minute)..."
    "$py" -m pip install -q cython tinyarray scipy
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$py" -m pip download -q --no-deps --no-binary :all: -d "$work" "kwant==$version"
    tar -xzf "$work"/kwant-$version.tar.gz -C "$work"
    src="$work/kwant-$version"
    find "$src/kwant" -name '*.c' -delete
    printf '[mumps]\nlibraries = zmumps_seq mumps_common_seq\n' > "$src/build.conf"
    (cd "$src" && "$py" setup.py -q build --cython >/dev/null 2>"$work/build.log") \
        || { tail -n 30 "$work/build.log"; echo "Kwant build failed" >&2; exit 1; }
    mkdir -p "$cache"
    tmpdir=$(mktemp -d "$cache/.tmp.XXXX")
    (cd "$src" && "$py" -m pip wheel -q --no-build-isolation --no-deps -w "$tmpdir" .)
    mv "$tmpdir"/kwant-*.whl "$cache"/ && rmdir "$tmpdir"
    wheel=$(ls "$cache"/kwant-*.whl | head -n 1)
fi

"$py" -m pip install -q --no-deps "$wheel"
"$py" -c "import kwant, kwant.linalg.mumps; print('Kwant', kwant.__version__, 'with MUMPS')"
