#!/usr/bin/env bash
# Meta-train an LSTM optimizer on the MNIST MLP within a wall-clock budget, then evaluate it on the
# held-out eval split (5 seeds x 1,000 steps) beside Adam at lr 1e-3 and Adam tuned over a 5-point grid.
#   benchmarks/meta_train_vs_adam.sh [rp|rp_si|dm] [minutes] [out-dir]
set -euo pipefail
model=${1:-rp}
minutes=${2:-14}
out=${3:-${L2O_STORAGE:-$HOME/.l2o/storage}/meta_train_vs_adam/$model}
py=${PYTHON:-python}
mkdir -p "$out"
"$py" -m l2o meta-train --model "$model" --task mnist_mlp --threads 2 --max-minutes "$minutes" \
    --curriculum 100,200,500,1000 --epochs 1000 --eval-every 4 --patience 5 --eval-seeds 4 \
    --meta-lr 3e-3 --imitation-prob 0.2 --teacher-lr 3e-3 --checkpoint-every 4 --out "$out/checkpoint.pt" --no-progress
"$py" -m l2o eval --task mnist_mlp --optimizer "lstm:checkpoint=$out/checkpoint.pt" --optimizer adam:lr=1e-3 \
    --tune adam --lr-grid 1e-4,3e-4,1e-3,3e-3,1e-2 --steps 1000 --seeds 5 --out "$out/eval" --no-progress
