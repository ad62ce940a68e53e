"""The 98-token character vocabulary: encode/decode, batches, the byte-matrix fast path, the JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import tokenizer as tok
from engine.tasks import TASKS
from engine.tasks.stream import stream_queries
from engine.world import load_world


def test_vocabulary_layout(tmp_path: Path) -> None:
    assert tok.VOCAB_SIZE == 98 == len(tok.TOKENS)
    assert tok.TOKENS[:4] == ("<pad>", "<unk>", "<bos>", "<eos>")
    assert (tok.PAD, tok.UNK, tok.BOS, tok.EOS) == (0, 1, 2, 3)
    assert tok.TOKENS[4] == "!" and tok.TOKENS[97] == "~"
    assert tok.encode("!~") == [4, 97]
    tok.save_vocab(tmp_path / "vocab.json")
    saved = json.loads((tmp_path / "vocab.json").read_text())
    assert saved["tokens"] == list(tok.TOKENS) and saved["pad"] == 0 and saved["eos"] == 3


def test_unknown_characters_and_specials() -> None:
    assert tok.encode("a b\u00e9") == [tok.encode("a")[0], tok.UNK, tok.encode("b")[0], tok.UNK]
    assert tok.decode([tok.BOS, *tok.encode("x=1"), tok.EOS, tok.PAD, tok.PAD]) == "x=1"
    assert tok.decode([tok.UNK, 200, -1]) == ""


def test_encode_batch_layout() -> None:
    rows = tok.encode_batch(["ab", "", "xyz\u00e9"])
    assert rows.dtype == np.uint8 and rows.shape == (3, 6)
    assert rows[0].tolist() == [tok.BOS, *tok.encode("ab"), tok.EOS, tok.PAD, tok.PAD]
    assert rows[1].tolist() == [tok.BOS, tok.EOS, 0, 0, 0, 0]
    assert rows[2].tolist() == [tok.BOS, *tok.encode("xyz"), tok.UNK, tok.EOS]
    no_eos = tok.encode_batch(["ab", "c"], add_eos=False)
    assert no_eos.tolist() == [[tok.BOS, *tok.encode("ab")], [tok.BOS, *tok.encode("c"), tok.PAD]]
    assert tok.encode_batch([]).shape == (0, 2)


@pytest.mark.parametrize("set_name", ["standard", "atlantis"])
def test_round_trip_on_every_task(set_name: str) -> None:
    world = load_world()
    for i, task in enumerate(TASKS.values()):
        queries = stream_queries(task, i, world, set_name, "train", 3, 300)
        prompts, answers = task.format(world, queries)
        texts = [f"{p}={a}" for p, a in zip(prompts, answers, strict=True)]
        rows = tok.encode_batch(texts)
        assert rows.shape[1] <= 256
        assert [tok.decode(r) for r in rows] == texts
        assert all(tok.decode(tok.encode(t)) == t for t in texts)
        assert tok.UNK not in rows
        # the token-matrix fast path used for training sets gives the same rows
        fast = task.tokens(world, queries)
        assert fast.shape == rows.shape and (fast == rows).all()
