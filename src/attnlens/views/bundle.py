"""The views' front-end module (``attnlens.js``), built from its parts in views/static/src/.

The parts are ES modules that import each other by relative path (``./dom.js``), one view
per file around a shell that owns the state. Every host gets a single self-contained module
instead: the parts joined in dependency order (``PARTS``), each part's import lines dropped
and the ``export`` keyword of its declarations moved into one ``export { ... };`` at the end,
so the bundle exports every name any part exports. shell.js's ``export default`` (the
anywidget entry point) stays as written. Built at run time from the packaged parts, so it
cannot go stale; no build step, no network.

Rules for the parts (checked here): imports are one line each, ``import { a, b } from "./x.js";``
from an earlier part, no renaming; exports are ``export function|async function|class|const|let``
declarations (plus the one ``export default``); no two parts declare the same top-level name.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

BUNDLE_NAME = "attnlens.js"
PARTS = ("data.js", "dom.js", "head.js", "model.js", "neuron.js", "shell.js")  # each imports only earlier ones

_IMPORT = re.compile(r'^import \{([\w$, ]+)\} from "\./([\w-]+\.js)";[ \t]*$')
_EXPORT = re.compile(r"^export (?:async function|function|class|const|let) ([\w$]+)")
_TOP_LEVEL = re.compile(r"^(?:export )?(?:async function|function|class|const|let|var) ([\w$]+)", re.M)


class BundleError(ValueError):
    """A part of the front end breaks the rules above (a packaging bug, not a user error)."""


def part_text(name: str) -> str:
    """The source of one part (views/static/src/<name>)."""
    return resources.files("attnlens.views").joinpath("static", "src", name).read_text(encoding="utf-8")


def join_parts(texts: dict[str, str]) -> str:
    """One ES module from {part name: source}, joined in the order given."""
    exported: dict[str, list[str]] = {}  # part -> names it exports
    declared: dict[str, str] = {}  # top-level name -> part declaring it
    chunks = ["// attnlens front end: views/static/src/*.js joined by attnlens/views/bundle.py (edit those files).\n"]
    defaults = 0
    for part, text in texts.items():
        names: list[str] = []
        body: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{part}:{number}"
            if line.startswith("import"):
                m = _IMPORT.match(line)
                if not m:
                    raise BundleError(f"{where}: write imports as one line: import {{ a, b }} from \"./part.js\";")
                source = m.group(2)
                if source not in exported:
                    raise BundleError(f"{where}: {source} is not an earlier part")
                missing = {n.strip() for n in m.group(1).split(",") if n.strip()} - set(exported[source])
                if missing:
                    raise BundleError(f"{where}: {source} does not export {', '.join(sorted(missing))}")
                continue  # the names are in scope already: same module
            if line.startswith("export default"):
                defaults += 1
            elif line.startswith("export"):
                m = _EXPORT.match(line)
                if not m:
                    raise BundleError(f"{where}: export declarations only (export function|class|const|let name)")
                names.append(m.group(1))
                line = line[len("export "):]
            body.append(line)
        for name in _TOP_LEVEL.findall(text):
            if name in declared:
                raise BundleError(f"{part} and {declared[name]} both declare {name}")
            declared[name] = part
        exported[part] = names
        chunks.append(f"\n// ==== {part}\n\n" + "\n".join(body).strip("\n") + "\n")
    if defaults != 1:
        raise BundleError(f"the parts have {defaults} `export default`, not 1")
    every = [name for names in exported.values() for name in names]
    chunks.append(f"\nexport {{ {', '.join(every)} }};\n")
    return "".join(chunks)


@lru_cache(maxsize=None)
def bundle_text() -> str:
    """The front-end module every host loads: the packaged parts joined (see the module docstring)."""
    return join_parts({name: part_text(name) for name in PARTS})
