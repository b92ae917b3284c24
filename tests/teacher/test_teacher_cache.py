"""The teacher-output cache: same results as a live teacher, shared, validated, refused where wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kd.data.augment_config import STANDARD
from kd.data.batches import batch_loader
from kd.errors import ConfigError
from kd.job import train
from kd.taps import to_channels_last
from kd.teacher.cache import cache_identity
from kd.teacher.cache_files import read_entry, write_entry
from kd.teacher.outputs import CachedTeacherOutputs, compute_teacher_outputs
from kd.teacher.top_k import top_k_log_probs
from kd.teacher.views import view_entry, view_epochs, view_record
from kd.utils.hashing import identity_hash
from tests.conftest import TEXT_TINY

WHOLE_SPLITS = ["trainer.limit_train_batches=null", "trainer.limit_val_batches=null", "trainer.limit_test_batches=null"]
FULL = ["trainer.max_epochs=2", *WHOLE_SPLITS]
COMPARED = ("train/loss", "val/acc", "val/kl", "test/acc", "test/agreement", "test/teacher_acc", "test/kl")


def cache_files(cfg) -> list[Path]:
    return sorted(Path(cfg.paths.teacher_outputs_dir).glob("*/*.pt"))


def assert_same_metrics(a: dict, b: dict, keys=COMPARED, rel: float = 1e-5) -> None:
    for key in keys:
        assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-6), key


@pytest.fixture
def counted_lookups(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = CachedTeacherOutputs.lookup

    def lookup(self, index, *args, **kwargs):
        calls.append(len(index))
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(CachedTeacherOutputs, "lookup", lookup)
    return calls


# The cache's passes (eval mode, the data in order, eval_batch_size) and the live teacher's passes over
# shuffled training batches compute the same thing when the batch shape and the memory layout are the
# same: the same kernels run, and a sample's outputs do not depend on its neighbours in the batch. The
# runs below use one batch size for both, so their results must be identical on every CPU. Other batch
# sizes may pick other kernels (oneDNN chooses by shape and CPU): see the bound test that follows.
SAME_BATCHES = ["data.module.batch_size=64", "data.module.eval_batch_size=64"]


def test_cached_run_equals_live_run_and_is_shared(make_cfg, capsys, counted_lookups) -> None:
    live = train(make_cfg("loss=kd", *FULL, *SAME_BATCHES, "teacher_outputs.cache=false"))
    assert counted_lookups == []
    first = make_cfg("loss=kd", *FULL, *SAME_BATCHES, "teacher_outputs.cache=true", "teacher_outputs.dtype=float32")
    cached = train(first)
    # 512/128/128 samples in batches of 64: dry run (2), 2 epochs x 8 train batches, val 2 x 2, test 2
    assert sorted(counted_lookups) == [2] + [64] * 22
    assert "computing teacher outputs on the train split (512 samples)" in capsys.readouterr().out
    assert {k: cached[k] for k in COMPARED} == {k: live[k] for k in COMPARED}
    # another job of the sweep (other temperature, seed, eval batch size) reuses the same files
    again = make_cfg("loss=kd", *FULL, "loss.temperature=2", "seed=1", "teacher_outputs.dtype=float32")
    train(again)
    out = capsys.readouterr().out
    assert "computing teacher outputs" not in out and "teacher outputs for train, val, test read from" in out
    assert [p.name for p in cache_files(first)] == ["test.pt", "train.pt", "val.pt"]


def live_teacher_logits(teacher, dataset, batch_size: int) -> torch.Tensor:
    """The teacher's logits on shuffled training batches of ``batch_size``, as training steps compute them."""
    rows = torch.empty(len(dataset), 10)
    with torch.no_grad():
        for batch in batch_loader(dataset, batch_size, shuffle=True):
            rows[batch["index"]] = teacher(to_channels_last(batch["inputs"]))
    return rows


def test_cached_outputs_equal_live_ones_within_kernel_rounding(make_cfg) -> None:
    cfg = make_cfg()
    dataset = instantiate(cfg.data.module.source).load()["train"]
    teacher = instantiate(cfg.teacher.net).eval().to(memory_format=torch.channels_last)
    stored = compute_teacher_outputs(teacher, dataset, 64, dtype="float32", channels_last=True)["logits"]
    assert torch.equal(stored, live_teacher_logits(teacher, dataset, 64))  # the same computation
    # Batches of 128 against 64: measured identical on AMD EPYC (AVX-512, no AMX) for every batch size
    # >= 2; a change of kernel (e.g. the teacher's weights in another memory layout, the bug this cache
    # once had) moved these logits by 1.1e-6, about 9 float32 ulps at their scale. The tolerance is
    # 100x that bound, far below any real difference (a wrong row moves logits by ~0.1).
    other_batches = compute_teacher_outputs(teacher, dataset, 128, dtype="float32", channels_last=True)["logits"]
    live = live_teacher_logits(teacher, dataset, 64)
    assert (other_batches - live).abs().max() <= 1e-4 * live.abs().max()


def test_half_precision_cache_is_the_float32_one_rounded(make_cfg) -> None:
    full = make_cfg("loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true")
    exact = train(full)
    half = train(make_cfg("loss=kd", "teacher_outputs.cache=true"))  # default dtype: float16
    files = {p.parent.name: p for p in cache_files(full) if p.name == "train.pt"}
    assert len(files) == 2  # the dtype keys its own entry
    stored = {key: torch.load(path, weights_only=True)["logits"] for key, path in files.items()}
    (fp16,) = [t for t in stored.values() if t.dtype == torch.float16]
    (fp32,) = [t for t in stored.values() if t.dtype == torch.float32]
    assert torch.equal(fp16, fp32.half())
    # float16 keeps 11 significant bits (relative error <= 2^-11 per logit); one smoke epoch of 3 steps
    # cannot move the losses and accuracies far from the float32 run's.
    assert half["train/loss"] == pytest.approx(exact["train/loss"], rel=1e-2)
    assert half["test/teacher_acc"] == pytest.approx(exact["test/teacher_acc"], abs=1 / 128)


def test_bf16_teacher_outputs_are_the_float32_ones_within_bf16_rounding(make_cfg) -> None:
    cached = ["loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true"]
    fp32_cfg = make_cfg(*cached)
    train(fp32_cfg)
    (fp32_file,) = [p for p in cache_files(fp32_cfg) if p.name == "train.pt"]
    metrics = train(make_cfg(*cached, "teacher_outputs.precision=bf16-mixed"))  # the student stays in fp32
    (bf16_file,) = [p for p in cache_files(fp32_cfg) if p.name == "train.pt" and p != fp32_file]  # its own entry
    exact = torch.load(fp32_file, weights_only=True)["logits"]
    rounded = torch.load(bf16_file, weights_only=True)["logits"]
    assert not torch.equal(exact, rounded)  # autocast ran: bf16 keeps 8 significant bits
    # bf16 rounds each operand to a relative 2^-9; through the tiny teacher's few layers the logits move by
    # a few per cent of their scale at most (benchmarks/teacher_precision.py on the trained resnet20:
    # 99.8 % top-1 agreement with float32 on the test split).
    assert (exact - rounded).abs().max() <= 0.05 * exact.abs().max()
    assert metrics["job_type"] == "distill" and 0 <= metrics["test/agreement"] <= 1


def test_a_run_of_a_few_batches_leaves_those_splits_to_the_live_teacher(make_cfg, capsys) -> None:
    """trainer=smoke reads 3/2/2 batches; auto does not compute whole splits for them, true still does."""
    smoke = make_cfg("loss=kd")
    few = train(smoke)
    out = capsys.readouterr().out
    assert ("[kd] teacher runs live on the train, val, test split(s): trainer.limit_train_batches=3, "
            "trainer.limit_val_batches=2, trainer.limit_test_batches=2 read(s) a few batches") in out
    assert "computing teacher outputs" not in out and cache_files(smoke) == []
    assert_same_metrics(few, train(make_cfg("loss=kd", "teacher_outputs.cache=false")), rel=0)
    partly = make_cfg("loss=kd", "trainer.limit_train_batches=1.0")  # a fraction: the whole split, cached
    train(partly)
    assert [p.name for p in cache_files(partly)] == ["train.pt"]
    assert "on the val, test split(s): trainer.limit_val_batches=2" in capsys.readouterr().out
    forced = make_cfg("loss=kd", "teacher_outputs.cache=true", "teacher_outputs.dtype=float32", *SAME_BATCHES, "seed=1")
    assert_same_metrics(train(forced), train(make_cfg("loss=kd", "teacher_outputs.cache=false", *SAME_BATCHES, "seed=1")))
    assert "[kd] teacher outputs for train, val, test read from" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"teacher_outputs.features: \['nope'\] are not taps of the teacher"):
        train(make_cfg("loss=kd", "teacher_outputs.features=[nope]"))  # checked even where nothing is cached


def test_stale_cache_after_teacher_change_is_rebuilt(make_cfg, capsys) -> None:
    cfg = make_cfg("loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true")
    train(cfg)
    ckpt = next(Path(cfg.paths.teacher_weights_dir).glob("*/teacher.ckpt"))
    state = torch.load(ckpt, weights_only=True)
    torch.save({k: v + 0.05 if v.is_floating_point() else v for k, v in state.items()}, ckpt)  # "retrained"
    capsys.readouterr()
    rebuilt = train(make_cfg("loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true"))
    # the cache knows the teacher by its SHA-256: other weights, another entry, computed anew
    assert "computing teacher outputs on the train split" in capsys.readouterr().out
    assert len(list(Path(cfg.paths.teacher_outputs_dir).iterdir())) == 2
    live = train(make_cfg("loss=kd", "teacher_outputs.cache=false"))
    assert_same_metrics(rebuilt, live)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "bad_record"])
def test_corrupt_cache_is_rebuilt_never_used(make_cfg, capsys, damage: str) -> None:
    first = train(make_cfg("loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true"))
    train_file = next(p for p in cache_files(make_cfg()) if p.name == "train.pt")
    blob = bytearray(train_file.read_bytes())
    if damage == "flip_byte":
        blob[len(blob) // 2] ^= 0xFF
        train_file.write_bytes(bytes(blob))
    elif damage == "truncate":
        train_file.write_bytes(bytes(blob[: len(blob) // 3]))
    else:
        train_file.with_suffix(".json").write_text("{not json")
    capsys.readouterr()
    second = train(make_cfg("loss=kd", "teacher_outputs.dtype=float32", "teacher_outputs.cache=true"))
    assert "teacher-output cache" in capsys.readouterr().out
    assert_same_metrics(second, first, rel=1e-6)


def test_entry_validation_names_what_changed(tmp_path: Path) -> None:
    record = {"key": "k", "teacher_sha256": "t", "data_sha256": "d", "num_samples": 4, "num_classes": 3}
    write_entry(tmp_path, "train", {"logits": torch.randn(4, 3), "features": {}}, {**record, "top_k": None})
    tensors, status = read_entry(tmp_path, "train", record)
    assert status == "valid" and tensors["logits"].shape == (4, 3)
    assert read_entry(tmp_path, "train", {**record, "data_sha256": "other"}) == (None, "stale: data_sha256 changed")
    assert read_entry(tmp_path, "val", record) == (None, "missing")
    write_entry(tmp_path, "bad", {"logits": torch.randn(5, 3), "features": {}}, {**record, "top_k": None})
    assert read_entry(tmp_path, "bad", record)[1] == "corrupt: logits have shape (5, 3), expected (4, [positions,] 3)"


def test_top_k_keeps_the_largest_log_probabilities_and_spreads_the_rest_evenly() -> None:
    full = torch.tensor([[3.0, -1.0, 0.5, 2.0], [0.0, 4.0, 1.0, -2.0]])
    p = full.softmax(-1)
    values, index, rest = top_k_log_probs(full, 2)
    assert torch.equal(index, torch.tensor([[0, 3], [1, 2]]))
    cached = CachedTeacherOutputs({"logits": values.half(), "top_k_index": index.int(), "top_k_rest": rest}, 4)
    logits = cached.lookup(torch.tensor([1, 0])).logits
    # row 0 of the batch is sample 1: its two largest entries as they are, the other two share the rest
    rest1 = 1 - p[1, 1] - p[1, 2]
    expected = torch.stack([rest1 / 2, p[1, 1], p[1, 2], rest1 / 2]).log()
    assert torch.allclose(logits[0], expected, atol=2e-3)  # float16 storage of the log-probabilities
    assert torch.allclose(logits.exp().sum(-1), torch.ones(2), atol=2e-3)  # a distribution again


def test_top_k_error_is_measured_and_vanishes_when_only_one_entry_is_left_out() -> None:
    """Token logits (B, L, V): with k = V - 1 the expansion is exact; with a smaller k, the recorded error
    is the mean KL(full || expanded), computed here by hand."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 10) * 3
    blocks = torch.randint(0, 10, (3, 6))

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask):  # the logits of the blocks asked for
            rows = [int(torch.nonzero((blocks[:, :-1] == r).all(1))[0]) for r in input_ids]
            return logits[rows]

    from kd.data.lm import TokenBlocks

    exact = compute_teacher_outputs(Fixed(), TokenBlocks(blocks), 2, dtype="float32", top_k=9)
    assert exact["logits"].shape == (3, 5, 9) and float(exact["top_k_kl"]) == pytest.approx(0.0, abs=1e-5)
    coarse = compute_teacher_outputs(Fixed(), TokenBlocks(blocks), 2, dtype="float32", top_k=3)
    log_p = logits.log_softmax(-1)
    values, index = log_p.topk(3, -1)
    spread = ((1 - values.exp().sum(-1)) / 7).log().unsqueeze(-1).expand(3, 5, 10).clone()
    expanded = spread.scatter(-1, index, values)
    kl = (log_p.exp() * (log_p - expanded)).sum(-1).mean()
    assert float(coarse["top_k_kl"]) == pytest.approx(float(kl), rel=1e-4) and float(kl) > 0.01


def test_top_k_summary_in_chunks_equals_the_whole_computation_at_any_temperature() -> None:
    from kd.teacher.top_k import top_k_summary

    torch.manual_seed(2)
    logits, labels = torch.randn(2, 7, 40) * 3, torch.randint(0, 40, (2, 7))
    labels[0, 3] = -100
    for t in (1.0, 2.0):
        values, index, rest, label_lp, error = top_k_summary(logits, labels, 5, t, torch.float32, chunk=3)
        log_p = (logits / t).log_softmax(-1)
        top, top_index = log_p.topk(5, -1)
        assert torch.allclose(values, top) and torch.equal(index, top_index)
        assert torch.allclose(rest.exp(), 1 - top.exp().sum(-1), atol=1e-6)
        at_one = logits.log_softmax(-1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(label_lp, at_one.masked_fill(labels == -100, 0.0), atol=1e-6) and label_lp[0, 3] == 0
        spread = (rest.exp() / 35).log().unsqueeze(-1).expand(2, 7, 40).clone()
        expanded = spread.scatter(-1, index, values).log_softmax(-1)
        kl = (log_p.exp() * (log_p - expanded)).sum()
        assert error == pytest.approx(float(kl), rel=1e-4) and error > 0.1


def test_top_k_run_trains(make_cfg) -> None:
    metrics = train(make_cfg("loss=kd", "teacher_outputs.top_k=3"))
    assert metrics["test/kl"] > 0 and 0 <= metrics["test/agreement"] <= 1


def test_augmented_training_uses_live_teacher_or_refuses(make_cfg, capsys) -> None:
    with pytest.raises(ConfigError, match=r"randomly augmented \(data.module.augment: RandomShift\(pixels=2\), Hori"):
        train(make_cfg("loss=kd", "data.module.augment=true", "teacher_outputs.cache=true",
                       "teacher_outputs.augmented_views=false"))
    cfg = make_cfg("loss=kd", "data.module.augment=true", "teacher_outputs.augmented_views=false", *WHOLE_SPLITS)
    train(cfg)
    assert "teacher runs live on training batches: training batches are randomly augmented" in capsys.readouterr().out
    assert [p.name for p in cache_files(cfg)] == ["test.pt", "val.pt"]  # evaluation is never augmented


REFUSED = [
    (["loss=feature", "teacher_outputs.cache=true"], r"read teacher features; list their taps in teacher_outputs.features"),
    (["loss=feature", "teacher_outputs.features=[stage1]", "teacher_outputs.cache=true"],
     r"teacher_outputs.features=\['stage1'\]"),
    (["loss=feature", "teacher_outputs.features=[nope]"], r"\['nope'\] are not taps of the teacher"),
    (["loss=kd", "teacher_outputs.dtype=int8"], r"teacher_outputs.dtype='int8': choose one of float16"),
    (["loss=kd", "teacher_outputs.top_k=10"], r"teacher_outputs.top_k=10: give null or an int between 1 and 9"),
    (["loss=kd", "teacher_outputs.cache=sometimes"], r"teacher_outputs.cache='sometimes'"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_bad_cache_settings_are_refused(make_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides))


def test_feature_loss_with_its_taps_cached_equals_live(make_cfg) -> None:
    live = train(make_cfg("loss=feature", *FULL, "teacher_outputs.cache=false"))
    cached = train(make_cfg("loss=feature", *FULL, "teacher_outputs.features=[stage3]", "teacher_outputs.dtype=float32"))
    assert_same_metrics(cached, live, keys=("train/loss", "train/loss/feature", "test/acc", "test/agreement"))


@pytest.mark.slow
def test_text_cache_equals_live_teacher(make_cfg) -> None:
    live = train(make_cfg("loss=kd", "teacher_outputs.cache=false", base=TEXT_TINY))
    cached = train(make_cfg("loss=kd", "teacher_outputs.cache=true", "teacher_outputs.dtype=float32", base=TEXT_TINY))
    assert_same_metrics(cached, live, keys=("train/loss", "test/acc", "test/agreement", "test/kl"), rel=1e-4)
    with pytest.raises(ConfigError, match="fixed-shape"):
        train(make_cfg("loss=hidden", "teacher_outputs.features=[hidden1]", "teacher_outputs.cache=true", base=TEXT_TINY))


def test_cache_key_follows_what_changes_teacher_outputs(make_cfg, tmp_path: Path) -> None:
    base = make_cfg("trainer.precision=32-true")
    settings = {"dtype": "float16", "top_k": None, "features": []}
    t, u, copy_of_t = tmp_path / "t.ckpt", tmp_path / "u.ckpt", tmp_path / "elsewhere.ckpt"
    for path, content in ((t, b"weights"), (u, b"other weights"), (copy_of_t, b"weights")):
        path.write_bytes(content)
    key = json.dumps(cache_identity(base, t, settings), sort_keys=True)
    for same in (["seed=3"], ["loss.temperature=9"], ["data.module.batch_size=32"], ["data.module.augment=true"],
                 ["teacher_outputs.precision=32-true"], ["trainer.precision=bf16-mixed", "teacher_outputs.precision=32-true"]):
        assert json.dumps(cache_identity(make_cfg("trainer.precision=32-true", *same), t, settings), sort_keys=True) == key, same
    for other in (["trainer.precision=bf16-mixed"], ["teacher_outputs.precision=bf16-mixed"], ["data.module.source.noise=0.7"]):
        assert json.dumps(cache_identity(make_cfg("trainer.precision=32-true", *other), t, settings), sort_keys=True) != key, other
    assert cache_identity(base, u, settings) != cache_identity(base, t, settings)  # other weights
    assert cache_identity(base, copy_of_t, settings) == cache_identity(base, t, settings)  # the same weights elsewhere


def test_a_batch_view_is_a_pure_function_of_its_position_seed() -> None:
    from kd.data.augment import seeded_view
    from kd.data.batches import PositionSeededBatches

    images = torch.randn(16, 1, 8, 8)
    torch.manual_seed(1)
    first = seeded_view(images, 1234, STANDARD)
    torch.manual_seed(2)
    torch.rand(100)  # whatever else drew from the global generator does not matter
    assert torch.equal(seeded_view(images, 1234, STANDARD), first) and not torch.equal(seeded_view(images, 1235, STANDARD), first)
    sampler = PositionSeededBatches(40, 16, seed=7)
    sampler.set_epoch(3)
    seeds = [batch.view_seed for batch in sampler]
    sampler.set_epoch(3)
    assert [batch.view_seed for batch in sampler] == seeds and len(set(seeds)) == 3


def test_augmented_view_outputs_equal_the_live_teacher_on_the_training_batches(make_cfg) -> None:
    from kd.teacher.views import compute_view_outputs

    cfg = make_cfg("loss=kd", "data.module.augment=true", *SAME_BATCHES)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    teacher = instantiate(cfg.teacher.net).eval()
    stored = compute_view_outputs(teacher, datamodule.splits["train"], datamodule.augment_batch, batch_size=64,
                                  seed=5, epoch=1, num_classes=cfg.data.num_classes, dtype="float32")
    torch.manual_seed(5)  # the stage seed: the training loader's sampler takes torch.initial_seed()
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(1)
    seen = 0
    with torch.no_grad():
        for batch in loader:  # what training steps get (on_after_batch_transfer augments the same way)
            view = datamodule.augment_batch(batch)
            assert not torch.equal(view["inputs"], batch["inputs"])
            torch.testing.assert_close(stored["logits"][batch["index"]], teacher(view["inputs"]), rtol=1e-5, atol=1e-5)
            assert (stored["view_seed"][batch["index"]] == int(batch["view_seed"])).all()
            seen += len(batch["index"])
    assert seen == len(datamodule.splits["train"])


def test_augmented_views_are_cached_per_epoch_and_checked_against_each_batch(make_cfg, capsys, counted_lookups) -> None:
    views = ["data.module.augment=true", "teacher_outputs.augmented_views=true", *FULL, *SAME_BATCHES]
    live = train(make_cfg("loss=kd", *views, "teacher_outputs.cache=false"))
    cfg = make_cfg("loss=kd", *views, "teacher_outputs.dtype=float32")
    cached = train(cfg)
    aug = identity_hash([t.description() for t in STANDARD], 8)  # data.module.augment=true: the standard list
    view_files = [f"train@{e}-seed0-batch64-aug{aug}.pt" for e in (0, 1)]  # one per seed: a seed sweep keeps each
    assert sorted(p.name for p in cache_files(cfg)) == ["test.pt", *view_files, "val.pt"]
    assert sum(counted_lookups) > 0 and "teacher runs live" not in capsys.readouterr().out
    assert_same_metrics(live, cached, rel=1e-4)  # the same views, the teacher read instead of run
    entry = CachedTeacherOutputs(torch.load(cache_files(cfg)[1], weights_only=True), cfg.data.num_classes)
    rows, seed = entry.example_rows(4)
    with pytest.raises(RuntimeError, match="other augmented views"):
        entry.lookup(rows, view_seed=seed + 1)
    feature = make_cfg("loss=feature", *views, "teacher_outputs.features=[stage3]")
    train(feature)
    assert "augmented views are cached as logits only" in capsys.readouterr().out


def test_the_views_cache_key_is_the_configs_transform_list(make_cfg) -> None:
    """The transforms, every argument included, are in each view entry's record and name: another list or
    parameter gets its own entries, and ``true`` is the list it stands for."""
    def view_of(*overrides: str) -> dict:
        cfg = make_cfg(*overrides)
        return view_record(cfg, instantiate(cfg.data.module), 0)

    standard = view_of("data.module.augment=true")
    assert standard["augment"] == [{"_target_": "kd.data.augment.RandomShift", "pixels": 2},
                                   {"_target_": "kd.data.augment.HorizontalFlip", "p": 0.5}]
    explicit = "data.module.augment=[{_target_:kd.data.augment.RandomShift,pixels:2},{_target_:kd.data.augment.HorizontalFlip}]"
    assert view_of(explicit) == standard  # p's default is written out
    entries = {view_entry("train@0", standard)}
    for other in ("data.module.augment=[{_target_:kd.data.augment.RandomShift,pixels:1},{_target_:kd.data.augment.HorizontalFlip}]",
                  "data.module.augment=[{_target_:kd.data.augment.RandomShift,pixels:2},{_target_:kd.data.augment.HorizontalFlip,p:1}]",
                  "data.module.augment=[{_target_:kd.data.augment.HorizontalFlip},{_target_:kd.data.augment.RandomShift,pixels:2}]"):
        view = view_of(other)
        assert view["augment"] != standard["augment"] and {**view, "augment": None} == {**standard, "augment": None}
        entries.add(view_entry("train@0", view))
    assert len(entries) == 4


def test_view_epochs_are_those_the_run_reaches() -> None:
    datamodule = SimpleNamespace(augment=True, augment_batch=lambda batch: batch, augment_description=lambda: [],
                                 train_size=1000, batch_size=64)
    loss = SimpleNamespace(reads_teacher_features=False)
    cfg = OmegaConf.create({"trainer": {"max_epochs": 10, "max_steps": 40, "devices": 1}})
    assert view_epochs(cfg, datamodule, loss, True) == ([0, 1, 2], None)  # at least 15 steps an epoch
    cfg.trainer.limit_train_batches = 5
    assert view_epochs(cfg, datamodule, loss, True) == ([*range(8)], None)
    cfg.trainer.max_steps = -1
    assert view_epochs(cfg, datamodule, loss, True) == ([*range(10)], None)
    assert view_epochs(cfg, datamodule, loss, False) == ([], None)
    cfg.trainer.max_epochs = -1
    assert view_epochs(cfg, datamodule, loss, True)[1].startswith("trainer.max_epochs is unbounded")


def test_a_teacher_without_a_weights_file_runs_live_or_is_refused_under_cache_true(make_cfg, capsys) -> None:
    """A pretrained teacher used as it is has no file to key the cache by (prepare_teacher gives None)."""
    from kd.teacher.cache import prepare_cached_teacher
    from kd.training import build_loss

    cfg = make_cfg("loss=kd", *WHOLE_SPLITS)
    datamodule, loss = instantiate(cfg.data.module), build_loss(cfg.loss)
    teacher = instantiate(cfg.teacher.net)
    assert prepare_cached_teacher(cfg, datamodule, loss, teacher, None) == {}
    assert "[kd] teacher runs live: the teacher has no weights file to key the cache by" in capsys.readouterr().out
    assert cache_files(cfg) == []
    cfg.teacher_outputs.cache = True
    with pytest.raises(ConfigError, match="teacher_outputs.cache=true, but the teacher has no weights file"):
        prepare_cached_teacher(cfg, datamodule, loss, teacher, None)


def test_a_teacher_file_moved_elsewhere_keeps_its_cache(make_cfg, capsys, tmp_path: Path) -> None:
    """The cache knows the teacher by its bytes (SHA-256), not by its path: a copy on another mount reads it."""
    first = make_cfg("loss=kd", *FULL, "teacher_outputs.cache=true")
    metrics = train(first)
    assert "computing teacher outputs on the train split" in capsys.readouterr().out
    moved = tmp_path / "elsewhere" / "teacher.ckpt"
    moved.parent.mkdir()
    shutil.copy(metrics["teacher_ckpt"], moved)
    again = train(make_cfg("loss=kd", *FULL, "teacher_outputs.cache=true", f"teacher.ckpt={moved}"))
    out = capsys.readouterr().out
    assert "computing teacher outputs" not in out and "teacher outputs for train, val, test read from" in out
    assert again["teacher_ckpt"] == str(moved) and len(list(Path(first.paths.teacher_outputs_dir).iterdir())) == 1


def test_jobs_that_find_the_teacher_and_its_outputs_take_no_lock(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers of a trained teacher and of whole cache entries (renamed into place, checked on read) never
    wait on the build lock, so the parallel jobs of a sweep read at once."""
    train(make_cfg("loss=kd", *FULL, "teacher_outputs.cache=true"))

    def no_lock(path: Path) -> None:
        raise AssertionError(f"a reader took the build lock {path}")

    monkeypatch.setattr("kd.teacher.cache.build_lock", no_lock)
    monkeypatch.setattr("kd.teacher.weights.build_lock", no_lock)
    metrics = train(make_cfg("loss=kd", *FULL, "teacher_outputs.cache=true", "seed=1"))
    assert metrics["job_type"] == "distill"
