#!/usr/bin/env bash
# The reproduction table of docs/results.md: classic CIFAR-100 teacher -> student pairs on Fashion-MNIST
# (experiment=fmnist_pairs). Stage 1 trains each teacher once from scratch on the full training split
# (TEACHER_EPOCHS epochs, seed 0); stage 2 trains each student on a 5k-image subset from scratch (ce),
# with kd and with three other methods, SEEDS seeds per cell. FitNet uses RepDistiller's recipe:
# the middle stage (stage2) as hint, beta 100. Selection is on the validation split: test/acc is
# measured with the epoch of the best val/acc. Then sweeps/benchmark_pairs_table.py prints the table.
#   bash sweeps/benchmark_pairs.sh                          # every pair (about 2 h on 2 CPU cores)
#   PAIRS="resnet56:resnet20" SEEDS=0 bash sweeps/benchmark_pairs.sh
#   .venv/bin/python sweeps/benchmark_pairs_table.py outputs/benchmark_pairs
# JOBS=2 (default) runs two jobs at a time with one thread each (hydra-joblib-launcher); or run
# two invocations side by side with JOBS=1 threads=1 on different PAIRS or SEEDS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}
LOSSES=${LOSSES:-ce,kd,at,crd}
PAIRS=${PAIRS:-"resnet56:resnet20 vgg13:mobilenetv2 vgg13:vgg8"}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-3}
JOBS=${JOBS:-2}
OUT=${OUT:-outputs/benchmark_pairs}
launch=()
[ "$JOBS" -gt 1 ] && launch=(+sweep=joblib hydra.launcher.n_jobs="$JOBS")  # threads=1 per job
for teacher in $(for p in $PAIRS; do echo "${p%%:*}"; done | sort -u); do
  dir="$OUT/teachers/$teacher"
  [ -f "$dir/metrics.json" ] && continue  # trained before
  "$PY" -m kd.run experiment=fmnist_pairs student="$teacher" loss=ce seed=0 trainer.max_epochs="$TEACHER_EPOCHS" \
    data.module.source.train_subset=null hydra.run.dir="$dir" "$@"
done
# A fresh sweep folder per invocation (kd never writes into another run's folder): several invocations
# may share a pair, and a re-run skips what finished before (its copied metrics are not counted twice).
tag="seeds${SEEDS//,/-}-$(date +%Y%m%d-%H%M%S)"
for pair in $PAIRS; do
  teacher=${pair%%:*} student=${pair##*:}
  common=(experiment=fmnist_pairs teacher="$teacher" student="$student" seed="$SEEDS" resume=true
    teacher.ckpt="$OUT/teachers/$teacher/checkpoints/last.ckpt" "${launch[@]}")
  # resume=true: a job that finished before is skipped, an interrupted one continues
  "$PY" -m kd.run -m "${common[@]}" loss="$LOSSES" hydra.sweep.dir="$OUT/$teacher-$student/$tag" "$@"
  "$PY" -m kd.run -m "${common[@]}" loss=feature loss.beta=100 loss.student_layer=stage2 \
    loss.teacher_layer=stage2 hydra.sweep.dir="$OUT/$teacher-$student/fitnet-$tag" "$@"
done
