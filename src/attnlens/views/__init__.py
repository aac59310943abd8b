"""Views of a Capture: one payload serializer, a standalone HTML page, a Jupyter widget and text renderings."""

from ..capturing import register_viewer
from .html import to_html
from .payload import build_payload, decode_payload


def _widget(name: str):
    def show(cap, **options):
        from . import widget  # noqa: PLC0415  (anywidget is optional: imported when a notebook view is asked for)

        return getattr(widget, f"{name}_view")(cap, **options)
    return show


for _name in ("head", "model", "neuron"):
    register_viewer(_name, _widget(_name))

__all__ = ["to_html", "build_payload", "decode_payload"]
