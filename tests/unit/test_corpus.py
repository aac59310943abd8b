"""The shipped corpus, the documents-format reader, sentence pairs, the sentence splitter and the build script."""

from __future__ import annotations

import gzip
import importlib.util
import random
from pathlib import Path

import pytest

from attnlens.corpus import (
    DATASETS,
    SOURCES,
    is_heldout,
    load_documents,
    nsp_pairs,
    read_documents,
    resolve_corpus,
    sentence_pairs,
)
from attnlens.corpus.sentences import split_sentences
from attnlens.errors import AttnlensError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "attnlens" / "data"

DOCS = [["A one.", "A two.", "A three."], ["B one.", "B two."], ["C one.", "C two.", "C three.", "C four."]]


def _build_module():
    spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "scripts" / "build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sentence_index(documents):
    """sentence -> set of (document, position) where it occurs."""
    index: dict[str, set[tuple[int, int]]] = {}
    for d, doc in enumerate(documents):
        for i, sentence in enumerate(doc):
            index.setdefault(sentence, set()).add((d, i))
    return index


# ---- the shipped corpus ----------------------------------------------------------------------

@pytest.mark.parametrize("name, min_docs, min_sentences", [
    ("python-docs", 1500, 45000), ("jargon", 1500, 8000), ("debian-reference", 300, 2500)])
def test_shipped_sources_have_documents_of_prose(name, min_docs, min_sentences):
    docs = load_documents(name)
    assert len(docs) >= min_docs
    assert sum(len(d) for d in docs) >= min_sentences
    assert all(len(d) >= 2 for d in docs)  # every document yields at least one consecutive pair
    for doc in docs[::50]:
        for sentence in doc:
            assert sentence == sentence.strip() and sentence
            assert "\n" not in sentence and "\t" not in sentence and ">>>" not in sentence


def test_default_is_every_source_in_order_and_files_are_small():
    assert set(SOURCES) < set(DATASETS) and "default" in DATASETS
    default = load_documents("default")
    assert default == [d for s in SOURCES for d in load_documents(s)]
    shipped = sum((DATA / f"{s}.txt.gz").stat().st_size for s in SOURCES)
    assert shipped < 4_000_000
    notice = (DATA / "NOTICE").read_text(encoding="utf-8")
    for source in ("Python Software Foundation", "public domain", "GPL", "Osamu Aoki", "Jargon File"):
        assert source in notice
    assert (DATA / "GPL-2").is_file()


def test_default_corpus_has_about_two_million_wordpiece_tokens(default_model):
    """Every 20th sentence tokenized by the default model's tokenizer, scaled up."""
    sentences = [s for d in load_documents() for s in d]
    sample = sentences[::20]
    pieces = sum(len(ids) for ids in default_model.tokenizer(sample, add_special_tokens=False)["input_ids"])
    estimate = pieces * len(sentences) / len(sample)
    assert 1.4e6 < estimate < 2.1e6


def test_load_documents_is_deterministic_and_returns_fresh_lists():
    first = load_documents("jargon")
    first[0].append("mutated")
    second = load_documents("jargon")
    assert second[0][-1] != "mutated"
    assert second == load_documents("jargon")


def test_train_and_heldout_split_documents_disjointly():
    docs = load_documents("default")
    train, heldout = load_documents("default", "train"), load_documents("default", "heldout")
    assert len(train) + len(heldout) == len(docs)
    train_keys = {tuple(d) for d in train}
    assert not train_keys & {tuple(d) for d in heldout}
    assert 0.03 < len(heldout) / len(docs) < 0.08
    # the split depends only on a document's text, not on its position
    shuffled = list(docs)
    random.Random(1).shuffle(shuffled)
    assert {tuple(d) for d in shuffled if is_heldout(d)} == {tuple(d) for d in heldout}


def test_unknown_dataset_or_split_is_a_clear_error():
    with pytest.raises(AttnlensError, match="unknown dataset 'wiki'.*python-docs"):
        load_documents("wiki")
    with pytest.raises(AttnlensError, match="unknown split 'test'"):
        load_documents("jargon", "test")


# ---- sentence pairs --------------------------------------------------------------------------

def test_sentence_pairs_are_every_consecutive_pair_in_order():
    assert sentence_pairs(DOCS) == [("A one.", "A two."), ("A two.", "A three."), ("B one.", "B two."),
                                    ("C one.", "C two."), ("C two.", "C three."), ("C three.", "C four.")]


def test_sampled_pairs_are_consecutive_within_a_document_and_deterministic():
    docs = load_documents("debian-reference")
    index = _sentence_index(docs)
    pairs = sentence_pairs(docs, seed=3, limit=500)
    assert len(pairs) == 500 and len(set(pairs)) > 490
    for a, b in pairs:
        assert any((d, i + 1) in index[b] for d, i in index[a])
    assert pairs == sentence_pairs(docs, seed=3, limit=500)
    assert pairs != sentence_pairs(docs, seed=4, limit=500)
    assert len(sentence_pairs(DOCS, limit=100)) == 6  # a limit above the total gives every pair


def test_next_fraction_replaces_that_share_of_b_with_another_documents_sentence():
    docs = load_documents("jargon")[:300]
    index = _sentence_index(docs)
    triples = nsp_pairs(docs, seed=0, limit=400, next_fraction=0.5)
    assert sum(not is_next for _, _, is_next in triples) == 200
    for a, b, is_next in triples:
        a_docs = {d for d, _ in index[a]}
        if is_next:
            assert any((d, i + 1) in index[b] for d, i in index[a])
        else:
            assert {d for d, _ in index[b]} - a_docs  # B comes from another document
    assert [(a, b) for a, b, _ in triples] == sentence_pairs(docs, seed=0, limit=400, next_fraction=0.5)
    assert all(is_next for *_, is_next in nsp_pairs(docs, limit=50, next_fraction=1.0))
    assert not any(is_next for *_, is_next in nsp_pairs(docs, limit=50, next_fraction=0.0))


@pytest.mark.parametrize("documents, kwargs, message", [
    ([["Only one sentence."], ["Another."]], {}, "fewer than 2 sentences"),
    ([["One.", "Two.", "Three."]], {"next_fraction": 0.5}, "at least 2 documents"),
    (DOCS, {"next_fraction": 1.5}, "between 0 and 1"),
    (DOCS, {"limit": 0}, "positive integer"),
])
def test_bad_pair_requests_are_clear_errors(documents, kwargs, message):
    with pytest.raises(AttnlensError, match=message):
        sentence_pairs(documents, **kwargs)


# ---- reading users' files --------------------------------------------------------------------

def test_read_documents_from_txt_gz_and_folders(tmp_path):
    (tmp_path / "b.txt").write_text("B one.\r\nB two.\r\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n\nA one.\n  A two.  \n\n\n\nC one.\nC two.\n")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    assert read_documents(tmp_path / "b.txt") == [["B one.", "B two."]]
    assert read_documents(tmp_path) == [["A one.", "A two."], ["C one.", "C two."], ["B one.", "B two."]]


@pytest.mark.parametrize("content, message", [
    (b"", "empty corpus"),
    (b"\n\n  \n", "empty corpus"),
    (b"Good line.\nBad \xff byte.\n", r"bad\.txt: not UTF-8 text \(undecodable byte 0xff at offset 15\)"),
    (b"PK\x03\x04\x00\x00binary", r"bad\.txt: looks like a binary file \(NUL byte at offset 4\)"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(AttnlensError, match=message):
        read_documents(tmp_path / "bad.txt")


def test_bad_paths_and_gzip_are_clear_errors(tmp_path):
    with pytest.raises(AttnlensError, match="corpus path not found"):
        read_documents(tmp_path / "missing.txt")
    with pytest.raises(AttnlensError, match="no .txt or .txt.gz files"):
        read_documents(tmp_path)
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(AttnlensError, match="broken.txt.gz: not a valid gzip file"):
        read_documents(tmp_path / "broken.txt.gz")
    (tmp_path / "latin.txt.gz").write_bytes(gzip.compress("caf\xe9 ok.\n".encode("latin-1")))
    with pytest.raises(AttnlensError, match=r"latin.txt.gz \(after gunzip\): not UTF-8.*offset 3"):
        read_documents(tmp_path / "latin.txt.gz")


# ---- resolve_corpus ---------------------------------------------------------------------------

def test_resolve_corpus_accepts_names_paths_and_iterables(tmp_path):
    pairs = resolve_corpus("jargon", limit=20, seed=1)
    assert len(pairs) == 20 and all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)
    assert pairs == sentence_pairs(load_documents("jargon"), seed=1, limit=20)
    assert len(resolve_corpus("debian-reference", split="heldout")) < len(resolve_corpus("debian-reference"))

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("First A.\tFirst B.\nLone sentence.\n\nTrailing tab.\t\n", encoding="utf-8")
    assert resolve_corpus(tsv) == [("First A.", "First B."), ("Lone sentence.", None), ("Trailing tab.", None)]

    docs = tmp_path / "docs.txt"
    docs.write_text("A one.\nA two.\n\nB one.\nB two.\nB three.\n", encoding="utf-8")
    assert resolve_corpus(str(docs)) == [("A one.", "A two."), ("B one.", "B two."), ("B two.", "B three.")]

    singles = tmp_path / "singles.txt"
    singles.write_text("Only one.\n\nAnother one.\n", encoding="utf-8")
    assert resolve_corpus(singles) == [("Only one.", None), ("Another one.", None)]

    assert resolve_corpus(["Just A.", ("X.", "Y."), ["P.", None], ("Q.",)]) == [
        ("Just A.", None), ("X.", "Y."), ("P.", None), ("Q.", None)]
    assert resolve_corpus(iter([("X.", "Y.")])) == [("X.", "Y.")]


@pytest.mark.parametrize("corpus, message", [
    ("no-such-dataset", "neither a dataset"),
    ([], "empty corpus"),
    ([("A.", "B.", "C.")], "corpus item 0 is not a sentence"),
    (["fine", 3], "corpus item 1"),
    (["  "], "corpus item 0 .*is empty"),
    (42, "must be a dataset name"),
])
def test_resolve_corpus_bad_input_is_a_clear_error(corpus, message):
    with pytest.raises(AttnlensError, match=message):
        resolve_corpus(corpus)


def test_resolve_corpus_empty_tsv_is_a_clear_error(tmp_path):
    (tmp_path / "empty.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(AttnlensError, match="empty corpus"):
        resolve_corpus(tmp_path / "empty.tsv")


# ---- sentence splitter ------------------------------------------------------------------------

@pytest.mark.parametrize("paragraph, sentences", [
    ("Use a list, e.g. the one above. Then stop.", ["Use a list, e.g. the one above.", "Then stop."]),
    ("Pass an object, i.e. Python code. It runs.", ["Pass an object, i.e. Python code.", "It runs."]),
    ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
    ("New in version 3.2. The default changed.", ["New in version 3.2.", "The default changed."]),
    ("Python 3.11.2 is here. It is fast.", ["Python 3.11.2 is here.", "It is fast."]),
    ("The steps are: 1. Permute it, 2. If unsorted, stop. Done.",
     ["The steps are: 1. Permute it, 2. If unsorted, stop.", "Done."]),
    ("Written by J. Random Hacker of the U.S. Army. Really?",
     ["Written by J. Random Hacker of the U.S. Army.", "Really?"]),
    ("Is it? Yes! Wait...  Next one.", ["Is it?", "Yes!", "Wait...", "Next one."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("(See above.) And below.", ["(See above.)", "And below."]),
    ("Call os.path.join(). It returns a str.", ["Call os.path.join().", "It returns a str."]),
    ("Apples, pears, etc. The list goes on.", ["Apples, pears, etc.", "The list goes on."]),
    ("See Smith et al. for details. Also cf. Jones.", ["See Smith et al. for details.", "Also cf. Jones."]),
    ("Values such as 0.5 and .001 work. So do others", ["Values such as 0.5 and .001 work.", "So do others"]),
    ("lowercase after a period. stays one sentence.", ["lowercase after a period. stays one sentence."]),
    ("  Spaces\n and\tnewlines   collapse.  ", ["Spaces and newlines collapse."]),
    ("", []),
])
def test_split_sentences(paragraph, sentences):
    assert split_sentences(paragraph) == sentences


# ---- the build script -------------------------------------------------------------------------

PAGE = """<html><head><title>t</title><script>var x = 1;</script></head><body>
<div class="related"><p>Navigation: previous page. Next page is here.</p></div>
<div class="body" role="main"><section><h1>Title<a class="headerlink">¶</a></h1>
<p>The first paragraph has two sentences. It mentions <code>len()</code> inline, e.g. here.</p>
<div class="highlight"><pre>def f():\n    return 1. This is code.</pre></div>
<table class="docutils"><tr><td>A table cell is not prose at all.</td></tr></table>
<div class="admonition note"><p class="admonition-title">Note</p><p>An admonition is prose and is kept.</p></div>
<dl><dt>function(signature, is, dropped)</dt><dd><p>The description of the function is kept here.</p></dd></dl>
<section><h2>Second section</h2><p>This starts a new document here. It has two sentences too.</p>
<ul><li>A list item fragment</li><li><p>A list item that is a real sentence.</p></li></ul>
<p>&gt;&gt;&gt; print("a doctest line is dropped.")</p></section></section></div>
<div class="footer"><p>Copyright footer text is dropped here.</p></div></body></html>"""


def test_build_extracts_prose_documents_from_html(tmp_path):
    build = _build_module()
    page = tmp_path / "page.html"
    page.write_text(PAGE, encoding="utf-8")
    assert build.html_documents(page, {1, 2}, "body") == [
        ["The first paragraph has two sentences.", "It mentions len() inline, e.g. here.",
         "An admonition is prose and is kept.", "The description of the function is kept here."],
        ["This starts a new document here.", "It has two sentences too.", "A list item that is a real sentence."],
    ]


@pytest.mark.parametrize("sentence, kept", [
    ("This is an ordinary sentence of prose.", True),
    ("Too short here.", False),
    ("No terminal punctuation in this one", False),
    ("x = {'a': [1, 2]}; y = x[0] # comment.", False),
    ('Traceback (most recent call last): File "x.py", line 1.', False),
    ("Changed in version 3.2.", False),
    ("will compile demo.c and produce an extension module.", False),
    ("args is a tuple containing the arguments to the call.", True),
    ("Changed in version 3.2: Added the timeout parameter.", True),
])
def test_build_keeps_only_prose_sentences(sentence, kept):
    assert _build_module().keep_sentence(sentence) is kept


def test_build_writes_byte_identical_gzip(tmp_path):
    build = _build_module()
    build.write_documents(tmp_path / "one.txt.gz", DOCS)
    build.write_documents(tmp_path / "two.txt.gz", DOCS)
    assert (tmp_path / "one.txt.gz").read_bytes() == (tmp_path / "two.txt.gz").read_bytes()
    assert read_documents(tmp_path / "one.txt.gz") == DOCS


def test_build_caps_repeated_boilerplate_sentences():
    docs = [["Same.", "One."], ["Same.", "Two."], ["Same.", "Same.", "Three."]]
    assert _build_module().cap_repeats(docs, limit=2) == [["Same.", "One."], ["Same.", "Two."], ["Three."]]


DEBIAN_PAGE = """<html><body>
<table summary="Navigation header"><tr><td>Chapter 3. Previous and next links here.</td></tr></table>
<div class="chapter"><div class="titlepage"><h1 class="title">Chapter 3. Booting</h1></div>
<div class="toc"><p>3.1. A table of contents entry is dropped.</p></div>
<div class="section"><div class="titlepage"><h2 class="title">3.1. Overview</h2></div>
<p>The computer boots in stages. Each stage hands over control.</p>
<table border="0" summary="Tip"><tr><td><p>A tip in an admonition table is kept.</p></td></tr></table>
<table class="table" summary="List of boot loaders"
border="1"><tr><td>GRUB is a boot loader in a data table.</td></tr></table>
<pre class="screen">$ sudo update-grub. Output is dropped.</pre>
<div class="section"><div class="titlepage"><h3 class="title">3.1.1. Stage 1</h3></div>
<p>The firmware runs first of all. It loads the boot loader.</p></div></div></div>
<table summary="Navigation footer"><tr><td>Next chapter link text is dropped.</td></tr></table></body></html>"""


def test_build_extracts_debian_reference_sections(tmp_path):
    page = tmp_path / "ch03.en.html"
    page.write_text(DEBIAN_PAGE, encoding="utf-8")
    assert _build_module().html_documents(page, {1, 2, 3}, None) == [
        ["The computer boots in stages.", "Each stage hands over control.", "A tip in an admonition table is kept."],
        ["The firmware runs first of all.", "It loads the boot loader."],
    ]
