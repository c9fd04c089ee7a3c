"""The Magasin end to end against a real HTTP server on loopback serving a folder built by ``publish``.
No mocked HTTP anywhere in these tests."""

from __future__ import annotations

import json
import os
import socket
import zipfile
from pathlib import Path


from ecosys_core.store import open_store
from ecosys_core.store.tasks import get_task, list_tasks
from magasin.client import MagasinClient
from magasin.index import INDEX_NAME
from magasin.publish import publish


def installed_files(home) -> set[str]:
    return {p.relative_to(home.apps).as_posix() for p in home.apps.rglob("*") if p.is_file()}


def test_search_info_list(mg):
    hits = json.loads(mg("search", "note", "--json").output)
    assert [h["name"] for h in hits] == ["Notes"]
    assert {h["name"] for h in json.loads(mg("search", "save", "--json").output)} == {"RetroArch saves", "Dolphin Emulator"}
    info = json.loads(mg("info", "notes", "--json").output)
    assert info["AppName"] == "Notes" and info["Versions"][0]["Artifacts"][0]["Type"] == "zip"
    assert "runs only with your consent" in mg("info", "Journal").output
    listed = {r["name"]: r for r in json.loads(mg("list", "--json").output)}
    assert listed["Notes"]["version"] == "1.0" and listed["Zed"]["kind"] == "grapin"
    assert json.loads(mg("list", "--installed", "--json").output) == []


def test_install_run_uninstall(mg, run_cli, ecosys_home):
    result = mg("install", "Notes")
    assert result.exit_code == 0, result.output
    root = ecosys_home.apps / "Notes"
    assert (root / "notes.py").exists() and (root / "data").is_dir() and (root / "ecosys-app.json").exists()
    store = open_store(ecosys_home.database)
    task = get_task(store, "Notes (application)")
    assert task.root == (root / "data").resolve() and task.kind.value == "app" and task.source == "Notes"
    run = run_cli("app", "run", "Notes", "add", "bonjour", "le", "monde")
    assert run.exit_code == 0, run.output
    (note,) = (root / "data").glob("*.txt")
    assert note.read_text() == "bonjour le monde\n"  # written relative to the app root (its cwd)
    assert [r["name"] for r in json.loads(mg("list", "--installed", "--json").output)] == ["Notes"]
    assert mg("install", "Notes").exit_code == 1  # already installed
    result = mg("uninstall", "Notes")
    assert result.exit_code == 0 and "its data stays" in result.output
    assert installed_files(ecosys_home) == {f"Notes/data/{note.name}"}  # exactly what install created is gone
    assert [t.name for t in list_tasks(store)] == []
    store.close()


def test_installer_needs_consent(mg, ecosys_home):
    refused = mg("install", "Journal")
    assert refused.exit_code == 1 and "refused; nothing was installed" in refused.stderr
    assert installed_files(ecosys_home) == set() and list(ecosys_home.apps.iterdir()) == []
    accepted = mg("install", "Journal", "--yes")
    assert accepted.exit_code == 0, accepted.output
    assert "it will run" in accepted.stderr and (ecosys_home.apps / "Journal" / "config" / "journal.conf").exists()
    assert mg("uninstall", "Journal").exit_code == 0
    assert not (ecosys_home.apps / "Journal" / "config").exists()  # the uninstaller ran


def test_update_keeps_synced_data_and_task(mg, run_cli, ecosys_home, magasin_src, magasin_dir):
    assert mg("install", "Notes").exit_code == 0
    store = open_store(ecosys_home.database)
    secure_id = get_task(store, "Notes (application)").secure_id
    run_cli("app", "run", "Notes", "add", "precious")
    manifest = magasin_src / "notes" / "ecosys-app.json"
    config = json.loads(manifest.read_text())
    config["AppVersion"] = "1.10"
    manifest.write_text(json.dumps(config))
    (magasin_src / "notes" / "CHANGELOG").write_text("1.10: better\n")
    (magasin_src / "notes" / "data").mkdir()
    (magasin_src / "notes" / "data" / "welcome.txt").write_text("seed note\n")
    publish(magasin_src, magasin_dir)
    assert {v["Version"] for v in json.loads(mg("info", "Notes", "--json").output)["Versions"]} == {"1.0", "1.10"}
    result = mg("update")
    assert result.exit_code == 0 and "Notes 1.0 → 1.10" in result.output
    root = ecosys_home.apps / "Notes"
    assert (root / "CHANGELOG").exists() and json.loads((root / "ecosys-app.json").read_text())["AppVersion"] == "1.10"
    notes = sorted(p.read_text() for p in (root / "data").glob("*.txt"))
    assert notes == ["precious\n", "seed note\n"]
    assert get_task(store, "Notes (application)").secure_id == secure_id
    assert mg("update").output.strip() == "Everything is up to date."
    assert mg("uninstall", "Notes").exit_code == 0
    assert not (root / "CHANGELOG").exists() and (root / "data" / "welcome.txt").exists()
    store.close()


def test_install_a_specific_version(mg, ecosys_home, magasin_src, magasin_dir):
    manifest = magasin_src / "notes" / "ecosys-app.json"
    config = json.loads(manifest.read_text())
    config["AppVersion"] = "2.0"
    manifest.write_text(json.dumps(config))
    publish(magasin_src, magasin_dir)
    assert mg("install", "Notes", "--version", "1.0").exit_code == 0
    assert json.loads((ecosys_home.apps / "Notes" / "ecosys-app.json").read_text())["AppVersion"] == "1.0"
    missing = mg("install", "Journal", "--version", "9")
    assert missing.exit_code == 1 and "no version '9'" in missing.stderr


def test_wrong_sha256_installs_nothing(mg, ecosys_home, magasin_dir):
    artifact = next((magasin_dir / "artifacts").glob("notes-*.zip"))
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    artifact.write_bytes(bytes(data))
    result = mg("install", "Notes")
    assert result.exit_code == 1 and "sha256 mismatch" in result.stderr
    assert list(ecosys_home.apps.iterdir()) == []
    assert not any((ecosys_home.root / "cache" / "downloads").iterdir())


def test_truncated_file_installs_nothing(mg, ecosys_home, magasin_dir):
    artifact = next((magasin_dir / "artifacts").glob("notes-*.zip"))
    artifact.write_bytes(artifact.read_bytes()[:100])
    result = mg("install", "Notes")
    assert result.exit_code == 1 and "truncated" in result.stderr
    assert list(ecosys_home.apps.iterdir()) == []


def test_connection_cut_mid_download_installs_nothing(run_cli, ecosys_home, magasin_dir):
    """A server that announces the whole artifact and hangs up half way."""
    from http.server import ThreadingHTTPServer

    from magasin.serve import _Handler, serve_in_thread

    class Cutting(_Handler):
        quiet = True

        def do_GET(self):  # noqa: N802 - stdlib name
            if not self.path.startswith("/artifacts/"):
                return super().do_GET()
            body = (magasin_dir / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    srv = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Cutting(*a, directory=str(magasin_dir)))
    serve_in_thread(srv)
    try:
        result = run_cli("magasin", "--magasin", f"http://127.0.0.1:{srv.server_address[1]}", "install", "Notes")
    finally:
        srv.shutdown()
        srv.server_close()
    assert result.exit_code == 1 and ("interrupted" in result.stderr or "truncated" in result.stderr)
    assert list(ecosys_home.apps.iterdir()) == []


def test_missing_index_and_missing_artifact(run_cli, url, magasin_dir, ecosys_home):
    result = run_cli("magasin", "--magasin", url + "nowhere/", "list")
    assert result.exit_code == 1 and "no Magasin index" in result.stderr and "404" in result.stderr
    next((magasin_dir / "artifacts").glob("notes-*.zip")).unlink()
    result = run_cli("magasin", "--magasin", url, "install", "Notes")
    assert result.exit_code == 1 and "artifact missing" in result.stderr
    assert list(ecosys_home.apps.iterdir()) == []


def test_server_down(run_cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("magasin", "--magasin", f"http://127.0.0.1:{port}/", "list")
    assert result.exit_code == 1 and "cannot reach the Magasin" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tls_error_is_explained(run_cli, server):
    result = run_cli("magasin", "--magasin", f"https://127.0.0.1:{server.server_address[1]}/", "list")
    assert result.exit_code == 1 and "TLS error" in result.stderr


def test_bad_json_and_wrong_format_version(run_cli, server, magasin_dir, url):
    index = magasin_dir / INDEX_NAME
    good = index.read_text()
    index.write_text("{ not json")
    result = run_cli("magasin", "--magasin", url, "list")
    assert result.exit_code == 1 and "not valid JSON" in result.stderr
    index.write_text(good.replace('"FormatVersion": 1', '"FormatVersion": 7'))
    result = run_cli("magasin", "--magasin", url, "list")
    assert result.exit_code == 1 and "FormatVersion: format version 7 is not supported" in result.stderr


def test_index_is_revalidated_with_etag(server, url, tmp_path: Path):
    client = MagasinClient(url, tmp_path / "cache")
    first = client.index()
    second = client.index()
    assert first == second
    statuses = [code for path, code in server.requests if path.endswith(INDEX_NAME)]
    assert statuses == [200, 304]
    client.close()


def test_zip_slip_artifact_is_refused_and_leaves_nothing(mg, ecosys_home, magasin_src, magasin_dir):
    evil = magasin_src / "evil"
    evil.mkdir()
    with zipfile.ZipFile(evil / "evil.zip", "w") as zf:
        zf.writestr("run.sh", "#!/bin/sh\n")
        zf.writestr("../../../escaped.txt", "gotcha")
    (evil / "ecosys-app.json").write_text(json.dumps({
        "AppName": "Evil", "AppDownloadUrl": "evil.zip", "AppExecutableName": "run.sh",
        "AppSyncDataFolderPath": "data", "SupportedPlatforms": ["Linux", "Darwin"]}))
    publish(magasin_src, magasin_dir)
    result = mg("install", "Evil")
    assert result.exit_code == 1 and "refused member '../../../escaped.txt'" in result.stderr
    assert list(ecosys_home.apps.iterdir()) == []
    assert not list(ecosys_home.root.parent.rglob("escaped.txt"))


def test_tar_gz_and_executable_artifacts(mg, ecosys_home, magasin_src, magasin_dir, run_cli):
    import tarfile

    tool = magasin_src / "tool"
    tool.mkdir()
    (tool / "tool.sh").write_text("#!/bin/sh\necho tool ran in $(pwd)\n")
    (tool / "tool.sh").chmod(0o755)
    (tool / "ecosys-app.json").write_text(json.dumps({
        "AppName": "Tool", "AppDownloadUrl": "tool.sh", "AppExecutableName": "tool.sh",
        "AppSyncDataFolderPath": "state", "SupportedPlatforms": ["Linux", "Darwin"]}))
    packed = magasin_src / "packed"
    (packed / "src").mkdir(parents=True)
    (packed / "src" / "main.sh").write_text("#!/bin/sh\necho packed\n")
    with tarfile.open(packed / "packed.tar.gz", "w:gz") as tf:
        tf.add(packed / "src" / "main.sh", arcname="bin/main.sh")
    (packed / "ecosys-app.json").write_text(json.dumps({
        "AppName": "Packed", "AppDownloadUrl": "packed.tar.gz", "AppExecutableName": "bin/main.sh",
        "AppSyncDataFolderPath": "data", "SupportedPlatforms": ["Linux", "Darwin"]}))
    publish(magasin_src, magasin_dir)
    assert mg("install", "Tool").exit_code == 0 and mg("install", "Packed").exit_code == 0
    assert os.access(ecosys_home.apps / "Tool" / "tool.sh", os.X_OK)
    assert (ecosys_home.apps / "Packed" / "bin" / "main.sh").exists()


def test_grapin_from_the_magasin(mg, run_cli, ecosys_home, user_home):
    assert mg("install", "Zed").exit_code == 0
    assert (ecosys_home.plugins / "zed.json").exists()
    (user_home / ".config" / "zed").mkdir(parents=True)
    assert run_cli("grapin", "resolve", "Zed").output.strip() == str(user_home / ".config" / "zed")
    assert [r["kind"] for r in json.loads(mg("list", "--installed", "--json").output)] == ["grapin"]
    assert mg("uninstall", "zed").exit_code == 0 and not (ecosys_home.plugins / "zed.json").exists()


def test_unknown_app(mg):
    result = mg("install", "Nope")
    assert result.exit_code == 1 and "no app or grapin called 'Nope'" in result.stderr


def test_magasin_use_saves_only_a_url_that_answers_and_default_returns_to_the_sample(run_cli, url, ecosys_home):
    from ecosys_core.store import open_store
    from ecosys_core.store.settings_kv import get_setting

    down = run_cli("magasin", "use", "http://127.0.0.1:9/")
    assert down.exit_code != 0 and down.stderr.startswith("error: ")
    saved = run_cli("magasin", "use", url)
    assert saved.exit_code == 0 and "'ecosys magasin use --default' returns to the sample" in saved.output
    store = open_store(ecosys_home.database)
    assert get_setting(store, "magasin_url") == url
    back = run_cli("magasin", "use", "--default")
    assert back.exit_code == 0 and "sample" in back.output and get_setting(store, "magasin_url") == ""
    store.close()
    assert "Notes" in run_cli("magasin", "search", "notes").output  # the sample answers again
