"""Jupyter widgets (anywidget) showing the views of a Capture.

The widget loads the same ES module as the standalone page (attnlens.js, see bundle.py); the
payload travels as binary traits: ``meta`` (JSON text), ``buffers`` ({name: bytes},
which ipywidgets sends as binary messages and the module receives as DataViews) and
``options`` (JSON text: which views, start layer/head/token).
"""

from __future__ import annotations

import json

from ..capturing import Capture
from ..errors import AttnlensError
from .html import checked_payload, static_text

try:  # anywidget is an optional dependency (the `jupyter` extra)
    import anywidget
    import traitlets
except ImportError:  # pragma: no cover - exercised only without the extra
    anywidget = None


def _widget_class():
    if anywidget is None:
        raise AttnlensError("Jupyter views need anywidget: pip install 'attnlens[jupyter]'")
    return AttnlensWidget


if anywidget is not None:

    class AttnlensWidget(anywidget.AnyWidget):
        """One capture's views in a notebook cell."""

        _esm = static_text("attnlens.js")
        _css = static_text("attnlens.css")
        meta = traitlets.Unicode("{}").tag(sync=True)
        buffers = traitlets.Dict().tag(sync=True)
        options = traitlets.Unicode("{}").tag(sync=True)


def make_widget(cap: Capture, views, *, layer: int | None = None, head: int | None = None,
                query: int | None = None, theme: str | None = None):
    """A widget showing `views` (first one shown first) of `cap`."""
    cls = _widget_class()
    meta, buffers, options = checked_payload(cap, views, layer, head, query, theme)
    return cls(meta=json.dumps(meta), buffers=buffers, options=json.dumps(options))


def head_view(cap: Capture, *, layer: int | None = None, theme: str | None = None):
    """Head view widget (tokens in two columns, a line per head and weight)."""
    return make_widget(cap, ["head", "model", "neuron"], layer=layer, theme=theme)


def model_view(cap: Capture, *, theme: str | None = None):
    """Model view widget (every layer x head as a heatmap thumbnail; click one to open it)."""
    return make_widget(cap, ["model", "head", "neuron"], theme=theme)


def neuron_view(cap: Capture, layer: int = 0, head: int = 0, *, query: int | None = None,
                theme: str | None = None):
    """Attention-detail (neuron) view widget of one layer/head: q, k, q x k, q.k, softmax."""
    return make_widget(cap, ["neuron", "head", "model"], layer=layer, head=head, query=query, theme=theme)
