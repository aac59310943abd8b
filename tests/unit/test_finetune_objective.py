"""The fine-tuning data path and objective: pair segments, first-piece labels, the loss by hand, the stream."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from attnlens.finetuning.data import IGNORE, ExampleStream, collate, encode_examples
from attnlens.finetuning.tasks import Example, Task
from conftest import default_tokenizer, tiny_config


def _token_task():
    return Task("t", "token", ("O", "X"), [Example(("the", "strawberries", "ran"), None, ("O", "X", "O"))], [])


def test_pair_inputs_are_cls_a_sep_b_sep_with_segment_ids():
    tok = default_tokenizer()
    task = Task("p", "pair", ("n", "y"), [Example("the dog ran", "a cat sat", "y")], [])
    enc = encode_examples(task, task.train, tok, 64)
    tokens = tok.convert_ids_to_tokens(enc.input_ids[0].tolist())
    assert tokens == ["[CLS]", "the", "dog", "ran", "[SEP]", "a", "cat", "sat", "[SEP]"]
    assert enc.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert enc.labels == [1]


def test_token_labels_sit_on_the_first_piece_of_each_word():
    tok = default_tokenizer()
    enc = encode_examples(_token_task(), _token_task().train, tok, 64)
    tokens = tok.convert_ids_to_tokens(enc.input_ids[0].tolist())
    assert tokens == ["[CLS]", "the", "straw", "##berries", "ran", "[SEP]"]  # one word in two pieces
    assert enc.labels[0].tolist() == [IGNORE, 0, 1, IGNORE, 0, IGNORE]


def test_token_loss_is_cross_entropy_at_first_pieces_only_checked_by_hand():
    from transformers import BertForTokenClassification

    from attnlens.finetuning.objective import ClassificationObjective

    torch.manual_seed(0)
    model = BertForTokenClassification(tiny_config("bert", num_labels=2, hidden_dropout_prob=0.0,
                                                   attention_probs_dropout_prob=0.0)).eval()
    task = _token_task()
    batch = collate(encode_examples(task, task.train, default_tokenizer(), 64), [0], 0)
    objective = ClassificationObjective(model)
    (norm,) = objective.norms(batch, world=1)
    assert norm == 3.0  # three words, three labelled pieces
    loss, stats = objective(batch, norm)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                       attention_mask=batch.attention_mask).logits[0]  # [T, 2]
    # by hand: positions 1 (the), 2 (straw), 4 (ran) with tags O, X, O
    expected = sum(-torch.log_softmax(logits[p], -1)[t] for p, t in ((1, 0), (2, 1), (4, 0))) / 3
    torch.testing.assert_close(loss, expected)
    wrong = F.cross_entropy(logits[1:5], torch.tensor([0, 1, 1, 0]))  # counting the second piece would differ
    assert not torch.isclose(loss, wrong)
    assert stats[2].item() == 3 and 0 <= stats[1].item() <= 3


def test_stream_is_a_pure_function_of_seed_and_step_and_covers_each_epoch():
    tok = default_tokenizer()
    task = Task("s", "sequence", ("a", "b"), [Example(f"text {i} " * (1 + i % 4), None, "ab"[i % 2])
                                              for i in range(10)], [])
    enc = encode_examples(task, task.train, tok, 32)
    one, two = ExampleStream(enc, 4, seed=3, pad_id=0), ExampleStream(enc, 4, seed=3, pad_id=0)
    for step in (4, 0, 7):  # any order: the same batches
        a, b = one.batch(step), two.batch(step)
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    seen = np.concatenate([one.indices(s) for s in range(5)])  # 20 samples = 2 epochs of 10
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:])  # reshuffled every epoch
    assert not np.array_equal(ExampleStream(enc, 4, seed=4, pad_id=0).indices(0), one.indices(0))
    batch = one.batch(0)
    assert batch.attention_mask.sum(1).tolist() == [len(enc.input_ids[i]) for i in one.indices(0)]
