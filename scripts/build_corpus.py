"""Regenerate the shipped default corpus (src/attnlens/data/*.txt.gz) from installed Debian packages.

    apt-get install -y python3.11-doc jargon-text debian-reference-en
    PYTHONPATH=src python scripts/build_corpus.py [--out src/attnlens/data] [--count-tokens]

HTML pages become plain prose with the stdlib html.parser: code blocks, tables, navigation,
tables of contents, signatures and headings are dropped; paragraphs are split into sentences
(attnlens.corpus.sentences) and odd sentences (code-like, too short, unterminated) are dropped.
One document = one page section (python docs: page intro and each top-level section;
debian reference: each section and subsection; jargon: one entry). Output is the BERT
pretraining format (one sentence per line, blank line between documents), gzip with a fixed
mtime, so a rebuild from the same package versions is byte-identical.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from attnlens.corpus.sentences import split_sentences  # noqa: E402

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
DEBIAN_REFERENCE = Path("/usr/share/doc/debian-reference-en/docs")

# Python doc folders of prose; c-api, distutils and the generated indexes are reference
# listings rather than prose and are left out (also keeps the corpus near 2M tokens).
PYTHON_DOC_DIRS = ("tutorial", "howto", "faq", "reference", "library", "using", "extending",
                   "installing", "whatsnew")
PYTHON_DOC_SKIP = re.compile(r"(^|/)(genindex|py-modindex|search|contents|index|changelog|license|copyright)"
                             r"[^/]*\.html$")

ADMONITIONS = {"note", "tip", "caution", "warning", "important"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {"p", "li", "dd", "dt", "div", "ul", "ol", "dl", "section", "blockquote", "br", "td", "th", "tr"}
VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class ProseExtractor(HTMLParser):
    """Collect prose paragraphs from an HTML page, grouped into documents at headings.

    ``split_levels``: heading levels that start a new document; ``main_class``: only text
    inside a ``div`` with this class is read (None: the whole body).
    """

    def __init__(self, split_levels: set[int], main_class: str | None = None):
        super().__init__(convert_charrefs=True)
        self.split_levels = split_levels
        self.main_class = main_class
        self.main_depth = 0 if main_class else 1  # >0 while inside the main content
        self.skip_tag: str | None = None  # tag whose subtree is being skipped
        self.skip_depth = 0
        self.in_heading = False
        self.documents: list[list[str]] = [[]]  # each a list of paragraphs
        self.buffer: list[str] = []

    def _skips(self, tag: str, attrs: dict[str, str]) -> bool:
        classes = set((attrs.get("class") or "").split())
        if tag in {"pre", "script", "style", "nav", "code-block", "dt", "footer", "head", "math", "svg"}:
            return True
        if tag == "table":  # data tables and navigation; Debian admonitions are tables too
            return (attrs.get("summary") or "").strip().lower() not in ADMONITIONS
        if tag == "div" and classes & {"highlight", "toc", "sphinxsidebar", "related", "footer", "navheader",
                                       "navfooter", "doctest", "literal-block-wrapper", "toctree-wrapper",
                                       "screen", "programlisting", "mediaobject"}:
            return True
        if tag == "p" and "admonition-title" in classes:
            return True
        return False

    def _flush(self) -> None:
        text = " ".join("".join(self.buffer).split())
        self.buffer = []
        if text:
            self.documents[-1].append(text)

    def handle_starttag(self, tag, attrs_list):
        attrs = {k: v or "" for k, v in attrs_list}
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            return
        if self.main_depth == 0:
            if tag == "div" and self.main_class in (attrs.get("class") or "").split():
                self.main_depth = 1
            return
        if tag == "div":
            self.main_depth += 1
        if tag in HEADINGS:
            self._flush()
            self.in_heading = True
            if HEADINGS[tag] in self.split_levels and self.documents[-1]:
                self.documents.append([])
            return
        if self._skips(tag, attrs) and tag not in VOID:
            self._flush()
            self.skip_tag, self.skip_depth = tag, 1
            if tag == "div":
                self.main_depth -= 1
            return
        if tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        if self.main_depth == 0:
            return
        if tag in HEADINGS:
            self.buffer = []
            self.in_heading = False
            return
        if tag in BLOCKS:
            self._flush()
        if tag == "div" and self.main_class is not None:
            self.main_depth -= 1

    def handle_data(self, data):
        if self.skip_tag is None and self.main_depth > 0 and not self.in_heading:
            self.buffer.append(data.replace("¶", ""))

    def result(self) -> list[list[str]]:
        self._flush()
        return [doc for doc in self.documents if doc]


CODE_CHARS = set("{}[]=<>;|\\$#*^~`")
CODE_MARKERS = (">>>", "Traceback (most recent", 'File "', "$ ", "# ", "::", "->", "://", "0x")
TERMINAL = re.compile(r"[.!?][\"'”’)\]]*$")
STARTS = re.compile(r"^[\"'“‘(\[]*[A-Za-z0-9]")
# Boilerplate repeated hundreds of times in the Python docs.
BOILERPLATE = re.compile(r"^(?:(?:New in|Deprecated since|Changed in) version [\d.]+\.$|Availability: |"
                         r"This module does not work or is not available on WebAssembly|See WebAssembly platforms)")
# A paragraph that starts with one of these lowercase words continues text cut by a dropped code block.
CONTINUATIONS = frozenset("and or but which where will would is are was were to the a an in at on as for of then that "
                          "when if so by from with into should can could may must also while because than since "
                          "unless after before it this these".split())
MAX_REPEATS = 3  # an identical sentence is kept at most this many times per source


def keep_sentence(sentence: str) -> bool:
    """True for a sentence of ordinary prose (drops code, fragments, listings and noise)."""
    words = sentence.split()
    if not 4 <= len(words) <= 80 or len(sentence) > 500:
        return False
    if not TERMINAL.search(sentence) or not STARTS.match(sentence):
        return False
    if words[0] in CONTINUATIONS:
        return False
    if BOILERPLATE.match(sentence) or any(marker in sentence for marker in CODE_MARKERS):
        return False
    visible = [c for c in sentence if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.7 * len(visible) or sum(c in CODE_CHARS for c in visible) > 2:
        return False
    if sum(w.isupper() and len(w) > 1 for w in words) > 0.5 * len(words):
        return False  # shouting / acronym lists
    return True


def paragraphs_to_document(paragraphs: list[str]) -> list[str]:
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    return [s for s in sentences if keep_sentence(s)]


def html_documents(path: Path, split_levels: set[int], main_class: str | None) -> list[list[str]]:
    parser = ProseExtractor(split_levels, main_class)
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return [paragraphs_to_document(doc) for doc in parser.result()]


def python_docs() -> list[list[str]]:
    pages = sorted(p for d in PYTHON_DOC_DIRS for p in (PYTHON_DOCS / d).rglob("*.html")
                   if not PYTHON_DOC_SKIP.search(p.relative_to(PYTHON_DOCS).as_posix()))
    return [doc for page in pages for doc in html_documents(page, {1, 2}, "body")]


def debian_reference() -> list[list[str]]:
    pages = sorted(DEBIAN_REFERENCE.glob("ch*.en.html")) + sorted(DEBIAN_REFERENCE.glob("pr*.en.html"))
    return [doc for page in pages for doc in html_documents(page, {1, 2, 3}, None)]


ENTRY = re.compile(r"^   :(.+?):(?:\s|$)")
HEADING = re.compile(r"^[A-Za-z0-9]")  # headings start in column 0; prose is indented by 3 spaces


def _jargon_paragraph(lines: list[str]) -> str:
    text = " ".join(lines).strip()
    text = re.sub(r"^\d+\.\s+", "", text)  # sense numbers: "1. The elementary particle"
    text = re.sub(r"^(?:n|v|vt|vi|adj|adv|interj|excl)\.\s+", "", text)  # part of speech: "v. To crash"
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # etymology note
    text = re.sub(r"^\[[^\]]{1,60}\]\s+(?=[A-Z])", "", text)  # leading usage tag: "[Usenet] ASCII rendition"
    return re.sub(r"[{}]", "", text)  # cross-references: {bogus}


def jargon() -> list[list[str]]:
    """The Jargon File from its plain-text rendering: one document per glossary entry, and one per
    section of the introduction (Part I) and of the appendices (folklore, portrait; no bibliography)."""
    lines = gzip.decompress(JARGON.read_bytes()).decode("utf-8").splitlines()
    documents: list[list[str]] = []  # paragraphs per document
    paragraph: list[str] = []
    reading = False  # inside Part I's chapters, a glossary entry, or an appendix

    def flush() -> None:
        if paragraph and reading and documents:
            documents[-1].append(_jargon_paragraph(paragraph))
        paragraph.clear()

    for line in lines:
        stripped = line.strip()
        if ENTRY.match(line) or HEADING.match(line):  # a glossary entry or a section heading
            flush()
            reading = not stripped.startswith(("Bibliography", "Glossary", "Part II"))
            documents.append([])
        elif not stripped or not line.startswith("   ") or line.startswith("    "):
            flush()  # a blank line, a table row, or an indented example / quote block
        elif reading:
            paragraph.append(stripped)
    flush()
    return [paragraphs_to_document(doc) for doc in documents]


SOURCES = {
    "python-docs": python_docs,
    "jargon": jargon,
    "debian-reference": debian_reference,
}


def cap_repeats(documents: list[list[str]], limit: int = MAX_REPEATS) -> list[list[str]]:
    """Drop the occurrences of a sentence beyond the first ``limit`` (boilerplate), in corpus order."""
    seen: dict[str, int] = {}
    capped = []
    for doc in documents:
        kept = []
        for sentence in doc:
            seen[sentence] = seen.get(sentence, 0) + 1
            if seen[sentence] <= limit:
                kept.append(sentence)
        capped.append(kept)
    return capped


def package_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_documents(path: Path, documents: list[list[str]]) -> None:
    text = "\n\n".join("\n".join(doc) for doc in documents) + "\n"
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(raw.getvalue())


def count_tokens(documents: list[list[str]]) -> int:
    from transformers import AutoTokenizer  # noqa: PLC0415

    from attnlens.capturing import default_model_path  # noqa: PLC0415

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    sentences = [s for doc in documents for s in doc]
    total = 0
    for i in range(0, len(sentences), 4096):
        total += sum(len(ids) for ids in tokenizer(sentences[i:i + 4096], add_special_tokens=False)["input_ids"])
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/attnlens/data")
    parser.add_argument("--count-tokens", action="store_true", help="also count WordPiece tokens (default model)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    packages = {"python-docs": "python3.11-doc", "jargon": "jargon-text", "debian-reference": "debian-reference-en"}
    missing = [pkg for pkg, path in zip(packages.values(), (PYTHON_DOCS, JARGON, DEBIAN_REFERENCE))
               if not path.exists()]
    if missing:
        sys.exit(f"error: Debian package(s) not installed: {' '.join(missing)} "
                 f"(apt-get install -y {' '.join(packages.values())})")
    for name, build in SOURCES.items():
        documents = [doc for doc in cap_repeats(build()) if len(doc) >= 2]
        target = args.out / f"{name}.txt.gz"
        write_documents(target, documents)
        sentences = sum(len(doc) for doc in documents)
        line = (f"{name}: {len(documents)} documents, {sentences} sentences, "
                f"{target.stat().st_size / 1e6:.2f} MB gz ({packages[name]} {package_version(packages[name])})")
        if args.count_tokens:
            line += f", {count_tokens(documents)} WordPiece tokens"
        print(line, flush=True)


if __name__ == "__main__":
    main()
