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

_LAYER = r"encoder\.layer\.\d+\.attention\.self\."


@dataclass(frozen=True)
class ArchSpec:
    """Where one family keeps its attention projections (names relative to any wrapper), and its quirks."""

    family: str
    model_types: tuple[str, ...]
    query: str  # regex matched against the end of a module name
    key: str
    position_embeddings: str | None  # regex of the learned absolute position Embedding (None: the family has none)
    segment_embeddings: str | None  # regex of the token-type Embedding (None: the family has none)
    hidden_size_field: str = "hidden_size"  # config field of the model width (DistilBERT: "dim")
    reserved_positions: bool = False  # positions start after padding_idx (RoBERTa): max_length loses pad_token_id + 1

    def d_head(self, config) -> int:
        """Width of one head's query/key vectors."""
        return int(getattr(config, self.hidden_size_field)) // int(config.num_attention_heads)

    def max_length(self, config) -> int:
        """Longest input the position embeddings allow."""
        limit = int(config.max_position_embeddings)
        if self.reserved_positions:
            limit -= int(getattr(config, "pad_token_id", 1)) + 1
        return limit


def _bert_like(family: str, model_types: tuple[str, ...], **quirks) -> ArchSpec:
    return ArchSpec(family, model_types, query=_LAYER + "query", key=_LAYER + "key",
                    position_embeddings=r"embeddings\.position_embeddings",
                    segment_embeddings=r"embeddings\.token_type_embeddings", **quirks)


_SPECS: list[ArchSpec] = [
    _bert_like("bert", ("bert",)),
    _bert_like("roberta", ("roberta", "xlm-roberta", "camembert"), reserved_positions=True),
    _bert_like("electra", ("electra",)),
    ArchSpec(
        "distilbert", ("distilbert",),
        query=r"transformer\.layer\.\d+\.attention\.q_lin",
        key=r"transformer\.layer\.\d+\.attention\.k_lin",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=None,
        hidden_size_field="dim",
    ),
    ArchSpec(
        "albert", ("albert",),
        query=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.query",
        key=r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.key",
        position_embeddings=r"embeddings\.position_embeddings",
        segment_embeddings=r"embeddings\.token_type_embeddings",
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
    for pattern in (spec.query, spec.key, spec.position_embeddings, spec.segment_embeddings):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise AttnlensError(
                    f"ArchSpec {spec.family!r}: {pattern!r} is not a regular expression ({exc})"
                ) from None
    for other in list(_SPECS):
        if other.family == spec.family:
            _SPECS.remove(other)
        elif set(other.model_types) & set(spec.model_types):
            taken = ", ".join(sorted(set(other.model_types) & set(spec.model_types)))
            raise AttnlensError(f"model_type {taken} is already handled by family {other.family!r}")
    _SPECS.append(spec)
    return spec


def spec_for_config(config) -> ArchSpec:
    """The spec of a transformers config, or a clear error naming the supported families."""
    model_type = getattr(config, "model_type", None)
    for spec in _SPECS:
        if model_type in spec.model_types:
            kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
            if kind != "absolute":
                raise AttnlensError(
                    f"position_embedding_type={kind!r} is not supported (only 'absolute'): "
                    "its attention scores include terms that are not q . k"
                )
            return spec
    raise AttnlensError(f"unsupported architecture {model_type!r}: attnlens supports {supported_model_types()} "
                        "(a new family: attnlens.register_arch)")


def find_modules(model, pattern: str) -> list[tuple[str, object]]:
    """(name, module) of every submodule whose name ends with `pattern`, in definition order."""
    regex = re.compile(r"(^|\.)" + pattern + r"$")
    return [(name, mod) for name, mod in model.named_modules() if regex.search(name)]
