#!/usr/bin/env bash
# Create the environment for the DeePTB side of benchmarks/peers.py; idempotent.
#
#   bash benchmarks/peers/setup.sh [VENV]      (default benchmarks/peers/.venv; `make peers`)
#
# DeePTB (`dptb` on PyPI) pins an older PyTorch (<= 2.5.1) and torch_scatter 2.1.2, which
# has no wheels and is compiled here against that PyTorch (a few minutes on 2 cores), so it
# lives in its own virtual environment and is driven by benchmarks/peers/dptb_driver.py as a
# subprocess: nothing of it is imported into ase-hamgnn's environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$here/.venv}
python=${PYTHON:-python3}
dptb_spec=${DPTB_SPEC:-dptb==2.2.1}
stamp="$venv/.dptb-installed"
if [ -f "$stamp" ] && "$venv/bin/python" -c "import dptb" 2>/dev/null; then
    echo "DeePTB environment ready: $venv"; exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 12)))' \
        || { echo "error: DeePTB needs Python 3.9 to 3.12; set PYTHON=python3.x" >&2; exit 1; }
    echo "Creating virtual environment $venv"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pipi() { "$py" -m pip install --disable-pip-version-check "$@"; }
pipi -q --upgrade pip setuptools wheel
# The PyTorch that DeePTB accepts, as pip resolves it (DeePTB's own pin: torch<=2.5.1), and the
# build requirements of torch_scatter, which is built against it without build isolation.
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "Installing PyTorch (torch<=2.5.1, DeePTB's pin)"
    pipi -q "torch>=2.0,<=2.5.1"
fi
if ! "$py" -c "import torch_scatter" 2>/dev/null; then
    echo "Building torch_scatter 2.1.2 against $("$py" -c 'import torch; print(torch.__version__)')"
    MAX_JOBS=${MAX_JOBS:-2} FORCE_CUDA=0 pipi -q --no-build-isolation "torch_scatter==2.1.2"
fi
echo "Installing $dptb_spec"
pipi -q "$dptb_spec"
"$py" -c "import dptb, torch, torch_scatter; print('dptb', dptb.__version__ if hasattr(dptb, '__version__') else '?', 'torch', torch.__version__)" \
    || { echo "error: DeePTB installation incomplete in $venv" >&2; exit 1; }
touch "$stamp"
