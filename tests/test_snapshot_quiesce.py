"""The dir backend's check that InnoDB held still while the db volume was copied.

A copy that raced InnoDB is taken again; before that the state must settle once more and become
the new baseline. LSN and checkpoint only grow, so comparing a later copy with the first state
would call every retry changed (a drill under load failed three retries in a row that way)."""

from __future__ import annotations

from typing import Any

from standby.snapshot.quiesce import Held, _inno


class StatusCursor:
    """Answers SHOW GLOBAL STATUS from a dict the test moves forward."""

    def __init__(self) -> None:
        self.status = {"Innodb_buffer_pool_pages_dirty": 0, "Innodb_checkpoint_age": 12,
                       "Innodb_lsn_current": 1000, "Innodb_lsn_flushed": 1000,
                       "Innodb_lsn_last_checkpoint": 988}

    def execute(self, sql: str, args: Any = None) -> None:
        assert sql.startswith("SHOW GLOBAL STATUS")

    def fetchall(self) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.status.items()]


def test_a_retry_compares_with_the_state_settled_before_it() -> None:
    cur = StatusCursor()
    held = Held(cur, _inno(cur), lambda: _inno(cur))
    assert not held.changed()
    cur.status["Innodb_lsn_last_checkpoint"] = 1000  # the checkpoint moved during copy 1
    cur.status["Innodb_checkpoint_age"] = 0
    assert held.changed()
    held.resettle()
    assert not held.changed(), "copy 2 of a state that holds still is good"
    cur.status["Innodb_lsn_current"] = cur.status["Innodb_lsn_flushed"] = 1010
    assert held.changed(), "and a copy that raced a write still is not"


def test_without_a_clean_wait_nothing_is_compared() -> None:
    held = Held(StatusCursor(), None, None)
    held.resettle()
    assert not held.changed()
