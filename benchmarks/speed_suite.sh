#!/usr/bin/env bash
# The measurements of docs/speed.md on this machine's CPU, one after another (two torch jobs at once
# on 2 cores would slow each other many times over), then its tables (benchmarks/speed_table.py).
#
#   bash benchmarks/speed_suite.sh [stage ...]      # default: every stage, in this order
#
# stages (all took 70 min on 2 cores of an AMD EPYC family 25 model 1: 18 min the default teacher, 20 min the sweep):
#   steps     step_throughput.py --parts defaults, without and with --augment (kd's defaults vs a plain loop)
#   pair      the same for resnet18 -> timm resnet10t (the first speed measurement's job)
#   startup   startup.py (process start -> first optimiser step)
#   text      text_precision.py (MiniLM and SmolLM2 in bf16 and fp32)
#   students  the default experiment, seeds 0-2, teacher outputs in fp32 and in bf16 (trains the default
#             teacher first if it is not kept yet), summarised by kd.report
#   precision teacher_precision.py on the trained default teacher (or TEACHER_CKPT=<path>)
#   sweep     sweep_cache.py --augmented (8-job sweep, teacher live vs cached views)
#   table     speed_table.py: the markdown for this CPU's section of docs/speed.md
# Results: benchmarks/results/<name>-<cpu>.json; the students' runs under outputs/speed_suite/<cpu>/students-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CPU=$($PY -c "import kd.utils.machine as m; print(m.machine()['cpu_short'])")
PAIR=(--set teacher=resnet18 student=resnet10_w16 student.net.model_name=resnet10t '~student.net.layers'
      '~student.net.channels' --name resnet18_to_resnet10t)
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(steps pair startup text students precision sweep table)

for stage in "${STAGES[@]}"; do
  echo "== $stage ($CPU, $(date -u +%H:%M:%S))"
  case $stage in
    steps)
      $PY benchmarks/step_throughput.py --parts defaults
      $PY benchmarks/step_throughput.py --parts defaults --augment ;;
    pair) $PY benchmarks/step_throughput.py --parts defaults "${PAIR[@]}" ;;
    startup) $PY benchmarks/startup.py ;;
    text) $PY benchmarks/text_precision.py ;;
    students)
      dir="outputs/speed_suite/$CPU/students-$(date -u +%Y%m%d-%H%M%S)"  # a sweep never reuses a folder
      $PY -m kd.run -m seed=0,1,2 teacher_outputs.precision=null,bf16-mixed threads=2 logger=csv \
        progress_bar=false "hydra.sweep.dir=$dir"
      $PY -m kd.report "$dir" ;;
    precision)
      if [ -n "${TEACHER_CKPT:-}" ]; then
        $PY benchmarks/teacher_precision.py --teacher-ckpt "$TEACHER_CKPT"
      else  # the default teacher: kept under outputs/teachers/ once trained (a 1-epoch student run trains it)
        $PY -m kd.run trainer.max_epochs=1 logger=csv progress_bar=false
        $PY benchmarks/teacher_precision.py
      fi ;;
    sweep) $PY benchmarks/sweep_cache.py --augmented ;;
    table) $PY benchmarks/speed_table.py --cpu "$CPU" ;;
    *) echo "unknown stage '$stage'; stages: steps pair startup text students precision sweep table" >&2; exit 2 ;;
  esac
done
