"""Teacher answers to training prompts (kd/teacher/responses.py): generated once and read by later runs,
resumable after a kill with the same answers, scored after the test, and bad settings refused first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kd.errors import ConfigError
from kd.teacher.responses import generate_responses
from tests.conftest import compose_config
from tests.data.test_chat import write_jsonl

STOP = 2


class Sampler(torch.nn.Module):
    """``generate`` draws answers from the global RNG (as sampling does); ``fail_after`` calls, it raises."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.calls, self.fail_after = 0, fail_after

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **_: object) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # killed mid-generation
        return torch.cat([input_ids, torch.randint(10, 100, (len(input_ids), max_new_tokens))], dim=1)


class Decoder:
    eos_token_id, pad_token_id = STOP, 0

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return " ".join(map(str, ids))


SETTINGS = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 4, "per_prompt": 2, "seed": 3, "batch_size": 4}
PROMPTS = [[1, i] for i in range(7)]


def test_a_killed_generation_resumes_to_the_same_answers(tmp_path: Path) -> None:
    header = {"identity": "x"}
    whole = generate_responses(Sampler(), PROMPTS, SETTINGS, Decoder(), tmp_path / "a.partial.jsonl", header)
    assert len(whole) == 14 and whole[0] != whole[1]  # two sampled answers per prompt
    partial = tmp_path / "b.partial.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_responses(Sampler(fail_after=2), PROMPTS, SETTINGS, Decoder(), partial, header)
    with open(partial, "a") as out:
        out.write('{"responses": ["half a li')  # the line being written when the process died
    resumed_teacher = Sampler()
    assert generate_responses(resumed_teacher, PROMPTS, SETTINGS, Decoder(), partial, header) == whole
    assert resumed_teacher.calls == 2  # 4 batches of 4 answers; 2 were kept
    lines = partial.read_text().splitlines()
    assert json.loads(lines[0]) == header and len(lines) == 5  # the half-written line is gone
    other = generate_responses(Sampler(), PROMPTS, {**SETTINGS, "seed": 4}, Decoder(), tmp_path / "c.partial.jsonl", header)
    assert other != whole


def chat_run(tmp_path: Path, *overrides: str):
    rows = [{"prompt": f"what is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(40)]
    path = write_jsonl(tmp_path / "sums.jsonl", rows)
    return compose_config(["data=chat_file", f"data.module.source.path={path}", "data.module.block_size=48",
                           "teacher=llama_tiny", "student=llama_tiny", "trainer=smoke", "~logger",
                           "data.module.max_rows.val=8", "data.module.max_rows.test=8", "data.generation.scored_prompts=4",
                           "data.teacher_responses.max_new_tokens=8", *overrides], tmp_path)


def test_students_learn_the_teachers_answers_and_are_scored_against_them(tmp_path: Path, capsys) -> None:
    from kd.job import train

    cfg = chat_run(tmp_path, "loss=fkl", "data.responses=teacher", "teacher_outputs.top_k=8", "teacher_outputs.cache=true",
                   "data.generation.exact_match=true")
    metrics = train(cfg)
    stored = Path(metrics["teacher_generations"])
    assert stored.parent == tmp_path / "teacher_outputs" / "responses" and stored.suffix == ".jsonl"
    answers = [a for line in stored.read_text().splitlines()[1:] for a in json.loads(line)["responses"]]
    header = json.loads(stored.read_text().splitlines()[0])
    assert len(answers) == header["prompts"] > 20 and not list(stored.parent.glob("*.partial.jsonl"))
    for key in ("test/rougeL_ref", "test/rougeL_teacher", "test/teacher_rougeL_ref", "test/exact_match", "test/teacher_exact_match"):
        assert 0 <= metrics[key] <= 100
    assert 0 < metrics["test/answer_tokens"] <= 64 and metrics["job_type"] == "distill"
    assert "**reference**" in (Path(cfg.paths.output_dir) / "generations.md").read_text()
    # a second seed reads the same answers (their seed is data.teacher_responses.seed, not the run's)
    capsys.readouterr()
    again = train(chat_run(tmp_path, "loss=ce", "data.responses=teacher", "seed=1"))
    assert again["teacher_generations"] == str(stored) and "teacher responses read from" in capsys.readouterr().out
    # SFT on the data's own answers is the baseline; the teacher still answers the test prompts to score them
    sft = train(chat_run(tmp_path, "loss=ce"))
    assert sft["job_type"] == "baseline" and "test/rougeL_teacher" in sft and sft["teacher_generations"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.teacher_responses.temperature=-1"], r"data.teacher_responses.temperature"),
        (["data.teacher_responses.top_p=0"], r"data.teacher_responses.top_p"),
        (["data.teacher_responses.top_p=1.5"], r"data.teacher_responses.top_p"),
        (["data.teacher_responses.max_new_tokens=0"], r"data.teacher_responses.max_new_tokens"),
        (["data.responses=mine"], r"data.responses"),
        (["loss=seqkd"], r"loss.teacher_generations .* use data.responses=teacher with loss=ce"),
    ],
)
def test_bad_teacher_answer_settings_are_refused_before_any_work(tmp_path: Path, overrides, message) -> None:
    from kd.job import train

    with pytest.raises(ConfigError, match=message):
        train(chat_run(tmp_path, "loss=fkl", "data.responses=teacher", *overrides))
    assert not (tmp_path / "teachers").exists() and not (tmp_path / "teacher_outputs").exists()


def test_teacher_answers_need_prompts(make_cfg) -> None:
    from kd.job import train
    from tests.lm.test_lm import LM_TINY

    with pytest.raises(ConfigError, match=r"data.responses=teacher: data=\w+ has no prompts for the teacher to answer"):
        train(make_cfg("loss=fkl", "+data.responses=teacher", base=LM_TINY))
