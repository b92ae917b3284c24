#!/usr/bin/env bash
# The Rotten Tomatoes table of docs/results.md: the MiniLM-L6 teacher (fine-tuned once, cached) and two
# students, each from scratch (ce), with kd, with the hidden-state loss and with the attention loss.
# SEEDS=0,1,2 runs three student seeds against the same teacher (teacher.seed stays 0).
#   bash sweeps/rt_minilm_table.sh      # about 35 min per seed on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0}
"$PY" -m kd.run -m experiment=rt_minilm student=minilm_l2 loss=ce,kd,hidden,attention seed="$SEEDS" "$@"
"$PY" -m kd.run -m experiment=rt_minilm student=bert_tiny loss=ce,kd,hidden seed="$SEEDS" "$@"
# bert_tiny has 2 attention heads, the teacher 12: compare head-averaged attention maps.
"$PY" -m kd.run -m experiment=rt_minilm student=bert_tiny loss=attention loss.heads=mean seed="$SEEDS" "$@"
