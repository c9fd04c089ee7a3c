"""Every hook is documented with its exact signature and has a test (datasette's two guards), and each
hook works through the plugin manager the way its docstring promises."""

from __future__ import annotations

import inspect
import re
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ecosys_core.hookspecs as hookspecs
from ecosys_core.hookspecs import hookimpl
from ecosys_core.linking import accept_task_offer, choose_task_root, link_device, unlink_device
from ecosys_core.models import GrapinConfig
from ecosys_core.prompts import Prompts
from ecosys_core.store.devices import get_device, list_devices, task_device_ids
from ecosys_core.types import Placeholder, TaskInfo, TaskKind, TaskOffer

from .sync.harness import make_devices, meet

DOCS = (Path(__file__).parent.parent / "docs" / "plugin_hooks.md").read_text()
HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "ecosys_spec")}
DEVICE = "ab" * 32


def signature(name: str) -> str:
    return f"{name}{inspect.signature(HOOKS[name])}".replace("'", "")


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_with_its_signature(name: str):
    assert f"### `{signature(name)}`" in DOCS


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_a_test_and_a_docstring(name: str):
    assert f"def test_hook_{name}" in Path(__file__).read_text()
    assert HOOKS[name].__doc__ and len(HOOKS[name].__doc__.strip()) > 40


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_an_example(name: str):
    section = DOCS.split(f"### `{signature(name)}`", 1)[1].split("\n### ", 1)[0]
    assert f"```python\n@hookimpl\ndef {name}(" in section


def test_documented_hooks_all_exist():
    documented = set(re.findall(r"^### `(\w+)\(", DOCS, re.MULTILINE))
    assert documented == set(HOOKS)


class Recorder:
    """A throwaway plugin that records what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def device_linked(self, device_id, name):
        self.calls.append(("linked", device_id, name))

    @hookimpl
    def device_unlinked(self, device_id):
        self.calls.append(("unlinked", device_id))

    @hookimpl
    def task_linked(self, task, device_id):
        self.calls.append(("task", task.name, device_id))

    @hookimpl
    def change_applied(self, task, path, deleted):
        self.calls.append(("applied", path, deleted))

    @hookimpl
    def change_conflicted(self, task, path, conflict_path):
        self.calls.append(("conflict", path, conflict_path))


@pytest.fixture
def recorder(plugins):
    plugin = Recorder()
    plugins.pm.register(plugin)
    plugins.pm.check_pending()
    yield plugin
    plugins.pm.unregister(plugin)


def some_task(tmp_path: Path) -> TaskInfo:
    return TaskInfo("docs", "00" * 16, tmp_path, TaskKind.FOLDER, False, datetime.now(timezone.utc))


def test_hook_register_placeholders(plugins):
    class Extra:
        @hookimpl
        def register_placeholders(self, register):
            register(Placeholder("shelf", lambda r: r.component.replace("%shelf%", "books")))

    plugin = Extra()
    plugins.pm.register(plugin)
    try:
        plugins._placeholders = None
        assert {"username", "version", "any", "shelf"} <= set(plugins.placeholders())
        assert "shelf" in plugins.grapins().known_placeholders
    finally:
        plugins.pm.unregister(plugin)


def test_hook_register_grapins(plugins):
    class Extra:
        @hookimpl
        def register_grapins(self, registry):
            registry.add(GrapinConfig.model_validate(
                {"AppName": "From Plugin", "AppSyncDataFolderPath": "~/fp", "SupportedPlatforms": ["Linux"]}), "extra")

    plugin = Extra()
    plugins.pm.register(plugin)
    try:
        catalogue = plugins.grapins()
        assert catalogue.get("From Plugin").source == "extra"
        assert catalogue.get("Firefox")  # the bundled ones are still there
    finally:
        plugins.pm.unregister(plugin)


def test_hook_register_apps(plugins, ecosys_home):
    app_dir = ecosys_home.apps / "Notes"
    app_dir.mkdir(parents=True)
    (app_dir / "ecosys-app.json").write_text(
        '{"AppName": "Notes", "AppSyncDataFolderPath": "data", "SupportedPlatforms": ["Linux"]}')
    (ecosys_home.apps / "Broken").mkdir()
    (ecosys_home.apps / "Broken" / "ecosys-app.json").write_text('{"AppName": "Broken"}')
    apps = plugins.apps()
    assert apps.get("Notes").item.data_folder == app_dir / "data"
    assert len(apps.errors) == 1 and "AppSyncDataFolderPath" in str(apps.errors[0])


def test_hook_install_artifact(plugins, tmp_path: Path):
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bin/app.sh", "#!/bin/sh\necho hi\n")
        zf.writestr("README", "hello")
    dest = tmp_path / "apps" / "App"
    created = plugins.hook.install_artifact(artifact=archive, artifact_type="zip", destination=dest)
    assert created == ["README", "bin/app.sh"]
    assert (dest / "bin" / "app.sh").read_text().startswith("#!/bin/sh")
    tgz = tmp_path / "app.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(archive, arcname="inner/app.zip")
    assert plugins.hook.install_artifact(artifact=tgz, artifact_type="tar.gz", destination=tmp_path / "t") == ["inner/app.zip"]
    assert plugins.hook.install_artifact(artifact=archive, artifact_type="flatpak", destination=dest) is None

    class AppImage:
        @hookimpl
        def install_artifact(self, artifact, artifact_type, destination):
            return ["x.AppImage"] if artifact_type == "appimage" else None

    plugin = AppImage()
    plugins.pm.register(plugin)
    try:
        assert plugins.hook.install_artifact(artifact=archive, artifact_type="appimage", destination=dest) == ["x.AppImage"]
    finally:
        plugins.pm.unregister(plugin)


def test_hook_choose_link_path(plugins, user_home: Path, tmp_path: Path):
    (user_home / ".config" / "kitty").mkdir(parents=True)
    offer = TaskOffer("kitty", "11" * 16, TaskKind.GRAPIN, "kitty", datetime.now(timezone.utc), DEVICE)
    prompts = Prompts(tmp_path / "prompts")
    assert choose_task_root(plugins.hook, prompts, offer) == user_home / ".config" / "kitty"
    folder_offer = TaskOffer("Photos", "22" * 16, TaskKind.FOLDER, None, datetime.now(timezone.utc), DEVICE)
    assert plugins.hook.choose_link_path(offer=folder_offer) is None  # the user decides (CHOOSELINKPATH)


VIM_V2 = ('{"FormatVersion": 2, "AppName": "Vim", "SupportedPlatforms": ["Linux", "Darwin", "Win32"], "Paths": ['
          '{"Name": "vimrc", "File": true, "Locations": {"Any": ["~/.vimrc"], "Win32": ["~/_vimrc"]}},'
          '{"Name": "vim", "Locations": {"Any": ["~/.vim"], "Win32": ["~/vimfiles"]}, "Exclude": ["*.swp"]}]}')


def test_hook_task_layout(ecosys_home, user_home: Path, store, tmp_path: Path):
    from ecosys_core.plugins import get_plugin_manager

    (ecosys_home.root / "plugins").mkdir(exist_ok=True)
    (ecosys_home.root / "plugins" / "vim.json").write_text(VIM_V2)
    (user_home / ".vimrc").write_text("set number")
    (user_home / ".vim").mkdir()
    plugins = get_plugin_manager(ecosys_home)
    offer = TaskOffer("Vim", "44" * 16, TaskKind.GRAPIN, "Vim", datetime.now(timezone.utc), DEVICE)
    layout = plugins.hook.task_layout(offer=offer)
    assert layout.root is None and [(p.name, p.path, p.file) for p in layout.parts] == [
        ("vimrc", user_home / ".vimrc", True), ("vim", user_home / ".vim", False)]
    assert layout.patterns == ("/vim/**/*.swp",)
    link_device(store, plugins.hook, DEVICE, "phone")
    task = accept_task_offer(store, plugins.hook, offer, layout.parts[0].path, layout=layout)
    assert task.parts == layout.parts and task.patterns == layout.patterns
    folder_offer = TaskOffer("Photos", "22" * 16, TaskKind.FOLDER, None, datetime.now(timezone.utc), DEVICE)
    assert plugins.hook.task_layout(offer=folder_offer) is None


def test_hook_device_linked(plugins, store, recorder):
    link_device(store, plugins.hook, DEVICE.upper(), "phone")
    assert recorder.calls == [("linked", DEVICE, "phone")]
    assert get_device(store, DEVICE).linked


def test_hook_device_unlinked(plugins, store, recorder):
    link_device(store, plugins.hook, DEVICE, "phone")
    unlink_device(store, plugins.hook, DEVICE)
    assert recorder.calls[-1] == ("unlinked", DEVICE)
    assert [(d.device_id, d.name, d.linked) for d in list_devices(store)] == [(DEVICE, "phone", False)]


def test_hook_task_linked(plugins, store, recorder, tmp_path: Path):
    link_device(store, plugins.hook, DEVICE, "phone")
    offer = TaskOffer("Photos", "33" * 16, TaskKind.FOLDER, None, datetime(2020, 1, 1, tzinfo=timezone.utc), DEVICE)
    task = accept_task_offer(store, plugins.hook, offer, tmp_path / "Photos")
    assert ("task", "Photos", DEVICE) in recorder.calls
    assert task.secure_id == "33" * 16 and task_device_ids(store, task.secure_id) == [DEVICE]


def test_hook_change_about_to_send(plugins, tmp_path: Path):
    """Through a real meeting of two engines: a vetoed change is indexed but never sent."""

    class NoTempFiles:
        @hookimpl
        def change_about_to_send(self, task, path, deleted):
            return not path.endswith(".tmp")

    plugin = NoTempFiles()
    plugins.pm.register(plugin)
    a, b = make_devices(tmp_path, 2, hook=plugins.hook)
    try:
        a.write("notes.txt", b"kept")
        a.write("build.tmp", b"vetoed")
        a.scan()
        meet(a, b)
        assert b.files() == {"notes.txt": b"kept"}
    finally:
        plugins.pm.unregister(plugin)
        for device in (a, b):
            device.close()


def test_hook_change_applied(plugins, recorder, tmp_path: Path):
    """Through a real meeting: the receiver is told of each applied change, deletions included."""
    a, b = make_devices(tmp_path, 2, hook=plugins.hook)
    try:
        a.write("a/b.txt", b"one")
        a.scan()
        meet(a, b)
        a.delete("a/b.txt")
        a.scan()
        meet(a, b)
        assert [c for c in recorder.calls if c[0] == "applied"] == [("applied", "a/b.txt", False),
                                                                    ("applied", "a/b.txt", True)]
        assert b.files() == {}
    finally:
        for device in (a, b):
            device.close()


def test_hook_change_conflicted(plugins, recorder, tmp_path: Path):
    """Through a real meeting: concurrent edits end in a conflict copy, and the plugin hears its name."""
    a, b = make_devices(tmp_path, 2, hook=plugins.hook)
    try:
        a.write("a.txt", b"from a")
        b.write("a.txt", b"from b, longer")
        a.scan()
        b.scan()
        meet(a, b)
        conflicts = [c for c in recorder.calls if c[0] == "conflict"]
        assert conflicts and all(c[1] == "a.txt" and ".sync-conflict-" in c[2] for c in conflicts)
        copy = conflicts[0][2]
        assert a.files() == b.files() and set(a.files()) == {"a.txt", copy}
        assert {a.files()["a.txt"], a.files()[copy]} == {b"from a", b"from b, longer"}
    finally:
        for device in (a, b):
            device.close()


def test_hook_register_commands(plugins):
    group = click.Group("ecosys")

    class Hello:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                click.echo("bonjour")

    plugin = Hello()
    plugins.pm.register(plugin)
    try:
        plugins.hook.register_commands(cli=group)
    finally:
        plugins.pm.unregister(plugin)
    assert CliRunner().invoke(group, ["hello"]).output == "bonjour\n"


def test_hook_register_schemas(plugins):
    from ecosys_core.schemas import all_schema_documents

    class Extra:
        @hookimpl
        def register_schemas(self, register):
            register("extra.schema.json", {"type": "object"})

    plugin = Extra()
    plugins.pm.register(plugin)
    try:
        documents = all_schema_documents(plugins.hook)
    finally:
        plugins.pm.unregister(plugin)
    assert documents["extra.schema.json"] == {"type": "object"}
    assert "grapin.schema.json" in documents


def test_check_pending_finds_no_typo(plugins):
    plugins.pm.check_pending()


def test_app_link_rule_the_older_task_is_the_reference():
    from ecosys_core.linking import AppLinkDecision, decide_app_link

    old, new = datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert decide_app_link(new, "bb", old, "aa") is AppLinkDecision.ADOPT_REMOTE
    assert decide_app_link(old, "aa", new, "bb") is AppLinkDecision.ASK_REMOTE_TO_ADOPT
    # same timestamp: both sides agree through the secure_id
    assert decide_app_link(old, "bb", old, "aa") is AppLinkDecision.ADOPT_REMOTE
    assert decide_app_link(old, "aa", old, "bb") is AppLinkDecision.ASK_REMOTE_TO_ADOPT


def test_hook_register_daemon_commands(tmp_path: Path, monkeypatch):
    """A plugin's command joins the daemon's (reached by the control channel and the API); a name without
    a dot, which could shadow a builtin command, is not added."""
    import asyncio

    import ecosys_core.daemon as daemon_module
    from ecosys_core.settings import HomeLayout

    class Extra:
        @hookimpl
        def register_daemon_commands(self, register, daemon):
            async def hello(args):
                return {"hello": args.get("who", "world"), "home": str(daemon.home.root)}
            register("extra.hello", hello)
            register("status", hello)  # refused: not 'plugin.verb'

    real = daemon_module.get_plugin_manager

    def with_extra(home, **kwargs):
        plugins = real(home, **kwargs)
        plugins.pm.register(Extra())
        return plugins

    monkeypatch.setattr(daemon_module, "get_plugin_manager", with_extra)
    node = daemon_module.Node(HomeLayout(tmp_path / "home"), port=0, mdns=False, gui_address=None)
    try:
        answer = asyncio.run(node.handle("extra.hello", {"who": "plugin"}))
        assert answer == {"hello": "plugin", "home": str(tmp_path / "home")}
        assert asyncio.run(node.handle("status", {}))["device"]  # the builtin one still
        assert "magasin.install" in node.commands  # the Magasin plugin adds its own the same way
    finally:
        node.store.close()
        node.lock.release()
