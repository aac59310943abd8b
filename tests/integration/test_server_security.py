"""The server's origin is its only boundary: Host names (DNS rebinding), cross-origin requests,
security headers on every response, sandboxed result files, and result paths that cannot be
read (404, never 500). Also `attnlens serve`'s own Host check on a real socket."""

from __future__ import annotations

import http.client
import os
import re

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from attnlens.server import create_app
from conftest import tiny_model
from server_helpers import running_server, save_tiny_mlm

EVIL_HTML = "<!DOCTYPE html><script>fetch('/api/capture', {method: 'POST', body: '{}'})</script>"
EVIL_SVG = "<svg xmlns='http://www.w3.org/2000/svg'><script>fetch('/api/models')</script></svg>"


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", seed=2)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("security-results")
    folder = root / "atlas-sent"
    folder.mkdir()
    (folder / "scores.json").write_text("{}")
    (folder / "report.html").write_text(EVIL_HTML)
    (folder / "labels.svg").write_text(EVIL_SVG)
    (folder / "dir.json").mkdir()  # not a file
    (folder / "dangling.json").symlink_to(folder / "missing.json")
    os.mkfifo(folder / "pipe.json")  # a file name that is not a regular file
    return root


@pytest.fixture(scope="module")
def client(tiny_bert, results_dir):
    with TestClient(create_app({"tiny": tiny_bert}, results_dir=results_dir)) as c:
        yield c


def one_line_detail(r) -> str:
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    return detail


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "", "[::1", "a b",
                                  "localhost.", "x" * 400])
def test_a_foreign_host_is_refused(client, host):
    r = client.post("/api/capture", json={"text_a": "x"}, headers={"Host": host})
    assert r.status_code == 400
    assert "host" in one_line_detail(r).lower() or "Host" in one_line_detail(r)
    assert client.get("/api/models", headers={"Host": host}).status_code == 400
    assert client.get("/", headers={"Host": host}).status_code == 400


@pytest.mark.parametrize("host", ["testserver", "127.0.0.1:8000", "localhost", "LOCALHOST:1234", "[::1]:9"])
def test_default_hosts_are_answered(client, host):
    assert client.post("/api/capture", json={"text_a": "x"}, headers={"Host": host}).status_code == 200


def test_explicit_allowed_hosts(tiny_bert):
    app = create_app({"tiny": tiny_bert}, allowed_hosts=["127.0.0.1:8765", "mybox.lan"])
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/models").status_code == 200
        assert c.get("/api/models", headers={"Host": "mybox.lan:5"}).status_code == 200
        for host in ("127.0.0.1:8766", "127.0.0.1", "testserver", "localhost:8765"):
            assert c.get("/api/models", headers={"Host": host}).status_code == 400, host
    with pytest.raises(ValueError, match="not a host name"):
        create_app({"tiny": tiny_bert}, allowed_hosts=["bad host"])


def test_host_parsing_and_served_hosts():
    from attnlens.server.security import HostPolicy, parse_host, served_hosts

    assert parse_host("LocalHost:80") == ("localhost", 80)
    assert parse_host("[::1]:8000") == ("[::1]", 8000)
    assert parse_host("::1") == ("[::1]", None)
    for bad in ("", "a b", "x:y", "x:99999", "[::1", "evil.example:80:80", "h\u00e9.example", None):
        assert parse_host(bad) is None, bad
    hosts = served_hosts("127.0.0.1", 8123, ["mybox.lan", "proxy.lan:443"])
    policy = HostPolicy(hosts)
    assert policy.allows("127.0.0.1:8123") and policy.allows("localhost:8123") and policy.allows("[::1]:8123")
    assert policy.allows("mybox.lan:8123") and policy.allows("proxy.lan:443")
    assert not policy.allows("mybox.lan:80") and not policy.allows("mybox.lan") and not policy.allows("127.0.0.1:8124")
    assert HostPolicy(served_hosts("192.168.1.4", 80, [])).allows("192.168.1.4")
    assert not HostPolicy(served_hosts("0.0.0.0", 80, [])).allows("0.0.0.0")
    with pytest.raises(ValueError, match="--allow-host"):
        served_hosts("127.0.0.1", 80, ["bad name!"])


def test_cross_origin_state_changes_are_refused(client):
    body = {"text_a": "x"}
    for origin in ("http://evil.example", "null", "http://testserver.evil.example", "http://localhost", "file://"):
        r = client.post("/api/capture", json=body, headers={"Origin": origin})
        assert r.status_code == 403, origin
        assert "cross-origin" in one_line_detail(r)
    r = client.post("/api/compare", json={"left": body, "right": body}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    # the page's own requests: same origin, or no Origin at all (curl, scripts)
    assert client.post("/api/capture", json=body, headers={"Origin": "http://testserver"}).status_code == 200
    assert client.post("/api/capture", json=body).status_code == 200
    assert client.post("/api/capture", json=body, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    # reading is not a state change (and the browser's same-origin policy keeps the answer from the other site)
    assert client.get("/api/models", headers={"Origin": "http://evil.example"}).status_code == 200


def assert_secured(r, where):
    assert r.headers.get("x-content-type-options") == "nosniff", where
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (where, csp)
    assert r.headers.get("x-frame-options") == "DENY", where
    return csp


def test_every_response_has_the_security_headers(client):
    cid = client.post("/api/capture", json={"text_a": "hello there"}).json()["id"]
    for method, path, status in [
        ("GET", "/", 200), ("GET", "/api/models", 200), ("GET", "/static/app.js", 200),
        ("GET", "/static/views/attnlens.js", 200), ("GET", "/static/app.css", 200), ("GET", "/openapi.json", 200),
        ("GET", "/docs", 200), ("GET", "/favicon.ico", 200), ("GET", f"/api/captures/{cid}/queries/0", 200),
        ("GET", "/api/captures/nope/meta", 404), ("GET", "/nowhere", 404), ("POST", "/api/capture", 422),
        ("GET", "/results/atlas-sent/report.html", 200), ("GET", "/results/atlas-sent/nothing.json", 404),
        ("DELETE", "/api/models", 405),
    ]:
        r = client.request(method, path)
        assert r.status_code == status, (path, r.status_code)
        assert_secured(r, path)
    assert_secured(client.get("/", headers={"Host": "evil.example"}), "bad host")
    assert_secured(client.post("/api/capture", json={}, headers={"Origin": "http://evil.example"}), "bad origin")
    too_big = client.post("/api/capture", content=b"x" * 70000, headers={"content-type": "application/json"})
    assert too_big.status_code == 413
    assert_secured(too_big, "413")
    page = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in page and "script-src 'self';" in page


def test_docs_have_a_policy_that_allows_only_their_own_script(client):
    r = client.get("/docs")
    csp = assert_secured(r, "/docs")
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'sha256-" in script_src
    import base64
    import hashlib

    inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    assert inline
    for script in inline:
        assert "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'" in script_src


def test_result_files_are_sandboxed(client):
    for path, kind in (("atlas-sent/report.html", "text/html"), ("atlas-sent/labels.svg", "image/svg+xml"),
                       ("atlas-sent/scores.json", "application/json")):
        r = client.get(f"/results/{path}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        csp = assert_secured(r, path)
        directives = [d.strip() for d in csp.split(";")]
        assert directives[0].startswith("sandbox") and "allow-same-origin" not in directives[0], csp
        assert "allow-forms" not in directives[0] and "allow-popups" not in directives[0]
        connect = next(d for d in directives if d.startswith("connect-src"))
        assert "'self'" not in connect and "http" not in connect


def test_results_listing_has_no_absolute_path(client, results_dir):
    r = client.get("/api/results")
    assert r.json()["root"] == results_dir.name
    assert str(results_dir) not in r.text and str(results_dir.parent) not in r.text


@pytest.mark.parametrize("path", [
    "a" * 300 + ".json", "atlas-sent/" + "b" * 300 + ".json", "c" * 5000 + ".html",
    "/".join(["d" * 250] * 20) + ".json", "atlas-sent/dir.json", "atlas-sent/dangling.json", "atlas-sent/pipe.json",
    "%FF.json", "atlas-sent/%00.json", "atlas-sent/report.html/x.json",
])
def test_unreadable_result_paths_are_404(client, path):
    r = client.get(f"/results/{path}")
    assert r.status_code == 404, (path[:50], r.status_code)
    assert one_line_detail(r) == "no such report file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_404(client, results_dir):
    locked = results_dir / "atlas-sent" / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    try:
        assert client.get("/results/atlas-sent/locked.json").status_code == 404
    finally:
        locked.chmod(0o600)


def test_serve_answers_only_its_own_hosts(tmp_path):
    """A real `attnlens serve --port 0 --allow-host`: the Host names it answers include the port it bound."""
    mlm = save_tiny_mlm(tmp_path / "tiny-mlm")
    args = ["--model", str(mlm), "--allow-host", "mybox.test", "--allow-host", "proxy.test:8443", "--threads", "1"]
    with running_server(args, cwd=tmp_path) as url:
        port = int(re.search(r":(\d+)/$", url).group(1))

        def request(host, method="GET", path="/api/models", body=None, headers=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            data = body.encode() if body else b""
            if body is not None:
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data or None)
            r = conn.getresponse()
            out = r.status, r.read().decode(), dict(r.getheaders())
            conn.close()
            return out

        # the curl: a foreign Host reaching the API is refused before any work
        status, text, headers = request("evil.example", "POST", "/api/capture", '{"text_a":"x"}')
        assert status == 400 and "evil.example" in text and headers["x-content-type-options"] == "nosniff"
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"mybox.test:{port}", "proxy.test:8443"):
            assert request(host)[0] == 200, host
        for host in (f"127.0.0.1:{port + 1}", "127.0.0.1", "mybox.test", f"evil.example:{port}", f"proxy.test:{port}"):
            assert request(host)[0] == 400, host
        status, text, _ = request(f"127.0.0.1:{port}", "POST", "/api/capture", '{"text_a":"x"}',
                                  {"Origin": "http://evil.example"})
        assert status == 403
        assert request(f"127.0.0.1:{port}", "POST", "/api/capture", '{"text_a":"x"}',
                       {"Origin": f"http://127.0.0.1:{port}"})[0] == 200


def test_serve_refuses_a_bad_allow_host():
    from typer.testing import CliRunner

    from attnlens.cli import commands  # noqa: F401  (registers the commands)
    from attnlens.cli.app import app

    r = CliRunner().invoke(app, ["serve", "--port", "0", "--allow-host", "not a name"])
    assert r.exit_code == 2 and "--allow-host" in r.output and "Traceback" not in r.output
