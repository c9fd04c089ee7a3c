"""The .btf prompts keep the seed's contract: ask blocks, read context, give appends, wait-loop callbacks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ecosys_core.errors import NotFound, PromptTimeout
from ecosys_core.prompts import Prompts


def answer_later(prompts: Prompts, flag: str, value: str, delay: float = 0.1) -> threading.Thread:
    def run():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                prompts.give(flag, value)
                return
            except NotFound:
                time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_ask_blocks_until_an_answer_is_appended(tmp_path: Path):
    prompts = Prompts(tmp_path)
    answer_later(prompts, "test", "Josette")
    assert prompts.ask("test", "Hey ! I need you to write me your name !", timeout=5) == "Josette"
    assert list(tmp_path.iterdir()) == []  # consumed


def test_answer_is_appended_right_after_the_context(tmp_path: Path):
    prompts = Prompts(tmp_path)
    prompt_id = prompts.post("CHOOSELINKPATH", "where?")
    assert prompts.read_context("CHOOSELINKPATH") == "where?"
    prompts.give("CHOOSELINKPATH", "/data/photos")
    assert (tmp_path / f"{prompt_id}.btf").read_text() == "where?/data/photos"
    assert prompts.wait(prompt_id, timeout=1) == "/data/photos"


def test_a_seed_front_end_that_only_appends_is_understood(tmp_path: Path):
    prompts = Prompts(tmp_path)
    prompt_id = prompts.post("OTDL", "accept photo.jpg from phone? (yes/no)")
    with open(tmp_path / f"{prompt_id}.btf", "a") as fh:
        fh.write("yes")
    assert prompts.wait(prompt_id, timeout=2) == "yes"


def test_unanswered_prompt_times_out_and_disappears(tmp_path: Path):
    prompts = Prompts(tmp_path)
    with pytest.raises(PromptTimeout):
        prompts.ask("ALERT_USER", "disk full", timeout=0.2)
    assert prompts.pending() == []


def test_two_prompts_of_one_flag_are_kept_apart_and_answered_oldest_first(tmp_path: Path):
    prompts = Prompts(tmp_path)
    first = prompts.post("[OTDL]", "first offer")
    second = prompts.post("OTDL", "second offer")
    assert (first, second) == ("OTDL", "OTDL~2")
    assert [p.context for p in prompts.pending()] == ["first offer", "second offer"]
    prompts.give("otdl", "no")
    assert prompts.wait(first, timeout=1) == "no"
    prompts.give(second, "yes")
    assert prompts.wait(second, timeout=1) == "yes"


def test_only_the_first_answer_counts(tmp_path: Path):
    prompts = Prompts(tmp_path)
    prompt_id = prompts.post("LINK", "link laptop?")
    prompts.give(prompt_id, "yes")
    with pytest.raises(NotFound):
        prompts.give(prompt_id, "no")
    assert prompts.wait(prompt_id, timeout=1) == "yes"


def test_wait_event_loop_calls_the_callback_of_each_flag(tmp_path: Path):
    prompts = Prompts(tmp_path)
    stop = threading.Event()
    seen = []

    def on_test(context: str) -> None:
        seen.append(context)
        prompts.give("test", "Josette")

    loop = threading.Thread(target=prompts.wait_event_loop, args=({"test": on_test}, stop), kwargs={"poll": 0.02})
    loop.start()
    try:
        assert prompts.ask("test", "name?", timeout=5) == "Josette"
    finally:
        stop.set()
        loop.join(5)
    assert seen == ["name?"]


def test_expired_prompts_are_not_listed(tmp_path: Path):
    prompts = Prompts(tmp_path)
    prompts.post("ALERT_USER", "old news", timeout=0.05)
    time.sleep(0.1)
    assert prompts.pending() == []


def test_an_answer_taken_before_the_answerer_finishes_still_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The asker may see the appended answer and clear the prompt before the answerer has marked it
    done (a loaded machine delays the answerer between the two steps). The answer was given: ``give``
    must not fail then, or a front end retrying it would wait for a prompt that is gone. The delay is
    forced at that exact point; the files and the waiting asker are real."""
    import os

    from ecosys_core import prompts as module

    folder = Prompts(tmp_path)
    prompt_id = folder.post("OTDL", "Accept? ")
    got: list[str] = []
    asker = threading.Thread(target=lambda: got.append(folder.wait(prompt_id, timeout=10, poll=0.01)))
    asker.start()
    real_replace = os.replace

    def late_replace(src, dst):  # type: ignore[no-untyped-def]
        asker.join(10)  # the asker has taken the answer and removed the prompt's files
        return real_replace(src, dst)

    monkeypatch.setattr(module.os, "replace", late_replace)
    assert folder.give("OTDL", "yes").id == prompt_id
    assert got == ["yes"] and list(tmp_path.iterdir()) == []
