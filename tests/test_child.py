"""`vbert.core.child.ChildProcess`: a function in a fresh process, its result or its error back."""

from __future__ import annotations

import os

import pytest

from vbert.core.child import ChildFailed, ChildProcess


def test_the_result_comes_back_and_the_child_sees_the_environment_of_now(monkeypatch) -> None:
    with ChildProcess(sum, [1, 2, 3], name="sum") as child:
        assert child.result() == 6
    # a variable set after the fork server started (the first child above started it) still arrives
    monkeypatch.setenv("VBERT_CHILD_TEST", "set later")
    with ChildProcess(os.getenv, "VBERT_CHILD_TEST", name="getenv") as child:
        assert child.result() == "set later"
        assert child.done()


def test_an_error_comes_back_with_its_type_and_message() -> None:
    with ChildProcess(int, "seven", name="parse") as child, pytest.raises(ChildFailed) as failed:
        child.result()
    assert failed.value.reason.startswith("ValueError: invalid literal") and not failed.value.stopped
    assert str(failed.value).startswith("parse: ValueError")


def test_a_stop_error_is_reported_as_a_stop() -> None:
    with ChildProcess(int, "x", name="stopping", stop_errors=(ValueError,)) as child:
        with pytest.raises(ChildFailed) as failed:
            child.result()
    assert failed.value.stopped
