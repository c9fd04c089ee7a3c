"""What counts as an answer to each prompt flag, checked before the answer is given, so that a person
who typed something unusable is told why while the question is still open (and can answer again)."""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING, Callable

from .errors import EcosysError
from .prompts import YES_ANSWERS

if TYPE_CHECKING:
    from .store import Store

NO_ANSWERS = frozenset({"n", "no", "non", "decline", "refuse", "0", "false"})
YES_NO_FLAGS = frozenset({"LINK", "OTDL", "MOTDL", "SHARE", "INSTALL"})


class BadAnswer(EcosysError):
    """An answer the asker could not use; the prompt stays open."""

    exit_code = 2


def check_answer(flag: str, answer: str, store: Store | Callable[[], Store]) -> str:
    """``answer`` as the asker will read it, or BadAnswer saying why it cannot be used for ``flag``:
    yes/no flags take a yes or a no word (English or French); CHOOSELINKPATH takes an absolute folder
    that exists or can be created, outside ECOSYS_HOME and other tasks (empty: refuse the task).
    ``store`` may be a function giving it: only a folder answer opens it."""
    text = answer.strip()
    if flag in YES_NO_FLAGS:
        if text.lower() in YES_ANSWERS:
            return "yes"
        if text.lower() in NO_ANSWERS:
            return "no"
        raise BadAnswer(f"answer {flag} with yes or no, not {text[:40]!r}")
    if flag == "CHOOSELINKPATH":
        if not text:
            return ""
        from .store.tasks import check_new_task_root

        try:
            return str(check_new_task_root(store() if callable(store) else store, Path(text).expanduser()))
        except EcosysError as exc:
            raise BadAnswer(f"{exc}; answer with another folder, or an empty answer to refuse") from None
    return answer
