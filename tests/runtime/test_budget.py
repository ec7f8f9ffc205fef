"""A byte budget shared between clients (runtime/budget.py, :class:`ClientBudget`): while another
client is about, one holding some already takes no more than half of it."""

from __future__ import annotations

import pytest

from faceflow.runtime.budget import ClientBudget

LIMIT = 1000
A, B = "ip:192.0.2.1", "ip:192.0.2.2"

Take = tuple[str | None, int, bool]
"""A take in turn: whose (None: nobody's), how many bytes, whether it is let through."""


@pytest.mark.parametrize(
    "takes",
    [
        # A client alone takes while the limit is not reached, past it by one take at most.
        [(A, 400, True), (A, 400, True), (A, 400, True), (A, 1, False)],
        # Another client about: one holding some goes up to half, not past it ...
        [(B, 100, True), (A, 300, True), (A, 200, True), (A, 1, False), (B, 400, True)],
        # ... while one holding none takes as always, a take larger than half too.
        [(B, 100, True), (A, 800, True), (A, 100, False), (B, 100, True), (B, 1, False)],
        # A client refused for the limit is about: the one holding it all is kept to its half.
        [(A, 1000, True), (B, 100, False), (A, 1, False)],
        # Nobody's takes are neither counted for a client nor refused for one.
        [(B, 100, True), (None, 300, True), (None, 300, True), (A, 200, True), (A, 300, True)],
    ],
)
def test_a_client_holds_at_most_half_while_another_is_about(takes: list[Take]) -> None:
    budget = ClientBudget(LIMIT, keep_for_others=True)
    for owner, size, taken in takes:
        assert budget.try_take_for(owner, size) is taken, (owner, size)
    assert budget.refused == sum(not taken for _, _, taken in takes)


def test_without_keep_for_others_it_is_first_come_first_served() -> None:
    budget = ClientBudget(LIMIT)
    assert budget.try_take_for(B, 100)
    assert budget.try_take_for(A, 500)
    assert budget.try_take_for(A, 500)
    assert not budget.try_take_for(B, 1)
    assert budget.held_by(A) == 0  # not counted per client


def test_a_share_given_back_is_taken_again() -> None:
    budget = ClientBudget(LIMIT, keep_for_others=True)
    assert budget.try_take_for(B, 100)
    assert budget.try_take_for(A, 300)
    assert budget.try_take_for(A, 200)
    assert budget.held_by(A) == 500
    assert not budget.room_for(A)  # at its share: nothing more
    assert budget.room_for(B)
    budget.give_for(A, 300)
    assert budget.held_by(A) == 200
    assert budget.room_for(A)
    assert budget.try_take_for(A, 300)
    budget.give_for(A, 200)
    budget.give_for(A, 300)
    budget.give_for(B, 100)
    assert budget.held_by(A) == budget.held_by(B) == budget.used_bytes == 0
