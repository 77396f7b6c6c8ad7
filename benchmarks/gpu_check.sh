#!/usr/bin/env bash
# Every GPU check in one run (about 5 minutes on one H100): the CUDA tests, the optimizer step on
# ResNet-50's parameters (and where the compile path's step spends its time), meta-training throughput
# (with a profile of RP's unroll) and a short large-model comparison on the synthetic stand-in. Each
# part's output is kept under the out folder.
#   benchmarks/gpu_check.sh [out] [naive-yardstick]
set -uo pipefail
OUT=${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
NAIVE=${2:-../shared/reference/naive_rp_meta.py}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 L2O_DOWNLOAD=0
mkdir -p "$OUT"
part() {  # part NAME SECONDS COMMAND...: run one part with a time limit; a failed part does not stop the rest
  local name=$1 limit=$2; shift 2
  echo "== $name"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.txt"
  echo "== $name: exit $rc in $((SECONDS - t0)) s"
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
$PY -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
part tests 140 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py
part optimizer_step 110 $PY benchmarks/optimizer_step.py --device cuda --reps 100 --lstm-reps 5
part step_parts 60 $PY benchmarks/symbolic_step_parts.py
part meta_train_speed 200 $PY benchmarks/meta_train_speed.py --device cuda --reps 10 --profile 25 --compile --naive "$NAIVE"
RULE=$(mktemp --suffix .json)
echo '{"equation": "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"}' > "$RULE"
part train_large 80 $PY -m l2o train-large --model resnet18 --dataset synthetic --device cuda --amp \
  --epochs 10 --batch-size 256 --out "$OUT/large" --no-progress \
  --optimizer "symbolic:equation=$RULE" --optimizer "symbolic:equation=$RULE,impl=compile" \
  --optimizer "sgdm:lr=0.1,momentum=0.9,weight_decay=5e-4" --optimizer "adam:lr=1e-3"
rm -f "$RULE"
