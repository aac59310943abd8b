"""Pure functions over attention arrays: pattern scores, corpus statistics, labels, explanations."""

from .explain import Explanation, explain_captures
from .labels import HeadLabel, label_heads
from .layout import Layout, layout_of, word_level
from .scores import DEFINITIONS, LABEL_PATTERNS, PATTERN_NAMES, PATTERNS, get_definitions, get_pattern, pattern_targets
from .stats import PatternStats

__all__ = ["Explanation", "explain_captures", "HeadLabel", "label_heads", "Layout", "layout_of", "word_level",
           "DEFINITIONS", "LABEL_PATTERNS", "PATTERN_NAMES", "PATTERNS", "get_definitions", "get_pattern",
           "pattern_targets", "PatternStats"]
