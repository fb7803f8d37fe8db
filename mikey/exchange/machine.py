"""The roles' state machines: states, inputs and the transition tables both roles run on.

Anything not in a table is a :class:`~mikey.errors.StateError` and ends the machine FAILED::

    Initiator: IDLE --start--> AWAITING --finish(ok)--> DONE
                                        --finish(bad)--> FAILED
    Responder: IDLE --respond(ok)--> DONE
                    --respond(bad)--> FAILED
"""

from __future__ import annotations

import enum

from ..errors import StateError

__all__ = ["INITIATOR_TABLE", "RESPONDER_TABLE", "Input", "Machine", "State"]


class State(enum.Enum):
    IDLE = "idle"
    AWAITING = "awaiting"
    DONE = "done"
    FAILED = "failed"

    # Members are singletons compared by identity: the identity hash, in C, serves the
    # transition table lookups (Enum's own __hash__ is a Python call hashing the name).
    __hash__ = object.__hash__


class Input(enum.Enum):
    START = "start"
    FINISH = "finish"
    RESPOND = "respond"

    __hash__ = object.__hash__  # as State


INITIATOR_TABLE = {
    (State.IDLE, Input.START): State.AWAITING,
    (State.AWAITING, Input.FINISH): State.DONE,
}
RESPONDER_TABLE = {(State.IDLE, Input.RESPOND): State.DONE}


class Machine:
    """A role's state and its table; :meth:`_advance` is the only way to move."""

    _table: dict[tuple[State, Input], State] = {}

    def __init__(self) -> None:
        self.state = State.IDLE

    def _advance(self, inp: Input) -> State:
        """The state ``inp`` leads to (the caller enters it once the step succeeded)."""
        nxt = self._table.get((self.state, inp))
        if nxt is None:
            prev = self.state
            self.state = State.FAILED
            raise StateError(f"{inp.value} not allowed in state {prev.value}")
        return nxt
