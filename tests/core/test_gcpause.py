"""gc_paused(): the cyclic garbage collector off around a block, on again after the last."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from pytheus.gcpause import gc_paused


@pytest.fixture(autouse=True)
def gc_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_off_inside_on_after_also_after_an_exception() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="failed"), gc_paused():
        raise RuntimeError("the block failed")
    assert gc.isenabled()


def test_a_collector_the_application_turned_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_blocks_turn_it_on_when_the_last_one_ends() -> None:
    """Block A turns the GC off; B starts while A runs and ends after it: the GC stays
    off until B ends, then is on."""
    gc.enable()
    a_inside, b_inside, a_go, b_go = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def block(name: str, inside: threading.Event, go: threading.Event) -> None:
        with gc_paused():
            seen[name] = gc.isenabled()
            inside.set()
            assert go.wait(10)

    a = threading.Thread(target=block, args=("a", a_inside, a_go))
    b = threading.Thread(target=block, args=("b", b_inside, b_go))
    a.start()
    try:
        assert a_inside.wait(10)
        b.start()
        assert b_inside.wait(10)
        a_go.set()
        a.join(10)
        assert not a.is_alive()
        assert not gc.isenabled()  # B is still in its block
    finally:
        a_go.set()
        b_go.set()
        a.join(10)
        if b.ident is not None:
            b.join(10)
    assert seen == {"a": False, "b": False}
    assert gc.isenabled()
