"""Every config key kd's configs use, by dotted key (``*`` = any one name): its type and range, the
identities it enters (``enters``) and its value in records written before it existed (``legacy``).

Arguments of a ``_target_`` are also checked against the callable's type annotation
(``kd.jobs.validate``); the rules here add the ranges and cover what annotations cannot
(``**kwargs``, third-party signatures). ``tests/config/test_config_schema.py`` fails for a config key that
is neither here nor annotated, so a new key gets its rule with it. A key without ``enters`` enters
the identities of the group holding it (``GROUPS``; ``STUDENT_RUN`` where no group says);
``tests/config/test_key_identities.py`` shows every key's identities.
"""

from __future__ import annotations

from kd.config.rules import (
    CACHE,
    DISTILLATION,
    EVERY,
    NOWHERE,
    RUN_NAME,
    STUDENT_RUN,
    TEACHER,
    Bool,
    Checkpoint,
    Choice,
    Float,
    Group,
    Int,
    Legacy,
    ListOf,
    Rule,
    Share,
    Str,
    Table,
)
from kd.config.targets import TargetList
from kd.task import MODALITIES

PRECISIONS = ("32-true", "32", 32, "bf16-mixed", "bf16-true", "bf16", "16-mixed", "16-true", "16", 16, "64-true", "64", 64)

RUN = {
    "seed": Int(0, help="random seed of the student's run", enters=STUDENT_RUN | {TEACHER}),
    "resume": Rule(("bool", "run_folder"), help="true, false or the folder of the run to continue", enters=NOWHERE),
    "checkpoint_every_n_steps": Int(0, help="steps between mid-epoch resume points; 0 = epoch ends only", enters=NOWHERE),
    "threads": Int(1, null=True, help="torch threads; null = every core this process may use", enters=NOWHERE),
    "reuse_freed_memory": Bool(help="keep freed tensor memory in the process for the next step", enters=NOWHERE),
    "channels_last": Bool(enters=STUDENT_RUN | {TEACHER}), "compile": Bool(),
    "progress_bar": Choice("auto", True, False, enters=NOWHERE),
    "latency_batch_size": Int(1, help="test inputs per batch when timing CPU inference"),
    "optimized_metric": Str(enters=DISTILLATION),
    "job_type": Choice("teacher", "distill", "baseline", enters=NOWHERE),
    "run.name": Str(null=True), "run.group": Str(null=True),
    "run.tags": ListOf(Str()), "run.overrides": ListOf(Str()), "hydra_choices": Table(enters=NOWHERE),
    "paths.*": Str(),
    "teacher_outputs.cache": Choice("auto", True, False, help="auto: cache where correct; false: teacher runs live"),
    "teacher_outputs.dtype": Choice("float16", "bfloat16", "float32", enters=DISTILLATION | {CACHE}),
    "teacher_outputs.top_k": Int(1, null=True, help="keep the k largest log-probabilities per sample or token",
                                 enters=DISTILLATION | {CACHE}),
    "teacher_outputs.features": ListOf(Str(), help="teacher tap aliases to store", enters=DISTILLATION | {CACHE}),
    "teacher_outputs.augmented_views": Bool(help="cache the logits on each epoch's augmented training views",
                                            enters=frozenset({RUN_NAME})),  # cached or live views: the same run
    "teacher_outputs.precision": Choice(None, *PRECISIONS, help="the teacher's precision for cached outputs; null = trainer.precision",
                                        enters=DISTILLATION | {CACHE}, legacy=Legacy(None, when="teacher_outputs")),
    "on_policy.lmbda": Share(help="share of training batches sampled from the student (GKD); 0 = off",
                             legacy=Legacy(0.0, when="teacher_outputs")),  # on_policy came with language models, off
    "on_policy.prompt_tokens": Int(1, help="tokens of each block kept as the prompt", legacy=Legacy(16, when="teacher_outputs")),
    "on_policy.temperature": Float(gt=0, help="sampling temperature of the student", legacy=Legacy(1.0, when="teacher_outputs")),
}
DATA = {
    "data.name": Str(), "data.modality": Choice(*MODALITIES, enters=NOWHERE), "data.tokenizer": Str(null=True),
    "data.generation.prompts": Int(0, help="held-out openings continued after the test"),
    "data.generation.prompt_tokens": Int(1), "data.generation.new_tokens": Int(0),
    "data.generation.scored_prompts": Int(0, help="held-out prompts answered and scored with ROUGE-L (prompt/response data)",
                                          enters=STUDENT_RUN,  # what is scored after the test, not the samples
                                          legacy=Legacy(0, when="data.module.max_rows")),  # chat runs before scoring
    "data.generation.exact_match": Bool(help="answers are checkable (one right answer): score exact match too",
                                        enters=STUDENT_RUN, legacy=Legacy(False, when="data.module.max_rows")),
    # where the training responses come from: a distilled student's baseline (loss=ce) trains on the data's own
    "data.responses": Choice("dataset", "teacher", help="train on the data's responses or the teacher's answers",
                             enters=DISTILLATION, legacy=Legacy("dataset", when="data.module.max_rows")),
    "data.teacher_responses.temperature": Float(ge=0, help="0 = greedy", enters=DISTILLATION),
    "data.teacher_responses.top_p": Float(gt=0, le=1, help="nucleus sampling: the smallest set of tokens with this mass",
                                          enters=DISTILLATION),
    "data.teacher_responses.max_new_tokens": Int(1, help="the longest answer, in tokens", enters=DISTILLATION),
    "data.teacher_responses.per_prompt": Int(1, help="answers sampled per training prompt", enters=DISTILLATION),
    "data.teacher_responses.seed": Int(0, help="sampling seed of the answers (shared by runs of every seed)",
                                       enters=DISTILLATION),
    "data.teacher_responses.batch_size": Int(1, help="prompts answered per generate() call", enters=NOWHERE),
    "data.num_classes": Int(2), "data.in_chans": Int(1),
    "data.module.batch_size": Int(1, help="training batch size", enters=STUDENT_RUN | {TEACHER}),
    "data.module.eval_batch_size": Int(1, help="validation and test batch size", enters=STUDENT_RUN),
    "data.module.augment": TargetList(("bool", "list"), null=True, base="kd.data.augment.Transform",
                                      help="the transforms applied in order to training batches; true: RandomShift(pixels=2), "
                                      "HorizontalFlip(p=0.5); false, null or []: none; docs/images.md",
                                      enters=STUDENT_RUN | {TEACHER}),
    "data.module.max_length": Int(2, help="tokens per text"),
    "data.module.block_size": Int(2, help="tokens per language-model sequence"),
    "data.module.max_blocks.*": Int(1, null=True, help="at most this many blocks in the split; null = all"),
    "data.module.max_rows.*": Int(1, null=True, help="at most this many prompt/response turns in the split; null = all"),
    "data.module.source.limit_per_file": Int(1, null=True),
    "data.module.val_fraction": Float(gt=0, lt=1), "data.module.test_fraction": Float(gt=0, lt=1),
    "data.module.split_seed": Int(0),
    "data.module.train_subset": Int(1, null=True, help="use only this many training samples; null = all"),
    "data.module.source.data_dir": Str(enters=STUDENT_RUN), "data.module.source.download": Bool(enters=STUDENT_RUN),
    "data.module.source.val_size": Int(1, help="samples held out of the training set for validation"),
    "data.module.source.split_seed": Int(0), "data.module.source.seed": Int(0),
    "data.module.source.train_subset": Int(1, null=True, help="use only this many training samples; null = all"),
    "data.module.source.num_classes": Int(2), "data.module.source.input_shape": ListOf(Int(1)),
    "data.module.source.train_size": Int(1), "data.module.source.test_size": Int(1),
    "data.module.source.noise": Float(ge=0),
    "data.module.source.path": Str(null=True), "data.module.source.root": Str(null=True),
    "data.module.source.text_column": Str(), "data.module.source.label_column": Str(),
    "data.module.source.classes": ListOf(Str(), null=True), "data.module.source.pattern": Str(),
    "data.module.source.encoding": Str(help="the text file's encoding, e.g. utf-8, cp1252, latin-1"),
}
MODEL = {  # for student.* and teacher.*
    "name": Str(), "modality": Choice(*MODALITIES, enters=NOWHERE), "tokenizer": Str(null=True),
    "lr": Float(gt=0, help="learning rate that experiments read with ${oc.select:student.lr,<default>}"),
    "layers": Table(help="tap aliases -> module paths"),
    "net.model_name": Str(), "net.in_chans": Int(1), "net.num_classes": Int(2), "net.num_labels": Int(2),
    "net.layers": ListOf(Int(1)), "net.channels": ListOf(Int(1)), "net.pretrained": Bool(),
    "net.name_or_path": Str(), "net.num_layers": Int(1, null=True, help="keep the first k layers"),
    "net.every_nth_layer": Int(1, null=True, help="keep layers 0, n, 2n, ... of a pretrained model"),
    "net.keep_layers": ListOf(Int(0), null=True, help="the layers of a pretrained model to keep, e.g. [0, 5, 29]"),
    "net.gradient_checkpointing": Bool(help="recompute activations in the backward pass (less memory)"),
    "net.hidden_size": Int(1), "net.num_heads": Int(1),
    "net.intermediate_size": Int(1), "net.max_position_embeddings": Int(1),
    "net.attn_implementation": Choice("eager", "sdpa"), "net.attention_dropout": Share(),
    "net.drop_rate": Share(), "net.num_kv_heads": Int(1), "net.tie_word_embeddings": Bool(),
    "net.dtype": Choice("float32", "bfloat16", "auto", decided_by_kd=("auto",),
                        help="parameter dtype; auto: bfloat16 where its stage takes bf16"),
    "net.depth": Int(1, help="layers of a CIFAR-style network (resnet: 6n+2, wrn: 6n+4, vgg: 8/11/13/16/19)"),
    "net.widths": ListOf(Int(1), help="stem and stage widths"), "net.width": Float(gt=0, help="multiplies the base widths"),
    "net.expansion": Int(1), "net.version": Choice(1, 2), "net.dropout": Share(),
}
STUDENT = {"student.init_from": Checkpoint(null=True, help="start from these weights (a kd run's checkpoint: its student)")}
TEACHER_STAGE = {"teacher.ckpt": Checkpoint(null=True, help="trained teacher weights; null = train the teacher here once"),
           "teacher.pretrained": Bool(help="use the network as loaded (a pretrained model), no teacher stage"),
           "teacher.seed": Int(0, null=True, help="the teacher stage's seed; null = seed", enters=DISTILLATION | {TEACHER}),
           "teacher.epochs": Int(0, help="epochs when the teacher is trained here (0 with pretrained: true)",
                                 enters=DISTILLATION | {TEACHER}),
           "teacher.precision": Choice(None, "auto", *PRECISIONS, enters=DISTILLATION, legacy=Legacy(None, when="teacher"),
                                       help="the teacher stage's precision; null = trainer.precision")}
OPTIM = {  # for optim.* and teacher.optim.*
    "optimizer.lr": Float(gt=0, help="learning rate"), "optimizer.momentum": Float(ge=0, lt=1),
    "optimizer.nesterov": Bool(), "optimizer.weight_decay": Float(ge=0), "optimizer.eps": Float(gt=0),
    "optimizer.betas": ListOf(Float(ge=0, lt=1)),
    "scheduler.warmup_fraction": Float(ge=0, lt=1, help="share of the steps spent warming up"),
    "scheduler.final_lr_fraction": Share(),
}
LOSS = {
    "loss.modality": Rule(("str", "list"), help="one of image, text, lm, or a list of them", enters=NOWHERE),
    "loss.alpha": Share(help="the distillation term's share; CE gets 1 - alpha"),
    "loss.beta": Float(ge=0, help="the distillation term's weight; CE keeps weight 1"),
    "loss.temperature": Float(gt=0, help="softmax temperature"),
    "loss.standardize": Bool(), "loss.std_correction": Int(0, le=1, legacy=Legacy(0, when="loss.standardize")),
    "loss.terms.*.fn.std_correction": Int(0, le=1, help="0: population std, 1: unbiased std",
                                         legacy=Legacy(0, when="loss.terms.*.fn.standardize")), "loss.tckd_weight": Float(ge=0), "loss.nckd_weight": Float(ge=0),
    "loss.warmup_epochs": Int(1), "loss.jsd_beta": Share(help="JSD mixing weight"),
    "loss.teacher_generations.prompt_tokens": Int(1, help="tokens of each training block kept as the prompt"),
    "loss.teacher_generations.temperature": Float(ge=0, help="0 = greedy"),
    "loss.teacher_generations.batch_size": Int(1),
    "loss.skew": Float(ge=0, lt=1, help="the mixture's share of the distribution it is compared with"),
    "loss.inter_weight": Float(ge=0), "loss.intra_weight": Float(ge=0),
    "loss.distance_weight": Float(ge=0), "loss.angle_weight": Float(ge=0),
    "loss.p": Float(gt=0), "loss.kernel": Choice("gaussian", "bilinear"), "loss.gamma": Float(gt=0),
    "loss.order": Int(1), "loss.feat_dim": Int(1), "loss.nce_k": Int(1), "loss.nce_t": Float(gt=0),
    "loss.nce_m": Float(ge=0, lt=1), "loss.heads": Choice("per_head", "mean"),
    "loss.distance": Choice("mse", "cosine"), "loss.layer_map": Table(null=True),
    "loss.margin": Float(ge=0, help="AB's activation-boundary margin"),
    "loss.temperatures": ListOf(Float(gt=0), help="MLKD's softmax temperatures"),
    "loss.feature_weight": Float(ge=0, help="SRD's representation-MSE weight"),
    "loss.teacher_head": Str(null=True, help="module path of the teacher's classifier; null = its last nn.Linear"),
    "loss.init_variance": Float(gt=0, help="VID's starting variance"),
    "loss.rate": Float(gt=0, le=1, help="FT's factor channels / teacher channels"),
    "loss.reconstruction_weight": Float(ge=0, help="FT's paraphraser reconstruction weight"),
    "loss.student_layer": Str(null=True), "loss.teacher_layer": Str(null=True),
    "loss.student_layers": ListOf(Str()), "loss.teacher_layers": ListOf(Str()),
    "loss.terms.*.weight": Float(ge=0, help="the term's weight"),
    "loss.terms.*.fn.label_smoothing": Share(),
    "loss.terms.*.schedule.*.epochs": Int(1),
}
TRAINER = {
    "trainer.accelerator": Str(), "trainer.devices": Rule(("int", "str", "list")),
    "trainer.strategy": Rule(("str", "dict"), help="auto, ddp (trainer=ddp) or a strategy's _target_ (trainer=fsdp)",
                             legacy=Legacy("auto", when="trainer")),
    "trainer.num_nodes": Int(1, help="machines of a multi-process run", legacy=Legacy(1, when="trainer")),
    "trainer.sync_batchnorm": Bool(),
    "trainer.use_distributed_sampler": Bool(help="false: kd's loaders give each process its share",
                                            legacy=Legacy(False, when="trainer")),
    "trainer.strategy.use_orig_params": Bool(), "trainer.strategy.state_dict_type": Choice("full", "sharded"),
    "trainer.strategy.auto_wrap_policy.module_classes": ListOf(Table()),
    "trainer.max_epochs": Int(1, help="training epochs"), "trainer.max_steps": Int(-1, enters=STUDENT_RUN | {TEACHER}),
    "trainer.val_check_interval": Float(gt=0, null=True, help="validate every n steps (an int) or share of an epoch"),
    "trainer.precision": Choice("auto", *PRECISIONS, enters=EVERY, decided_by_kd=("auto",),
                                help="auto: per model kind and CPU, docs/speed.md#precision-auto"), "trainer.log_every_n_steps": Int(0),
    "trainer.num_sanity_val_steps": Int(-1), "trainer.enable_model_summary": Bool(),
    "trainer.deterministic": Choice(True, False, "warn"), "trainer.default_root_dir": Str(),
    "trainer.limit_train_batches": Float(ge=0, null=True, enters=STUDENT_RUN | {TEACHER}),
    "trainer.limit_val_batches": Float(ge=0, null=True), "trainer.limit_test_batches": Float(ge=0, null=True),
    "trainer.gradient_clip_val": Float(ge=0, null=True, enters=STUDENT_RUN | {TEACHER}),
    "trainer.accumulate_grad_batches": Int(1, enters=STUDENT_RUN | {TEACHER}),
    "trainer.check_val_every_n_epoch": Int(1, null=True),
    "callbacks.*.dirpath": Str(), "callbacks.model_checkpoint.filename": Str(),
    "callbacks.model_checkpoint.monitor": Str(), "callbacks.model_checkpoint.mode": Choice("min", "max"),
    "callbacks.model_checkpoint.save_last": Bool(), "callbacks.model_checkpoint.auto_insert_metric_name": Bool(),
    "callbacks.resume_point.every_n_steps": Int(0),
    "callbacks.resume_point.on_signal": Choice("USR1", "USR2", "TERM", "INT", None, enters=NOWHERE,
                                               help="the signal a resume point is written on before a requeue"),
    "logger.project": Str(), "logger.save_dir": Str(), "logger.offline": Bool(), "logger.job_type": Str(),
    "logger.name": Str(null=True), "logger.group": Str(null=True), "logger.tags": ListOf(Str()),
    "logger.log_model": Choice(True, False, "all"),
}
RULES: dict[str, Rule] = {**RUN, **DATA, **STUDENT, **TEACHER_STAGE, **LOSS, **TRAINER}
RULES.update({f"{role}.{key}": rule for role in ("student", "teacher") for key, rule in MODEL.items()})
RULES.update({f"{prefix}.{key}": rule for prefix in ("optim", "teacher.optim") for key, rule in OPTIM.items()})
# data.teacher_data: the data config the teacher stage learns from (conf/data/fashion_mnist_5k.yaml)
RULES.update({f"data.teacher_data.{key[5:]}": rule for key, rule in DATA.items()})
PATTERNS = {tuple(key.split(".")): rule for key, rule in RULES.items() if "*" in key}

# Keys that hold other keys: the identities of their keys (unless a key's rule says), and legacy values.
GROUPS: dict[str, Group] = {
    "paths": Group(NOWHERE, help="where runs, teachers and caches go"),
    "run": Group(NOWHERE, help="the run's name, group, tags and overrides"),
    "logger": Group(NOWHERE, help="where the run logs to"),
    "data": Group(EVERY, help="the samples: every identity"),
    "data.teacher_data": Group(EVERY - {CACHE}, help="what the teacher learns from: its checkpoint says it"),
    "data.monitor": Group(NOWHERE, help="removed: the task's monitor (kd/task.py) replaced it"),
    "data.teacher_responses": Group(DISTILLATION, help="how the teacher answers the training prompts (data.responses=teacher)",
                                    legacy=Legacy({"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "per_prompt": 1,
                                                   "seed": 0}, when="data.module.max_rows")),
    "teacher": Group(DISTILLATION),
    "teacher.net": Group(DISTILLATION | {TEACHER, CACHE}),
    "teacher.optim": Group(DISTILLATION | {TEACHER}),
    "optim": Group(STUDENT_RUN | {TEACHER}, help="the teacher's too unless teacher.optim is set"),
    "loss": Group(DISTILLATION),
    "teacher_outputs": Group(DISTILLATION),
    "on_policy": Group(DISTILLATION),
    "trainer": Group(STUDENT_RUN),
    "callbacks.throughput": Group(STUDENT_RUN, legacy=Legacy({"_target_": "kd.callbacks.TrainThroughput"},
                                                             when="callbacks.model_checkpoint")),
    "*.layers.preact*": Group(NOWHERE, help="pre-activation taps: how a tap reads a module, not what the run computes"),
}


def rule_for(key: str) -> Rule | None:
    """The rule of a dotted config key, or None."""
    if key in RULES:
        return RULES[key]
    parts = tuple(key.split("."))
    for pattern, rule in PATTERNS.items():
        if len(pattern) == len(parts) and all(p in ("*", k) for p, k in zip(pattern, parts, strict=True)):
            return rule
    return None
