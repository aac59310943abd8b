"""Text corpora: documents (the shipped prose corpus, users' files), sentence splitting and sentence pairs."""

from .documents import (
                        DATASETS,
                        HELDOUT_MODULUS,
                        SOURCES,
                        SPLITS,
                        is_heldout,
                        load_documents,
                        nsp_pairs,
                        parse_documents,
                        read_documents,
                        resolve_corpus,
                        sentence_pairs,
)

__all__ = ["DATASETS", "HELDOUT_MODULUS", "SOURCES", "SPLITS", "is_heldout", "load_documents", "nsp_pairs",
           "parse_documents", "read_documents", "resolve_corpus", "sentence_pairs"]
