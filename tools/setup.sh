#!/usr/bin/env bash
# Install everything ase-hamgnn needs into a local virtual environment; idempotent.
#
#   tools/setup.sh [VENV]          (default .venv; the Makefile calls this)
#
# 1. Debian packages: a C/C++ compiler, MUMPS (for Kwant) and OpenBLAS (which MUMPS then
#    uses instead of the reference BLAS: ~4x faster factorizations), via apt-get when missing.
# 2. The virtual environment, CPU PyTorch (pinned by $TORCH_SPEC), the package in editable
#    mode with its test extras.
# 3. Kwant 1.5 built from source against numpy 2 with MUMPS (tools/install-kwant.sh), and
#    python-mumps (the same MUMPS for ase_hamgnn.spectra.shift_invert).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-.venv}
python=${PYTHON:-python3}
torch_spec=${TORCH_SPEC:-torch==2.13.0}

need_pkgs=()
for pkg in gcc g++ make libmumps-seq-dev libopenblas0-pthread; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "Installing Debian packages: ${need_pkgs[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
        echo "error: need root (or sudo) to apt-get install ${need_pkgs[*]}" >&2; exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "error: Python >= 3.11 needed; set PYTHON=python3.11" >&2; exit 1; }
    echo "Creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pipq() { "$py" -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

if ! "$py" -c "import torch" 2>/dev/null; then
    echo "Installing $torch_spec"
    pipq "$torch_spec"
fi
# Kwant's build needs numpy/scipy/cython/tinyarray first; pyproject lists kwant, so it must be
# present before the editable install or pip would try (and fail) to build it itself.
pipq "numpy>=1.26" "scipy>=1.11" cython tinyarray
bash "$here/tools/install-kwant.sh" "$venv"
# python-mumps: MUMPS for large-system spectra (ase_hamgnn.spectra.shift_invert: exact state counts
# from an LDL^T factorization, fast multi-column solves), built against the Debian MUMPS
# above in about 20 s; pip keeps the built wheel in its cache for later fresh clones.
if ! "$py" -c "import mumps" 2>/dev/null; then
    echo "Installing python-mumps"
    pipq "python-mumps>=0.0.4"
fi
echo "Installing ase-hamgnn (editable) and its dependencies"
pipq -e "$here[test]"
"$py" -c "import ase_hamgnn, textures, kwant, torch, e3nn, mumps" \
    || { echo "error: installation incomplete" >&2; exit 1; }
