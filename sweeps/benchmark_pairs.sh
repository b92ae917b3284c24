#!/usr/bin/env bash
# The README's reproduction table: classic CIFAR-100 teacher -> student pairs on Fashion-MNIST
# (experiment=fmnist_pairs: 10k training images, 10 epochs), each student from scratch (ce), with
# kd and with four other methods, SEEDS student seeds against one teacher per pair (teacher.seed 0).
# Select on the validation split: `kd.report` ranks by val/acc_best and shows test/acc beside it.
#   bash sweeps/benchmark_pairs.sh                       # every pair (hours on 2 CPU cores)
#   PAIRS="resnet56:resnet20" SEEDS=0 bash sweeps/benchmark_pairs.sh
#   .venv/bin/python -m kd.report outputs/benchmark_pairs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}
LOSSES=${LOSSES:-ce,kd,feature,at,crd,dkd}
PAIRS=${PAIRS:-"resnet56:resnet20 wrn_40_2:wrn_16_2 vgg13:vgg8 vgg13:mobilenetv2"}
for pair in $PAIRS; do
  teacher=${pair%%:*} student=${pair##*:}
  # resume=true: a job that finished before is skipped, an interrupted one continues
  "$PY" -m kd.run -m experiment=fmnist_pairs teacher="$teacher" student="$student" loss="$LOSSES" seed="$SEEDS" \
    resume=true hydra.sweep.dir="outputs/benchmark_pairs/${teacher}-${student}" "$@"
done
