"""Sending slots: a live delivery waiting for a slot is let in before every replayed one waiting."""

from __future__ import annotations

import asyncio

from reconciler.webhooks.slots import Slots


async def take_turns(slots: Slots, arrivals: list[tuple[str, bool]]) -> list[str]:
    order: list[str] = []
    opened = asyncio.Event()

    async def hold(name: str, live: bool) -> None:
        async with slots.held(live=live):
            order.append(name)
            await opened.wait()

    holder = asyncio.create_task(hold("first", False))
    await asyncio.sleep(0)
    waiters = []
    for name, live in arrivals:
        waiters.append(asyncio.create_task(hold(name, live)))
        await asyncio.sleep(0)
    opened.set()
    await asyncio.gather(holder, *waiters)
    return order


def test_a_waiting_live_delivery_goes_before_replays_that_waited_longer() -> None:
    arrivals = [("replay-1", False), ("replay-2", False), ("live-1", True), ("replay-3", False), ("live-2", True)]
    order = asyncio.run(take_turns(Slots(1), arrivals))
    assert order == ["first", "live-1", "live-2", "replay-1", "replay-2", "replay-3"]


def test_no_more_hold_a_slot_than_there_are_slots() -> None:
    slots, holding, most = Slots(3), [0], [0]

    async def send(live: bool) -> None:
        async with slots.held(live=live):
            holding[0] += 1
            most[0] = max(most[0], holding[0])
            await asyncio.sleep(0.001)
            holding[0] -= 1

    async def many() -> None:
        await asyncio.gather(*(send(n % 3 == 0) for n in range(50)))

    asyncio.run(many())
    assert most[0] == 3 and slots.free == 3


def test_a_cancelled_waiter_gives_its_place_and_its_slot_back() -> None:
    async def scenario() -> list[str]:
        slots, order = Slots(1), []
        release = asyncio.Event()

        async def hold(name: str, live: bool) -> None:
            async with slots.held(live=live):
                order.append(name)
                await release.wait()

        first = asyncio.create_task(hold("first", False))
        await asyncio.sleep(0)
        gone = asyncio.create_task(hold("gone", True))
        later = asyncio.create_task(hold("later", False))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        await asyncio.gather(first, later, gone, return_exceptions=True)
        return order

    assert asyncio.run(scenario()) == ["first", "later"]
