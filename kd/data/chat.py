"""A DataModule for prompt/response (instruction, chat) distillation: each turn rendered with the
tokenizer's chat template, the loss on response tokens only.

Rows are padded, not packed: one turn per row of ``block_size + 1`` tokens, the prompt's and the
padding's labels ignored (-100). Packing would let a response attend to an unrelated conversation
before it, and the held-out prompts are generated from one by one (``openings``). A turn whose prompt
alone fills the block is dropped and a response that overruns it is cut; both are counted in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning.pytorch as L
import torch

from kd.data.batches import SplitLoaders
from kd.data.chat_sources import Conversation
from kd.data.lm import TokenBlocks, example_token_batch, split_documents, utf8_bytes_per_token
from kd.errors import ConfigError
from kd.models.text import load_tokenizer


class ChatDataModule(SplitLoaders, L.LightningDataModule):
    """Next-token batches of templated turns (``LMDataModule``'s batch format): ``labels`` score only
    the response tokens. ``openings`` holds each split's prompts (templated, ending where the response
    starts), which generation-quality evaluation continues.

    Args:
        source: ``() -> conversations``, e.g. ``kd.data.chat_sources.chitchat``.
        tokenizer: the tokenizer's ``name_or_path``; normally the teacher's, with a chat template.
        block_size: tokens per row (prompt and response).
        system_prompt: the system message of every turn; null = the template's own default.
        chat_template: render with the tokenizer's chat template; false = plain ``<prompt>\\n<response><eos>``
            for tokenizers without one.
        batch_size, eval_batch_size, val_fraction, test_fraction, split_seed: as ``LMDataModule`` (the
            split is by conversation).
        max_rows: at most this many rows per split (``train``, ``val``, ``test``), or null for all.
    """

    prompts_end_where_labels_start = True  # on-policy sampling continues each row's own prompt (kd.lm.on_policy)

    def __init__(
        self,
        source: Callable[[], list[Conversation]],
        tokenizer: str,
        block_size: int = 256,
        system_prompt: str | None = None,
        chat_template: bool = True,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        max_rows: dict[str, int | None] | None = None,
    ) -> None:
        super().__init__()
        self.source, self.tokenizer_name, self.block_size = source, tokenizer, block_size
        self.system_prompt, self.chat_template = system_prompt, chat_template
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.max_rows = dict(max_rows or {})
        self.splits: dict[str, TokenBlocks] = {}
        self.openings: dict[str, list[list[int]]] = {}  # each row's templated prompt
        self.prompts: dict[str, list[str]] = {}  # each row's prompt as the data gives it
        self.responses: dict[str, list[str]] = {}  # each row's reference response (for ROUGE against it)
        self.bytes_per_token: dict[str, float] = {}  # UTF-8 bytes per scored label token (for bits per byte)
        self.counts: dict[str, dict[str, int]] = {}  # per split: rows kept, prompts too long, responses cut

    @property
    def tokenizer(self):
        return load_tokenizer(self.tokenizer_name)

    def example_inputs(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        """A short tokenised batch (reads no data)."""
        return example_token_batch(self.tokenizer, batch_size)

    def generation_prompts(self, split: str, tokens: int) -> list[list[int]]:
        """The whole templated prompts of ``split`` of at least ``tokens`` tokens (answers are generated from them)."""
        return [ids for ids in self.openings[split] if len(ids) >= tokens]

    def render(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """The token ids of a turn's prompt (up to where the response starts) and of the whole turn."""
        tok = self.tokenizer
        if not self.chat_template:
            head = tok(prompt + "\n", add_special_tokens=False)["input_ids"]
            return head, head + tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        if not tok.chat_template:
            raise ConfigError(
                f"data.module.chat_template=true, but the tokenizer {self.tokenizer_name} has no chat template. "
                "Use a chat model's tokenizer, or data.module.chat_template=false (plain prompt and response)."
            )
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        user = [*system, {"role": "user", "content": prompt}]
        head = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True)["input_ids"]
        full = tok.apply_chat_template([*user, {"role": "assistant", "content": response}], tokenize=True)["input_ids"]
        if full[: len(head)] != head:  # a template that renders the prompt differently once answered
            raise ConfigError(f"the chat template of {self.tokenizer_name} does not render a prompt as the start of its answered turn")
        return list(head), list(full)

    def rows(self, turns: Sequence[tuple[str, str]], limit: int | None, split: str) -> TokenBlocks:
        """Padded rows of ``turns`` with the prompt's and padding's labels ignored; counts in ``self.counts``."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        width = self.block_size + 1
        blocks, ignored, openings, prompts, responses = [], [], [], [], []
        counts = {"rows": 0, "prompt_too_long": 0, "response_cut": 0, "empty_response": 0}
        for prompt, response in turns:
            if limit is not None and counts["rows"] >= limit:
                break
            if not response.strip():
                counts["empty_response"] += 1
                continue
            head, full = self.render(prompt, response)
            if len(head) >= self.block_size:
                counts["prompt_too_long"] += 1
                continue
            counts["response_cut"] += len(full) > width
            full = full[:width]
            blocks.append(full + [pad] * (width - len(full)))
            # label t is token t + 1: scored where that token belongs to the response
            ignored.append([not (len(head) <= t + 1 < len(full)) for t in range(self.block_size)])
            openings.append(head)
            prompts.append(prompt)
            responses.append(response)
            counts["rows"] += 1
        self.counts[split] = counts
        if not blocks:
            raise ConfigError(
                f"no {split} rows are left of data.module.source ({counts}): every turn's prompt fills "
                f"data.module.block_size={self.block_size} tokens or its response is empty. Use a larger "
                "block_size, or other data."
            )
        self.openings[split], self.prompts[split], self.responses[split] = openings, prompts, responses
        return TokenBlocks(torch.as_tensor(blocks, dtype=torch.long), torch.as_tensor(ignored, dtype=torch.bool))

    def use_responses(self, split: str, turns: Sequence[tuple[str, str]]) -> None:
        """Replace ``split``'s rows by ``turns`` (e.g. the teacher's answers to its prompts)."""
        self.splits[split] = self.rows(turns, None, split)
        counts = self.counts[split]
        print(f"[kd] {split}: {counts['rows']} turns with the teacher's answers; dropped {counts['empty_response']} "
              f"empty answers; cut {counts['response_cut']} at the block's end", flush=True)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        found = [c for c in self.source() if c]
        split = split_documents(len(found), self.val_fraction, self.test_fraction, self.split_seed)
        for name, idx in split.items():
            turns = [turn for i in idx for turn in found[i]]
            self.splits[name] = self.rows(turns, self.max_rows.get(name), name)
            counts = self.counts[name]
            print(f"[kd] {name}: {counts['rows']} turns of {len(idx)} conversations; dropped "
                  f"{counts['prompt_too_long']} whose prompt fills the block and {counts['empty_response']} "
                  f"with an empty response; cut {counts['response_cut']} responses at the block's end", flush=True)
            if name != "train":
                blocks = self.splits[name]
                assert blocks.ignored is not None  # rows() always marks the prompt and padding
                self.bytes_per_token[name] = utf8_bytes_per_token(self.tokenizer, blocks.blocks[:, 1:][~blocks.ignored])
