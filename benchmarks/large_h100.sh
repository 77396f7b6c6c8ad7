#!/usr/bin/env bash
# The large-model comparison sized for one H100 in under 10 minutes: CIFAR-10 ResNet-18, 8 epochs each,
# batch 512, bf16, cosine schedule — a symbolic rule vs SGD+momentum and Adam.
#   benchmarks/large_h100.sh [rule.json] [epochs] [out]
# rule.json: an equation JSON (e.g. from l2o meta-tune); default: the RP-style rule of optimizer_step.py.
# Needs CIFAR-10 under $L2O_DATA (or internet); offline, add --dataset synthetic by hand.
set -euo pipefail
RULE=${1:-}
EPOCHS=${2:-8}
OUT=${3:-${L2O_STORAGE:-$HOME/.l2o/storage}/large/h100-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if [[ -z "$RULE" ]]; then
  RULE="$OUT/rule.json"
  echo '{"equation": "-0.005*tanh(mt_0/0.3) - 0.004*tanh(mt_1/0.3) - 0.002*tanh(gt_0/0.7)"}' > "$RULE"
fi
python -m l2o train-large --model resnet18 --dataset cifar10 --device cuda --amp --batch-size 512 \
  --epochs "$EPOCHS" --out "$OUT" \
  --optimizer "symbolic:equation=$RULE,lr=4,impl=compile" \
  --optimizer "sgdm:lr=0.2,momentum=0.9,weight_decay=5e-4,nesterov=true" \
  --optimizer "adam:lr=2e-3"
