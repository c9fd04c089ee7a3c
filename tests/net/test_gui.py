"""The dashboard served by a real daemon on 127.0.0.1 (issue 18, point 2): nobody but the person at this
device gets in. Requests without the secret or a session, with a forged Host (DNS rebinding), from another
origin, or changing something without the CSRF token are refused and change nothing; the one-time login
link signs a browser in once; prompts are answered through the API; malformed requests get a 400."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from ecosys_core.prompts import Prompts

from .daemons import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("gui"), "alpha")
    d.start()
    yield d
    d.stop()


def gui_url(d: Daemon) -> str:
    return json.loads((d.home / "daemon.json").read_text())["gui"]


def secret(d: Daemon) -> str:
    return (d.home / "gui-secret").read_text().strip()


@contextmanager
def signed_in(d: Daemon) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a session cookie (through the one-time link), and its CSRF token."""
    link = d.cli("gui", "--print").stdout.strip()
    with httpx.Client(base_url=gui_url(d), timeout=10) as client:
        answer = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        yield client, client.get("/api/v1/session").json()["csrf"]


def test_without_a_secret_or_a_session_nothing_is_answered(daemon: Daemon):
    with httpx.Client(base_url=gui_url(daemon), timeout=10) as client:
        assert client.get("/api/v1/status").status_code == 401
        assert client.post("/api/v1/commands/stop").status_code == 401
        assert client.get("/api/v1/status", headers={"X-API-Key": "x" * 43}).status_code == 401
        page = client.get("/")  # the page itself is open; it holds no data
        assert page.status_code == 200 and b"Ecosys" in page.content
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert daemon.status()["device"]["name"] == "alpha"  # still running: the stop was refused


def test_the_api_key_of_this_home_lets_a_script_in(daemon: Daemon):
    with httpx.Client(base_url=gui_url(daemon), timeout=10, headers={"X-API-Key": secret(daemon)}) as client:
        status = client.get("/api/v1/status")
        assert status.status_code == 200 and status.json()["device"]["name"] == "alpha"
        assert "access-control-allow-origin" not in status.headers
        assert client.post("/api/v1/commands/rescan", json={}).status_code == 200
        assert client.post("/api/v1/commands/nonsense").status_code == 404
        assert client.post("/api/v1/commands/link", content=b"[1]").status_code == 400


def test_a_forged_host_or_another_origin_is_refused(daemon: Daemon):
    port = urlsplit(gui_url(daemon)).port
    key = {"X-API-Key": secret(daemon)}
    with httpx.Client(base_url=gui_url(daemon), timeout=10) as client:
        for host in (f"evil.example:{port}", "127.0.0.1:1", f"127.0.0.1.evil.example:{port}"):
            answer = client.get("/api/v1/status", headers={**key, "Host": host})
            assert answer.status_code == 403 and "Host" in answer.json()["error"]
            assert client.post("/api/v1/commands/stop", headers={**key, "Host": host}).status_code == 403
        answer = client.post("/api/v1/commands/stop", headers={**key, "Origin": "http://evil.example"})
        assert answer.status_code == 403
        assert client.get("/login?token=x", headers={"Origin": "http://evil.example"}).status_code == 403
    assert daemon.status()["device"]["name"] == "alpha"


def test_a_login_link_works_once_and_changes_need_the_csrf_token(daemon: Daemon):
    with signed_in(daemon) as (client, csrf):
        assert client.get("/api/v1/status").json()["device"]["name"] == "alpha"
        refused = client.post("/api/v1/commands/stop")
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        assert client.post("/api/v1/commands/stop", headers={"X-CSRF-Token": "0" * 64}).status_code == 403
        assert daemon.status()["device"]["name"] == "alpha"
        assert client.post("/api/v1/commands/rescan", json={}, headers={"X-CSRF-Token": csrf}).status_code == 200
    link = daemon.cli("gui", "--print").stdout.strip()
    with httpx.Client(timeout=10) as other:
        assert other.get(link).status_code == 303
        assert other.get(link).status_code == 401  # used up
    with httpx.Client(base_url=gui_url(daemon), timeout=10) as forged:
        forged.cookies.set("ecosys_session", "abc.def")
        assert forged.get("/api/v1/status").status_code == 401


def test_a_prompt_is_answered_from_the_api(daemon: Daemon):
    prompts = Prompts(daemon.home / "prompts")
    box: dict = {}
    asker = threading.Thread(target=lambda: box.setdefault("answer", prompts.ask("LINK", "link with beta?", timeout=20)))
    asker.start()
    with signed_in(daemon) as (client, csrf):
        for _ in range(100):
            pending = client.get("/api/v1/prompts").json()
            if pending:
                break
            threading.Event().wait(0.05)
        assert pending[0]["flag"] == "LINK"
        answer = client.post("/api/v1/prompts/answer", json={"prompt": pending[0]["id"], "answer": "yes"},
                             headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200
    asker.join(20)
    assert box["answer"] == "yes"


def test_live_updates_arrive_as_server_sent_events(daemon: Daemon):
    with httpx.Client(base_url=gui_url(daemon), timeout=10, headers={"X-API-Key": secret(daemon)}) as client:
        with client.stream("GET", "/api/v1/events") as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            lines = []
            for line in stream.iter_lines():
                lines.append(line)
                if line.startswith("data:") and len([x for x in lines if x.startswith("event:")]) >= 2:
                    break
    assert "event: status" in lines and "event: prompts" in lines


@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"GET /api/v1/status HTTP/1.1\r\nBad header\r\n\r\n",
                                 b"POST /api/v1/commands/stop HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                                 b"\xff\xfe\r\n\r\n"])
def test_malformed_requests_get_a_400_and_change_nothing(daemon: Daemon, raw: bytes):
    url = urlsplit(gui_url(daemon))
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(raw)
        head = s.recv(4096)
    assert head.split(b" ")[1] in (b"400", b"413")
    assert daemon.status()["device"]["name"] == "alpha"


def test_a_taken_dashboard_port_leaves_syncing_alone(tmp_path: Path, daemon: Daemon):
    port = urlsplit(gui_url(daemon)).port
    other = Daemon(tmp_path, "beta", extra=["--no-mdns", "--gui-address", f"127.0.0.1:{port}"])
    other.start()
    try:
        assert other.status()["device"]["name"] == "beta"
        assert "gui" not in json.loads((other.home / "daemon.json").read_text())
        assert "dashboard cannot listen" in other.log.read_text()
    finally:
        other.stop()


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "C:/x.txt", "a/../../b", "a\\b", ""])
def test_an_upload_outside_its_batch_is_refused_and_writes_nothing(daemon: Daemon, path: str):
    uploads = daemon.home / "largage-uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    with httpx.Client(base_url=gui_url(daemon), timeout=10, headers={"X-API-Key": secret(daemon)}) as client:
        answer = client.post("/api/v1/largage/upload", params={"batch": "ab" * 8, "path": path}, content=b"data")
        assert answer.status_code == 400, answer.text
        bad_batch = client.post("/api/v1/largage/upload", params={"batch": "../x", "path": "f"}, content=b"data")
        assert bad_batch.status_code == 400
    after = sorted(uploads.rglob("*")) if uploads.exists() else []
    assert [p for p in after if p.is_file()] == [p for p in before if p.is_file()]
    assert not (daemon.home / "escape.txt").exists() and not (daemon.home.parent / "escape.txt").exists()


def test_an_upload_streams_to_disk_and_an_empty_batch_is_not_sent(daemon: Daemon):
    data = b"x" * (3 << 20)  # above the 1 MiB bound of other bodies
    with httpx.Client(base_url=gui_url(daemon), timeout=30, headers={"X-API-Key": secret(daemon)}) as client:
        answer = client.post("/api/v1/largage/upload", params={"batch": "cd" * 8, "path": "folder/big.bin"}, content=data)
        assert answer.status_code == 200
        assert (daemon.home / "largage-uploads" / ("cd" * 8) / "folder" / "big.bin").read_bytes() == data
        empty = client.post("/api/v1/largage/send", json={"batch": "ef" * 8, "device": "beta"})
        assert empty.status_code == 400 and "nothing was uploaded" in empty.json()["error"]
