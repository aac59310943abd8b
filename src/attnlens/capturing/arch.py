"""The architecture table: where each encoder family keeps its attention projections, and its quirks.

Each family is a declarative :class:`ArchSpec`: regular expressions over the *unmodified*
Hugging Face module names plus the few facts that differ between families (config field
names, position offsets). Hooks on the matching Linear modules record their outputs in call
order, which is layer order, so shared-weight models (ALBERT) still give one record per layer.
A new family is one :func:`register_arch` call (see the README's Architecture section).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import AttnlensError
from .recorders import recorder_names

_LAYER = r"encoder\.layer\.\d+\.attention\.self\."


@dataclass(frozen=True)
class ArchSpec:
    """Where one family keeps its attention projections (names relative to any wrapper), and its quirks."""

    family: str
    model_types: tuple[str, ...]
    query: str | None  # regex matched against the end of a module name (None: q/k not recorded, see FALLBACK)
    key: str | None
    position_embeddings: str | None  # regex of the learned absolute position Embedding (None: the family has none)
    segment_embeddings: str | None  # regex of the token-type Embedding (None: the family has none)
    value: str | None = None  # regex of the value projection (values=True)
    output: str | None = None  # regex of the attention output projection whose weight is W_O (values=True)
    recorder: str = "linear_qk"  # how attention is recorded and recomputed (capturing.recorders)
    causal: bool = False  # a decoder: a token attends only to itself and earlier tokens
    hidden_size_field: str = "hidden_size"  # config field of the model width (DistilBERT: "dim")
    reserved_positions: bool = False  # positions start after padding_idx (RoBERTa): max_length loses pad_token_id + 1
    attention: str | None = None  # regex of each layer's attention module (recorders that read its inputs)

    def d_head(self, config) -> int:
        """Width of one head's query/key vectors (the config's own head_dim where it sets one: Llama, Qwen2)."""
        explicit = getattr(config, "head_dim", None)
        if explicit:
            return int(explicit)
        return int(getattr(config, self.hidden_size_field)) // int(config.num_attention_heads)

    def max_length(self, config) -> int:
        """Longest input the position embeddings allow."""
        limit = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
                    or FALLBACK_MAX_LENGTH)  # a family without either field (the eager fallback): a generous limit
        if self.reserved_positions:
            limit -= int(getattr(config, "pad_token_id", 1)) + 1
        return limit


def _bert_like(family: str, model_types: tuple[str, ...], **quirks) -> ArchSpec:
    return ArchSpec(family, model_types, query=_LAYER + "query", key=_LAYER + "key", value=_LAYER + "value",
                    output=r"encoder\.layer\.\d+\.attention\.output\.dense",
                    position_embeddings=r"embeddings\.position_embeddings",
                    segment_embeddings=r"embeddings\.token_type_embeddings", **quirks)


_DEBERTA = r"encoder\.layer\.\d+\.attention\."
_MPNET = r"encoder\.layer\.\d+\.attention\.attn\."
FALLBACK_RECORDER = "output_attentions"  # any model_type without an entry: the model's own eager attention
FALLBACK_MAX_LENGTH = 4096

_SPECS: list[ArchSpec] = [
    _bert_like("bert", ("bert",)),
    _bert_like("roberta", ("roberta", "xlm-roberta", "camembert"), reserved_positions=True),
    _bert_like("electra", ("electra",)),
    ArchSpec(
        "distilbert", ("distilbert",),
        query=r"transformer\.layer\.\d+\.attention\.q_lin",
        key=r"transformer\.layer\.\d+\.attention\.k_lin",
        value=r"transformer\.layer\.\d+\.attention\.v_lin",
        output=r"transformer\.layer\.\d+\.attention\.out_lin",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=None,
        hidden_size_field="dim",
    ),
    ArchSpec(
        "albert", ("albert",),
        query=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.query",
        key=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.key",
        value=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.value",
        output=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.dense",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
    ),
    ArchSpec(  # disentangled attention: q_c . k_c plus content->position and position->content terms
        "deberta-v2", ("deberta-v2",),
        query=_DEBERTA + r"self\.query_proj", key=_DEBERTA + r"self\.key_proj", value=_DEBERTA + r"self\.value_proj",
        output=_DEBERTA + r"output\.dense", attention=_DEBERTA + r"self",
        position_embeddings=r"embeddings\.position_embeddings",  # absent when position_biased_input is false (v3)
        segment_embeddings=r"embeddings\.token_type_embeddings",  # absent when type_vocab_size is 0 (v3)
        recorder="disentangled",
    ),
    ArchSpec(  # q . k / sqrt(d) plus a learned relative-position bias per head
        "mpnet", ("mpnet",),
        query=_MPNET + "q", key=_MPNET + "k", value=_MPNET + "v", output=_MPNET + "o",
        attention=r"encoder\.layer\.\d+\.attention\.attn",
        position_embeddings=r"embeddings\.position_embeddings", segment_embeddings=None,
        recorder="relative_bias", reserved_positions=True,
    ),
    # Attention run through transformers' attention interface: the "interface" recorder (families/interface.py)
    # records the q/k the attention function receives (post-rotary) and the model's own causal / window mask.
    ArchSpec(
        "gpt2", ("gpt2",),
        query=r"h\.\d+\.attn\.c_attn", key=r"h\.\d+\.attn\.c_attn",  # one fused Conv1D projects q, k and v
        value=r"h\.\d+\.attn\.c_attn", output=r"h\.\d+\.attn\.c_proj", attention=r"h\.\d+\.attn",
        position_embeddings=r"wpe", segment_embeddings=None, recorder="interface", causal=True,
    ),
    *(ArchSpec(  # rotary positions, grouped-query attention (Qwen2: optional sliding window on upper layers)
        family, (family,),
        query=r"layers\.\d+\.self_attn\.q_proj", key=r"layers\.\d+\.self_attn\.k_proj",
        value=r"layers\.\d+\.self_attn\.v_proj", output=r"layers\.\d+\.self_attn\.o_proj",
        attention=r"layers\.\d+\.self_attn", position_embeddings=None, segment_embeddings=None,
        recorder="interface", causal=True,
    ) for family in ("llama", "qwen2")),
    ArchSpec(  # rotary positions; local sliding-window attention on most layers, global on every n-th
        "modernbert", ("modernbert",),
        query=r"layers\.\d+\.attn\.Wqkv", key=r"layers\.\d+\.attn\.Wqkv",  # one fused Linear: q, k and v
        value=r"layers\.\d+\.attn\.Wqkv", output=r"layers\.\d+\.attn\.Wo", attention=r"layers\.\d+\.attn",
        position_embeddings=None, segment_embeddings=None, recorder="interface",
    ),
]


def arch_specs() -> tuple[ArchSpec, ...]:
    """Every registered family, built-in ones first."""
    return tuple(_SPECS)


def supported_model_types() -> str:
    return ", ".join(sorted({t for s in _SPECS for t in s.model_types}))


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Add a family to the table (or replace the one with the same family name).

    Only families whose attention is softmax(q . k / sqrt(d_head) + mask) over the hooked
    query/key Linear outputs can be captured exactly this way.
    """
    if not isinstance(spec, ArchSpec):
        raise AttnlensError(f"register_arch takes an ArchSpec, not {type(spec).__name__}")
    if not spec.model_types:
        raise AttnlensError(f"ArchSpec {spec.family!r} names no model_type (the config's model_type field)")
    for pattern in (spec.query, spec.key, spec.value, spec.output, spec.position_embeddings,
                    spec.segment_embeddings, spec.attention):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise AttnlensError(
                    f"ArchSpec {spec.family!r}: {pattern!r} is not a regular expression ({exc})"
                ) from None
    if spec.recorder not in recorder_names():
        raise AttnlensError(f"ArchSpec {spec.family!r}: unknown recorder {spec.recorder!r} "
                            f"(known: {', '.join(recorder_names())})")
    for other in list(_SPECS):
        if other.family == spec.family:
            _SPECS.remove(other)
        elif set(other.model_types) & set(spec.model_types):
            taken = ", ".join(sorted(set(other.model_types) & set(spec.model_types)))
            raise AttnlensError(f"model_type {taken} is already handled by family {other.family!r}")
    _SPECS.append(spec)
    return spec


def fallback_spec(model_type: str, config=None) -> ArchSpec:
    """The entry of a model_type the table does not cover: its own eager `output_attentions`, no q/k."""
    names = getattr(config, "architectures", None) or ()
    causal = bool(getattr(config, "is_decoder", False)) or any(n.endswith(("ForCausalLM", "LMHeadModel"))
                                                                for n in names)
    return ArchSpec(str(model_type), (str(model_type),), query=None, key=None, position_embeddings=None,
                    segment_embeddings=None, recorder=FALLBACK_RECORDER, causal=causal)


def spec_for_config(config) -> ArchSpec:
    """The spec of a transformers config; a model_type without an entry (or a BERT-like config whose
    scores are not plain q . k) gets `fallback_spec`: the model's own attention, without q/k."""
    model_type = getattr(config, "model_type", None)
    if not model_type:
        raise AttnlensError("this config names no model_type: attnlens cannot tell how it computes attention")
    for spec in _SPECS:
        if model_type in spec.model_types:
            kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
            if kind != "absolute":  # its scores include terms that are not q . k
                return fallback_spec(model_type, config)
            return spec
    return fallback_spec(model_type, config)


def find_modules(model, pattern: str) -> list[tuple[str, object]]:
    """(name, module) of every submodule whose name ends with `pattern`, in definition order."""
    regex = re.compile(r"(^|\.)" + pattern + r"$")
    return [(name, mod) for name, mod in model.named_modules() if regex.search(name)]
