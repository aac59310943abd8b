"""Views of a Capture: one payload serializer, a standalone HTML page, a Jupyter widget and text renderings."""

from .html import to_html
from .payload import build_payload, decode_payload

__all__ = ["to_html", "build_payload", "decode_payload"]
