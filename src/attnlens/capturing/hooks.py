"""One hook mechanism: forward hooks on unmodified modules, found by name, always removed.

Recording (recorders.py, families/), causal interventions (analysis/interventions.py) and every
later patch or ablation register their functions through :func:`hooks`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

from ..errors import AttnlensError
from .arch import find_modules

# fn(module, inputs, output) -> a replacement output, or None to leave it unchanged
ForwardHook = Callable[[object, tuple, object], object]


@contextmanager
def hooks(model, entries: Iterable[tuple[str, ForwardHook]]):
    """Register `fn` as a forward hook on every submodule of `model` whose name ends with `pattern`.

    entries: (pattern, fn) pairs (patterns are ArchSpec regexes). A pattern that matches no
    module is an error. The hooks are removed when the block ends, whatever happens in it.
    """
    handles = []
    try:
        for pattern, fn in entries:
            modules = find_modules(model, pattern)
            if not modules:
                raise AttnlensError(f"no module matching {pattern!r} in this {type(model).__name__}")
            handles += [module.register_forward_hook(fn) for _name, module in modules]
        yield
    finally:
        for handle in handles:
            handle.remove()
