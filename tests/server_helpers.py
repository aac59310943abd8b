"""Helpers for the server tests: tiny random models (one with a masked-LM head, saved to a folder) and apps."""

from __future__ import annotations

from pathlib import Path

from conftest import default_tokenizer, tiny_config


def save_tiny_mlm(folder: Path, seed: int = 0) -> Path:
    """A random tiny BertForMaskedLM with the default WordPiece tokenizer, saved to `folder`."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    model = BertForMaskedLM(tiny_config("bert"))
    model.save_pretrained(folder)
    default_tokenizer().save_pretrained(folder)
    return folder


def decode_fetched(client, capture_id: str):
    """Fetch a capture's meta and every buffer over HTTP, decoded as a page would see them."""
    from attnlens.views.payload import decode_payload

    meta = client.get(f"/api/captures/{capture_id}/meta").json()
    buffers = {}
    for name in meta["buffers"]:
        r = client.get(f"/api/captures/{capture_id}/{name}")
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"] == "application/octet-stream"
        buffers[name] = r.content
    return meta, decode_payload(meta, buffers)
