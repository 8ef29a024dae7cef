#!/usr/bin/env bash
# Build the LLaMA-Factory venv that `train_throughput.py --lf-python` compares against, on a CPU
# machine, the way docs/benchmarks.md's lf figures were taken:
#   bash benchmarks/lf_venv.sh [DIR]        (default /work/lfvenv; then --lf-python DIR/bin/python)
# llamafactory's dependencies pull a CUDA torch (several GB); it is swapped back for the local CPU
# torch 2.13.0, and the CUDA-only torchvision/torchaudio wheels that came with it are removed
# (LLaMA-Factory needs neither for text; _lf_runner.py tolerates a missing torchaudio).
set -euo pipefail
dir=${1:-/work/lfvenv}
python3 -m venv "$dir"
"$dir/bin/pip" install -q "llamafactory==0.9.5"
"$dir/bin/pip" install -q --no-deps --force-reinstall "torch==2.13.0"
extra=$("$dir/bin/pip" list 2>/dev/null | awk '/^(nvidia-|triton |torchvision |torchaudio )/{print $1}')
[ -z "$extra" ] || "$dir/bin/pip" uninstall -y -q $extra
"$dir/bin/python" -c "import llamafactory, torch; print('llamafactory', llamafactory.__version__, 'torch', torch.__version__)"
