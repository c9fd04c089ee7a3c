"""Linking devices and sync tasks, the seed's way, independent of the network that carries the requests.

- A device is linked once both sides said yes; it is then pinned by its device_id.
- A task offered by a linked device goes where a ``choose_link_path`` plugin says (grapin and app tasks:
  where that app keeps its data here) or where the user answers the CHOOSELINKPATH prompt.
- Linking an app or grapin task that exists on both sides follows the seed's timestamp rule: the older
  task is the reference; the newer side adopts its secure_id and asks for a setup queue.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime
from pathlib import Path

from pluggy import HookRelay

from .device_ids import readable_id
from .errors import EcosysError
from .prompts import Prompts
from .store import Store
from .store.devices import forget_device, link_task_device, upsert_device
from .store.settings_kv import get_setting, set_setting
from .store.tasks import add_task, check_new_task_root, task_info
from .types import TaskInfo, TaskLayout, TaskOffer


def link_device(store: Store, hook: HookRelay, device_id: str, name: str) -> list[str]:
    """Mark ``device_id`` linked (pinned) and tell the plugins (``device_linked``). Nothing that was
    shared before an unlink is shared again: the names of those tasks are returned, for the person."""
    info = upsert_device(store, device_id, name=name, linked=True)
    set_setting(store, f"{UNLINKED_HERE}{info.device_id}", "")
    hook.device_linked(device_id=info.device_id, name=info.name)
    key = f"{FORMERLY_SHARED}{info.device_id}"
    before = json.loads(get_setting(store, key) or "[]")
    if before:
        set_setting(store, key, "[]")
    return before


def unlink_device(store: Store, hook: HookRelay, device_id: str, *, leaves_tasks: bool = False) -> None:
    """Unlink ``device_id``: its task links and pending patches go, the device stays known (so it can be
    found and linked again, which then names the tasks shared before); tell the plugins. ``leaves_tasks``
    (the person unlinked it here, rather than it unlinking us): it also leaves every task's member list,
    and no introducer links it here again."""
    shared = forget_device(store, device_id, leaves_tasks=leaves_tasks)
    if leaves_tasks:
        set_setting(store, f"{UNLINKED_HERE}{device_id.lower()}", "1")
    set_setting(store, f"{FORMERLY_SHARED}{device_id.lower()}", json.dumps(shared))
    hook.device_unlinked(device_id=device_id.lower())


UNLINKED_HERE = "unlinked_here:"  # setting key prefix: the person unlinked this device (introductions ignored)
FORMERLY_SHARED = "formerly_shared:"  # setting key prefix: tasks a device was linked with before its unlink


TRUST_APP_SHARES = "trust_app_shares:"  # setting key prefix: this device may share app data without asking


def link_path_question(offer: TaskOffer) -> str:
    """The CHOOSELINKPATH question for ``offer``."""
    return (f"Device {readable_id(offer.device_id)} shares the sync task {offer.name!r}. Where should it be kept "
            "on this device? Answer with a folder path, or an empty answer to refuse.")


def app_share_question(offer: TaskOffer, folder: Path | None) -> str:
    """The SHARE question for an app or grapin task, naming the folder it would write."""
    where = f"it will write into {folder}" if folder is not None else "you will be asked where it goes"
    return (f"Device {readable_id(offer.device_id)} shares the data of {offer.source or offer.name} "
            f"({offer.kind.value} task {offer.name!r}): {where}; files there that differ are kept as conflict "
            "copies. Accept? Answer yes or no.")


def root_from_answer(offer: TaskOffer, answer: str) -> Path:
    """The folder a CHOOSELINKPATH answer names; EcosysError for an empty answer (the task is refused)."""
    answer = answer.strip()
    if not answer:
        raise EcosysError(f"the task {offer.name!r} was refused")
    return Path(answer).expanduser()


def trusts_app_shares(store: Store, device_id: str) -> bool:
    """True when the person said ``device_id`` may share app and grapin data without being asked."""
    return get_setting(store, f"{TRUST_APP_SHARES}{device_id.lower()}") == "1"


def set_trust_app_shares(store: Store, device_id: str, trusted: bool) -> None:
    """Record whether ``device_id`` may share app and grapin data without a SHARE question."""
    set_setting(store, f"{TRUST_APP_SHARES}{device_id.lower()}", "1" if trusted else "")


def choose_task_root(hook: HookRelay, prompts: Prompts, offer: TaskOffer, *, timeout: float | None = None) -> Path:
    """Return where ``offer`` goes here: the first ``choose_link_path`` answer, else the user's answer to a
    CHOOSELINKPATH prompt. An empty answer refuses the offer (EcosysError)."""
    chosen = hook.choose_link_path(offer=offer)
    if chosen is not None:
        return Path(chosen)
    return root_from_answer(offer, prompts.ask("CHOOSELINKPATH", link_path_question(offer), timeout=timeout))


def accept_task_offer(store: Store, hook: HookRelay, offer: TaskOffer, root: Path, *, name: str | None = None,
                      layout: TaskLayout | None = None) -> TaskInfo:
    """Create the offered task at ``root`` (or with ``layout``'s places and patterns) under the offer's
    secure_id, link it with the offering device and tell the plugins (``task_linked``). The folder is
    checked before anything is created (EcosysError)."""
    extra = {} if layout is None else {"patterns": layout.patterns, "lock_files": layout.lock_files,
                                       "process_names": layout.process_names}
    if layout is not None and layout.parts:
        task = add_task(store, name=name or offer.name, root=root, kind=offer.kind, source=offer.source,
                        secure_id=offer.secure_id, created_at=offer.created_at, parts=layout.parts, **extra)
    else:
        root = check_new_task_root(store, root, offer.kind)
        root.mkdir(parents=True, exist_ok=True)
        task = add_task(store, name=name or offer.name, root=root, kind=offer.kind, source=offer.source,
                        secure_id=offer.secure_id, created_at=offer.created_at, **extra)
    link_task_device(store, task.secure_id, offer.device_id)
    hook.task_linked(task=task, device_id=offer.device_id)
    return task


class AppLinkDecision(str, enum.Enum):
    """What the side receiving an app/grapin link request does (seed rule)."""

    ADOPT_REMOTE = "adopt_remote"  # remote task is older: take its secure_id, ask for a setup queue
    ASK_REMOTE_TO_ADOPT = "ask_remote_to_adopt"  # ours is older: send the link request the other way


def decide_app_link(local_created: datetime, local_secure_id: str, remote_created: datetime,
                    remote_secure_id: str) -> AppLinkDecision:
    """The seed's rule: the older task is the reference, so linking never overwrites older data.
    Equal timestamps fall back to the smaller secure_id so both sides agree."""
    if (remote_created, remote_secure_id) < (local_created, local_secure_id):
        return AppLinkDecision.ADOPT_REMOTE
    return AppLinkDecision.ASK_REMOTE_TO_ADOPT


def adopt_secure_id(store: Store, task_name: str, secure_id: str) -> TaskInfo:
    """Give the local task ``task_name`` the reference side's ``secure_id`` (the newer side adopts)."""
    from sqlalchemy import select

    from .store.tables import SyncTask

    with store.session() as session:
        row = session.scalar(select(SyncTask).where(SyncTask.name == task_name))
        if row is None:
            raise EcosysError(f"no sync task called {task_name!r}")
        row.secure_id = secure_id
        session.flush()
        store.touch()
        return task_info(row)
