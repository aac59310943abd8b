"""The web app's prediction of a classifier capture (finetuning.describe.capture_prediction) equals
`classify`, also where the capture's tokens are not the token classifier's encoding of whitespace words:
a byte-level BPE keeps a double space as a token of its own, which split words do not have."""

from __future__ import annotations

import pytest
import torch

from attnlens import capture, classify
from attnlens.capturing import LoadedModel
from attnlens.finetuning.describe import capture_prediction, classifier_info
from attnlens.finetuning.predict import classification_of, classifier_encoding

CORPUS = ["a good dog ran to the big house", "the cat is small and the tree is red"] * 5
TEXT = "a good  dog ran  to the  big house  the cat"  # double spaces: tokens of their own for byte-level BPE


def bpe_tokenizer():
    """A tiny byte-level BPE (RoBERTa-style: <s> A </s></s> B </s>, a space before each word), trained in-process."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


def bpe_classifier(head: str) -> LoadedModel:
    import transformers
    from transformers import RobertaConfig

    tok = bpe_tokenizer()
    torch.manual_seed(3)
    config = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=1, num_labels=3,
                           id2label={0: "A", 1: "B", 2: "<i>C</i>"}, initializer_range=0.5)
    model = getattr(transformers, f"RobertaFor{head}Classification")(config)
    return LoadedModel(model, tok, name=f"tiny-bpe-{head.lower()}")


def test_token_classifier_on_other_tokens_still_equals_classify():
    lm = bpe_classifier("Token")
    assert classifier_info(lm) == {"kind": "token", "labels": ["A", "B", "<i>C</i>"]}
    cap = capture(TEXT, model=lm)
    enc, words = classifier_encoding(lm, TEXT)
    assert enc["input_ids"][0].tolist() != cap.token_ids.tolist()  # the capture's tokens are not the classifier's
    naive = classification_of(lm, enc, words, torch.from_numpy(cap.logits[:enc["input_ids"].shape[1]]))
    expected = classify(TEXT, model=lm)
    prediction = capture_prediction(lm, cap)
    assert prediction["words"] == expected.words == TEXT.split()
    assert prediction["tags"] == expected.tags != naive.tags  # (reading the capture's logits would be wrong here)
    assert len(prediction["tokens"]) == cap.num_tokens and prediction["tokens"][0] is None


def test_sequence_classifier_reads_the_capture_logits():
    lm = bpe_classifier("Sequence")
    for pair in [(TEXT, None), ("a good dog", "the cat")]:
        cap = capture(*pair, model=lm)
        expected = classify(*pair, model=lm)
        prediction = capture_prediction(lm, cap)
        assert prediction["label"] == expected.label
        assert prediction["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5, rel=0)
