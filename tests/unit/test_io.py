"""attnlens.io: atomic writes (no temporary file left, never a half-written file) and the page shell."""

from __future__ import annotations

import html.parser
import os

import pytest

from attnlens.io import PAGE_CSP, atomic_open, atomic_write_bytes, atomic_write_text, html_page


def test_atomic_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    assert atomic_write_text(path, "first\n") == path
    atomic_write_text(path, "second, ünïcode\n")
    assert path.read_text(encoding="utf-8") == "second, ünïcode\n"
    atomic_write_bytes(tmp_path / "out.bin", b"\x00\x01\xff")
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01\xff"
    with atomic_open(tmp_path / "rows.csv", "w", newline="") as fh:
        fh.write("a,b\r\n")
    assert (tmp_path / "rows.csv").read_bytes() == b"a,b\r\n"  # newline="" writes what it is given
    atomic_write_text(tmp_path / "synced.json", "{}", fsync=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "out.txt", "rows.csv", "synced.json"]


def test_atomic_write_follows_the_umask_like_a_plain_open(tmp_path):
    atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_a_writer_that_raises_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("old contents")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(path, "w") as fh:
            fh.write("half of the new")
            fh.flush()
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
    fresh = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(fresh, "wb") as fh:
            fh.write(b"partial")
            raise KeyboardInterrupt
    assert not fresh.exists() and [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_the_temporary_is_in_the_target_folder_and_hidden(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append((src, dst)), real_replace(src, dst)))
    atomic_write_text(tmp_path / "a.txt", "x")
    (src, dst), = seen
    assert os.path.dirname(src) == str(tmp_path) and os.path.basename(src).startswith(".a.txt.")
    assert dst == tmp_path / "a.txt"


def test_a_failed_replace_removes_the_temporary(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "folder", "not a folder")  # the target is a directory
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


class _Parsed(html.parser.HTMLParser):
    """Tags, the title text and the meta http-equiv values of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.title, self.csp, self._in_title = [], "", None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = attrs["content"]
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def test_the_page_shell_escapes_the_title_and_forbids_the_network():
    title = "</title><script>alert('x')</script> & \"q\""
    page = html_page(title, "<p>body</p>", css="p{color:red}")
    assert page.lower().startswith("<!doctype html>") and "<meta charset=\"utf-8\">" in page
    assert "<script" not in page and "</title><script>" not in page
    parsed = _Parsed()
    parsed.feed(page)
    assert parsed.title == title  # shown as text, exactly
    assert "script" not in parsed.tags and parsed.tags.count("title") == 1
    assert parsed.csp == PAGE_CSP == "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
    assert "p{color:red}" in page and "<p>body</p>" in page
    assert "http://" not in page and "https://" not in page
    with pytest.raises(ValueError, match="css"):
        html_page("t", "", css="</style><script>alert(1)</script>")


def test_the_emergence_page_uses_the_shell():
    from attnlens.pretraining.emergence import Emergence, render_html

    result = Emergence("<img src=x onerror=alert(1)>", steps=[10], minutes=[0.5], best={"cls<b>": [0.5]},
                       best_head={"cls<b>": [[0, 1]]}, chance={"cls<b>": 0.1}, inputs=3)
    page = render_html(result, b"\x89PNG")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "cls<b>" not in page and "cls&lt;b&gt;" in page
    parsed = _Parsed()
    parsed.feed(page)
    assert parsed.csp == PAGE_CSP and parsed.title == "attnlens emergence"


def test_the_api_docs_fallback_page_uses_the_shell(monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import attnlens.server.app as server_app
    from conftest import tiny_model

    monkeypatch.setattr(server_app, "_docs_assets", lambda: None)  # as without fastapi-offline
    with TestClient(server_app.create_app({"tiny": tiny_model("bert")})) as client:
        page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parsed = _Parsed()
    parsed.feed(page.text)
    assert parsed.title == "attnlens API" and parsed.csp == PAGE_CSP
    assert "fastapi-offline" in page.text and "href='/openapi.json'" in page.text
