"""Head ablations and head importance against independent computations (tiny random configs)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attnlens
from attnlens import AttnlensError
from attnlens.analysis.interventions import ablate_heads
from attnlens.capturing import model_inputs
from conftest import FAMILIES, PAIR, tiny_model
from effect_helpers import value_and_output_modules, with_head

PEAKED = dict(initializer_range=0.3)
PAIRS = [PAIR, ("The dog barked at night.", "Nobody slept."), ("Rain fell.", "The streets were wet and empty.")]


def _inputs(lm, pairs):
    enc = lm.tokenizer([a for a, _ in pairs], [b for _, b in pairs], return_tensors="pt", padding=True)
    return model_inputs(lm.model, enc, lm.device)


def _hidden(model, inputs):
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def _zeroed_copy(lm, layer, head, bias_from=None):
    """A copy of the model with head's W_O columns zeroed (ALBERT: its one shared layer), and optionally
    W_O^h @ bias_from added to the output bias."""
    model = copy.deepcopy(lm.model)
    shadow = type(lm)(model, lm.tokenizer, name="copy")
    _value, out = value_and_output_modules(shadow, layer)
    part = slice(head * lm.d_head, (head + 1) * lm.d_head)
    with torch.no_grad():
        if bias_from is not None:
            out.bias += out.weight[:, part] @ bias_from
        out.weight[:, part] = 0
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_ablation_equals_zeroing_the_heads_output_columns(family):
    lm = tiny_model(family, **PEAKED)
    inputs = _inputs(lm, PAIRS)
    layer, head = 1, 2
    # ALBERT shares one layer: zeroing its W_O columns removes the head in every layer
    heads = [(l, head) for l in range(lm.num_layers)] if family == "albert" else [(layer, head)]
    with torch.no_grad(), ablate_heads(lm, heads, "zero"):
        got = lm.model(**inputs).last_hidden_state
    expected = _hidden(_zeroed_copy(lm, layer, head), inputs)
    mask = inputs["attention_mask"].bool()
    assert torch.allclose(got[mask], expected[mask], atol=1e-5)
    assert (got[mask] - _hidden(lm.model, inputs)[mask]).abs().max() > 1e-3  # the ablation did something
    with torch.no_grad():  # the hooks are gone afterwards
        assert torch.equal(lm.model(**inputs).last_hidden_state, _hidden(lm.model, inputs))


def test_mean_and_uniform_ablation_equal_a_bias_shift():
    lm = tiny_model("bert", **PEAKED)
    inputs = _inputs(lm, [PAIR])
    layer, head, d = 2, 1, lm.d_head
    part = slice(head * d, (head + 1) * d)
    means = torch.randn(lm.num_layers, lm.num_heads, d)
    with torch.no_grad(), ablate_heads(lm, [(layer, head)], "mean", means=means):
        got = lm.model(**inputs).last_hidden_state
    assert torch.allclose(got, _hidden(_zeroed_copy(lm, layer, head, means[layer, head]), inputs), atol=1e-5)
    # uniform attention: the head's context is the mean of its value vectors (unchanged below the layer)
    seen = []
    value, _out = value_and_output_modules(lm, layer)
    handle = value.register_forward_hook(lambda m, i, o: seen.append(o[0, :, part].detach()))
    _hidden(lm.model, inputs)
    handle.remove()
    with torch.no_grad(), ablate_heads(lm, [(layer, head)], "uniform", mask=inputs["attention_mask"]):
        got = lm.model(**inputs).last_hidden_state
    assert torch.allclose(got, _hidden(_zeroed_copy(lm, layer, head, seen[0].mean(0)), inputs), atol=1e-5)


def test_ablation_errors():
    lm = tiny_model("bert")
    with pytest.raises(AttnlensError, match="unknown ablation 'half'"):
        with ablate_heads(lm, [(0, 0)], "half"):
            pass
    with pytest.raises(AttnlensError, match="outside this model"):
        with ablate_heads(lm, [(9, 0)], "zero"):
            pass


def _embedding_loss(hidden, reference, mask):
    m = mask[:, :, None].float()
    pooled = (hidden * m).sum(1) / m.sum(1)
    return 1 - F.cosine_similarity(pooled, reference, dim=-1)


def test_ablation_importance_is_the_mean_change_of_the_embedding():
    lm = tiny_model("bert", **PEAKED)
    result = attnlens.head_importance(PAIRS, lm, "embedding", "ablation", "zero", batch_size=2)
    assert result.scores.shape == (lm.num_layers, lm.num_heads) and result.inputs == len(PAIRS)
    inputs = _inputs(lm, PAIRS)
    mask = inputs["attention_mask"]
    m = mask[:, :, None].float()
    base = _hidden(lm.model, inputs)
    reference = (base * m).sum(1) / m.sum(1)
    for layer, head in [(0, 0), (2, 3)]:
        change = _embedding_loss(_hidden(_zeroed_copy(lm, layer, head), inputs), reference, mask)  # [B]
        assert result.scores[layer, head] == pytest.approx(float(change.mean()), rel=1e-4, abs=1e-7)
        assert result.spread[layer, head] == pytest.approx(float(change.std(unbiased=False)), rel=1e-3, abs=1e-7)
    assert result.baseline == pytest.approx(0.0, abs=1e-6)
    assert result.top(1)[0][2] == result.scores.max()


def test_gradient_importance_equals_the_gate_derivative():
    from transformers import BertForPreTraining

    lm = with_head(tiny_model("bert", **PEAKED), BertForPreTraining)
    result = attnlens.head_importance(PAIRS, lm, "nsp", "gradient", batch_size=3)
    # independent: dL/dxi_h at xi = 1 is <dL/dc_h, c_h>, with c the input of each layer's output Linear
    inputs = _inputs(lm, PAIRS)
    contexts = []
    handles = [value_and_output_modules(lm, l)[1].register_forward_hook(lambda m, i, o: contexts.append(i[0]))
               for l in range(lm.num_layers)]
    out = lm.model(**inputs)
    for h in handles:
        h.remove()
    losses = F.cross_entropy(out.seq_relationship_logits, torch.zeros(len(PAIRS), dtype=torch.long), reduction="none")
    raw = np.zeros((lm.num_layers, lm.num_heads))
    for b in range(len(PAIRS)):
        grads = torch.autograd.grad(losses[b], contexts, retain_graph=True)
        for l, (c, g) in enumerate(zip(contexts, grads)):
            per_head = (c[b] * g[b]).view(c.shape[1], lm.num_heads, -1).sum((0, 2))  # [H]
            raw[l] += per_head.abs().detach().numpy() / len(PAIRS)
    np.testing.assert_allclose(result.raw, raw, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(result.scores, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-4)


def test_objective_checks():
    lm = tiny_model("bert")
    with pytest.raises(AttnlensError, match="zero gradient.*ablation"):
        attnlens.head_importance(PAIRS, lm, "embedding", "gradient")
    with pytest.raises(AttnlensError, match="masked-LM head"):
        attnlens.head_importance(PAIRS, lm, "mlm")
    with pytest.raises(AttnlensError, match="ForSequenceClassification"):
        attnlens.head_importance(PAIRS, lm, "classification")
    with pytest.raises(AttnlensError, match="unknown objective 'bleu'"):
        attnlens.head_importance(PAIRS, lm, "bleu")
    with pytest.raises(AttnlensError, match="unknown method"):
        attnlens.head_importance(PAIRS, lm, "embedding", "taylor")


def test_classification_loss_is_the_models_own_loss():
    from transformers import BertForSequenceClassification

    from attnlens.analysis.objectives import OBJECTIVES, run
    from attnlens.capturing import batches

    lm = with_head(tiny_model("bert", **PEAKED), BertForSequenceClassification)
    labels = [1, 0, 1]
    batch = next(batches(lm, PAIRS, batch_size=3))
    from attnlens.analysis.objectives import padded_inputs

    inputs = padded_inputs(lm, batch)
    obj = OBJECTIVES["classification"]
    targets = obj.prepare(lm, inputs, batch, 0, labels)
    with torch.no_grad():
        loss, _ = run(obj, lm, inputs, targets)
        own = lm.model(**inputs, labels=torch.tensor([labels[i] for i in batch.index])).loss
    assert float(loss.mean()) == pytest.approx(float(own), rel=1e-5)
    result = attnlens.head_importance(PAIRS, lm, "classification", "gradient", labels=labels)
    assert np.isfinite(result.scores).all() and result.raw.max() > 0


def test_mlm_masks_are_fixed_whatever_the_batching():
    from transformers import BertForMaskedLM

    lm = with_head(tiny_model("bert", **PEAKED), BertForMaskedLM)
    one = attnlens.head_importance(PAIRS, lm, "mlm", "gradient", batch_size=1)
    three = attnlens.head_importance(PAIRS, lm, "mlm", "gradient", batch_size=3)
    np.testing.assert_allclose(one.raw, three.raw, rtol=1e-4, atol=1e-8)
    assert one.baseline == pytest.approx(three.baseline, rel=1e-5)
    other_seed = attnlens.head_importance(PAIRS, lm, "mlm", "gradient", batch_size=3, seed=1)
    assert other_seed.baseline != pytest.approx(three.baseline, rel=1e-5)


def test_pruning_curve_ends_and_files(tmp_path):
    lm = tiny_model("bert", **PEAKED)
    imp = attnlens.head_importance(PAIRS, lm, "embedding", "ablation")
    curve = attnlens.pruning_curve(PAIRS, lm, imp, points=None, seeds=(0, 1, 2))
    total = lm.num_layers * lm.num_heads
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1 and len(curve.fractions) == total + 1
    assert curve.by_importance[0] == pytest.approx(0.0, abs=1e-6)  # nothing removed: the unablated embedding
    # one head removed, least important first: exactly that head's ablation importance
    assert curve.by_importance[1] == pytest.approx(imp.scores.min(), rel=1e-4, abs=1e-7)
    for random in curve.random:  # all heads removed: the same model whatever the order
        assert random[-1] == pytest.approx(curve.by_importance[-1], rel=1e-5)
    assert len(curve.random) == 3 and curve.random[0] != curve.random[1]
    curve.save(tmp_path)
    imp.save(tmp_path)
    for name in ("pruning.json", "pruning.png", "pruning.svg", "importance.json", "importance.csv", "importance.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "importance.json").read_text())
    assert np.allclose(saved["scores"], imp.scores) and saved["objective"] == "embedding"
    rows = (tmp_path / "importance.csv").read_text().splitlines()
    assert rows[0] == "layer,head,score,raw,spread" and len(rows) == total + 1


@pytest.mark.parametrize("head_class", ["BertForMaskedLM", "BertForPreTraining"])
def test_mlm_loss_on_masked_positions_equals_the_full_models_logits(head_class):
    import transformers

    from attnlens.analysis.objectives import OBJECTIVES, padded_inputs, run
    from attnlens.capturing import batches

    lm = with_head(tiny_model("bert", **PEAKED), getattr(transformers, head_class))
    batch = next(batches(lm, PAIRS, batch_size=3))
    inputs = padded_inputs(lm, batch)
    obj = OBJECTIVES["mlm"]
    targets = obj.prepare(lm, inputs, batch, 0, None)
    assert targets["head"] is not None
    with torch.no_grad():
        fast, _ = run(obj, lm, inputs, targets)  # the encoder, then the head on masked positions only
        full, out = run(obj, lm, inputs, {**targets, "head": None})  # the whole model, logits everywhere
        logits = getattr(out, "logits", None)
        logits = out.prediction_logits if logits is None else logits  # [B, T, V]
    labels = targets["labels"]
    assert ((labels != -100).sum(1) >= 1).all()
    by_hand = [F.cross_entropy(logits[b][labels[b] != -100], labels[b][labels[b] != -100]) for b in range(3)]
    np.testing.assert_allclose(fast.numpy(), full.numpy(), rtol=1e-5)
    np.testing.assert_allclose(full.numpy(), torch.stack(by_hand).numpy(), rtol=1e-5)


def test_corpus_means_are_the_mean_context_over_real_tokens():
    from attnlens.analysis.importance import corpus_means

    lm = tiny_model("bert", **PEAKED)
    means = corpus_means(lm, PAIRS, batch_size=2)  # [L, H, D], two padded batches
    inputs = _inputs(lm, PAIRS)
    seen = []
    handles = [value_and_output_modules(lm, l)[1].register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
               for l in range(lm.num_layers)]
    _hidden(lm.model, inputs)
    for h in handles:
        h.remove()
    real = inputs["attention_mask"].bool()
    for layer, context in enumerate(seen):
        expected = context[real].mean(0).view(lm.num_heads, lm.d_head)  # [H, D]
        assert torch.allclose(means[layer], expected, atol=1e-5)
    result = attnlens.head_importance(PAIRS, lm, "embedding", "ablation", "mean", batch_size=2)
    assert np.isfinite(result.scores).all() and result.scores.max() > 0 and result.ablation == "mean"


def test_zero_ablation_of_a_decoder_with_conv1d_projections():
    """GPT-2 keeps W_O in a Conv1D (weight [in, out]): zeroing the head's rows is the same as the ablation."""
    from transformers import GPT2Config, GPT2Model

    from attnlens.capturing import LoadedModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=30522)
    lm = LoadedModel(GPT2Model(config), tiny_model("bert").tokenizer, name="tiny-gpt2")
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with torch.no_grad(), ablate_heads(lm, [(1, 2)], "zero"):
        got = lm.model(input_ids=ids).last_hidden_state
    shadow = copy.deepcopy(lm.model)
    with torch.no_grad():
        shadow.h[1].attn.c_proj.weight[2 * 8:3 * 8, :] = 0  # Conv1D: rows are the input (context) dimensions
        expected = shadow(input_ids=ids).last_hidden_state
        assert (expected - lm.model(input_ids=ids).last_hidden_state).abs().max() > 1e-4
    assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(AttnlensError, match="fuse or share"):
        with torch.no_grad(), ablate_heads(lm, [(1, 2)], "uniform", mask=torch.ones_like(ids)):
            lm.model(input_ids=ids)
