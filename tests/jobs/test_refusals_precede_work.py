"""Every kind of refusal comes before any work: a refused ``python -m kd.run`` leaves no trained teacher
(``paths.teacher_weights_dir``), no teacher-output cache (``paths.teacher_outputs_dir``) and no run of
its own: its folder, when Hydra made one, holds only Hydra's files and the failure record, never
``job.json``, checkpoints or metrics.

Each case starts from an empty ``outputs`` folder, so a teacher trained and then refused would show.
The cases walk the kinds of refusal (config values, data content, models, the teacher stage and its
recipe, the cache, language-model context and generation, chat answers, split sizes); the teacher
stage's own refusals (``teacher.epochs``, the teacher's optimiser, ``data.teacher_data``) and the
cache's came after the teacher had been trained before these checks moved into preflight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cli import THREADS, TINY_CLI, run_cli
from tests.data.test_chat import write_jsonl

LM = ["data=lm_fortunes", "data.module.source.limit_per_file=20", "data.module.block_size=16",
      "data.module.max_blocks={train:32,val:8,test:8}", "data.module.batch_size=4", "data.module.eval_batch_size=8",
      "teacher=llama_tiny", "student=llama_tiny", "trainer=smoke", "logger=csv", f"threads={THREADS}",
      "progress_bar=false"]
# What a refused run's folder may hold: Hydra's own files, its log and the failure record.
FAILURE_RECORD = {".hydra", "run.log", "failed.json", "error.txt", "config_resolved.yaml"}


def image_file(folder: Path, labels: list[int]) -> str:
    """An .npz of 8x8 grey images with ``labels``, in ``folder``; its path."""
    rng = np.random.default_rng(0)
    np.savez(folder / "images.npz", images=rng.integers(0, 255, (len(labels), 8, 8), dtype=np.uint8),
             labels=np.array(labels))
    return str(folder / "images.npz")


def chat_file(folder: Path) -> str:
    rows = [{"prompt": f"what is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(40)]
    return str(write_jsonl(folder / "sums.jsonl", rows))


def chat(folder: Path) -> list[str]:
    return ["data=chat_file", f"data.module.source.path={chat_file(folder)}", "data.module.block_size=48",
            *LM[6:], "data.module.max_rows.val=8", "data.module.max_rows.test=8"]


def images(folder: Path, labels: list[int]) -> list[str]:
    return ["data=image_files", f"data.module.source.path={image_file(folder, labels)}", "data.module.source.size=8",
            "data.module.batch_size=16", "teacher=tiny", "student=tiny", *TINY_CLI[3:]]


TWO_CLASSES = [0, 1] * 40
CASES = {
    # config values, by key
    "temperature": (lambda d: [*TINY_CLI, "loss=kd", "loss.temperature=0"], 2, "loss.temperature"),
    "learning rate": (lambda d: [*TINY_CLI, "optim.optimizer.lr=-1"], 2, "optim.optimizer.lr=-1"),
    "mistyped key": (lambda d: [*TINY_CLI, "loss=kd", "loss.temprature=2"], 1, "temperature"),
    "mistyped group": (lambda d: [*TINY_CLI, "los=kd"], 1, "loss"),
    "added key nothing reads": (lambda d: [*TINY_CLI, "loss=kd", "+loss.temprature=2"], 2,
                                "loss.temprature=2: kd reads no such key; did you mean loss.temperature?"),
    "added argument its target does not take": (lambda d: [*TINY_CLI, "loss=kd", "+trainer.max_epoch=1"], 2,
                                                "Trainer takes no argument 'max_epoch'; did you mean max_epochs"),
    # data, models and loss of different kinds (checked before any other value)
    "image student on text data": (lambda d: [*TINY_CLI, "loss=ce", "data=rotten_tomatoes"], 2,
                                   "data=rotten_tomatoes is text data but student=tiny is a model for image"),
    "text data with an image teacher's tokenizer": (lambda d: [*TINY_CLI, "loss=ce", "data=rotten_tomatoes",
                                                               "student=text_tiny"], 2, "data.tokenizer is null"),
    # the data's content
    "one class": (lambda d: images(d, [3] * 80), 2, "at least two classes"),
    "label outside the classes": (lambda d: [*images(d, [0, 1, 12, 1] * 20)], 2, "12"),
    "missing data file": (lambda d: [*images(d, TWO_CLASSES), f"data.module.source.path={d}/none.npz"], 2,
                          "none.npz does not exist"),
    # models
    "teacher class count": (lambda d: [*TINY_CLI, "loss=kd", "teacher.net.num_classes=5"], 2, "outputs 5 classes"),
    "unknown tap": (lambda d: [*TINY_CLI, "loss=feature", "loss.student_layer=stage9"], 2, "stage9"),
    "missing teacher checkpoint": (lambda d: [*TINY_CLI, "loss=kd", f"teacher.ckpt={d}/t.ckpt"], 2, "t.ckpt"),
    # the teacher stage and its recipe
    "teacher epochs": (lambda d: [*TINY_CLI, "loss=kd", "teacher.epochs=0"], 2, "teacher.epochs=0"),
    "teacher optimiser": (lambda d: [*TINY_CLI, "loss=kd", "optim.optimizer.momentum=0"], 2,
                          "optim.optimizer: Nesterov momentum requires a momentum"),
    "scheduler": (lambda d: [*TINY_CLI, "loss=kd", "optim.scheduler._target_=torch.optim.lr_scheduler.OneCycleLR",
                             "~optim.scheduler.warmup_fraction"], 2, "optim.scheduler: "),
    # the cache
    "cache of features not listed": (lambda d: [*TINY_CLI, "loss=feature", "teacher_outputs.cache=true"], 2,
                                     "teacher_outputs.cache=true"),
    "top_k against the classes": (lambda d: [*TINY_CLI, "loss=kd", "teacher_outputs.top_k=10"], 2,
                                  "teacher_outputs.top_k=10"),
    "unknown feature tap": (lambda d: [*TINY_CLI, "loss=feature", "teacher_outputs.features=[nope]"], 2, "nope"),
    # split sizes against batch and interval sizes
    "validation interval": (lambda d: [*TINY_CLI, "loss=kd", "+trainer.val_check_interval=1000"], 2,
                            "trainer.val_check_interval=1000"),
    "val split larger than the data": (lambda d: [*images(d, TWO_CLASSES), "data.module.source.val_fraction=0.95"], 2,
                                       "val"),
    # language models: context, vocabulary, generation
    "block longer than the context": (lambda d: [*LM, "loss=fkl", "data.module.block_size=512"], 2,
                                      "data.module.block_size=512"),
    "generation longer than the context": (lambda d: [*LM, "loss=fkl", "data.generation.new_tokens=300"], 2,
                                           "data.generation.new_tokens"),
    "top_k against the vocabulary": (lambda d: [*LM, "loss=fkl", "teacher_outputs.top_k=99999999"], 2,
                                     "teacher_outputs.top_k=99999999"),
    "full-vocabulary cache": (lambda d: [*LM, "loss=fkl", "teacher_outputs.cache=true", "teacher_outputs.top_k=null"],
                              2, "full-vocabulary"),
    "sequence-level prompt": (lambda d: [*LM, "loss=seqkd", "loss.teacher_generations.prompt_tokens=16"], 2,
                              "loss.teacher_generations.prompt_tokens=16"),
    "on-policy prompt": (lambda d: [*LM, "loss=jsd", "on_policy.lmbda=0.5", "on_policy.prompt_tokens=16"], 2,
                         "on_policy.prompt_tokens=16"),
    "text features cached": (lambda d: [*LM, "loss=fkl", "teacher_outputs.features=[embedding]"], 2,
                             "teacher_outputs.features"),
    # prompt/response data
    "teacher answers without prompts": (lambda d: [*LM, "loss=fkl", "+data.responses=teacher"], 2, "prompts"),
    "teacher answer top_p": (lambda d: [*chat(d), "loss=fkl", "data.responses=teacher", "data.teacher_responses.top_p=0"],
                             2, "top_p"),
}


@pytest.mark.usefixtures("module_pretrained_dir")
@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_run_leaves_no_teacher_cache_or_run(case: str, tmp_path: Path) -> None:
    overrides, status, message = CASES[case]
    outputs, data = tmp_path / "outputs", tmp_path / "data"
    data.mkdir()
    run_dir = outputs / "runs" / "refused"
    code, err = run_cli(*overrides(data), f"paths.log_dir={outputs}", f"hydra.run.dir={run_dir}")
    assert code == status, err[-3000:]
    assert message in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert not (outputs / "teachers").exists(), "a teacher was trained before the refusal"
    assert not (outputs / "teacher_outputs").exists(), "teacher outputs were cached before the refusal"
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= FAILURE_RECORD, f"the refused run left {sorted(left - FAILURE_RECORD)}"
