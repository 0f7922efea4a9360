"""Whoever reaches Redis cannot show an operator's monitor page steps that were never taken:
the monitor channel is signed like every other, and what a page gets is rebuilt from checked
fields. Each message dropped is counted (`sagashop_bus_rejected_total`)."""

from __future__ import annotations

import json

from sagashop.transport.signing import BusKeys, Signer
from tests.support import Shop, eventually, on_systems
from tests.system.test_monitor import _now, watching

pytestmark = on_systems("sqlite-pubsub")  # the monitor channel is Pub/Sub on every transport

STEP = {
    "orderId": "f7b0f3c4-0a52-4b5e-9a56-2f8f2b1d1c11",
    "service": "order",
    "step": "create",
    "handled": "place_order",
    "event": "order.created",
    "kind": "forward",
    "reason": None,
    "at": "2026-12-04T12:00:00.000000+00:00",
}


async def test_what_a_stranger_publishes_on_the_monitor_channel_never_reaches_a_page(
    shop: Shop,
) -> None:
    assert shop.node is not None
    node, channel = shop.node, shop.node.channels.monitor()
    stranger = Signer(BusKeys.parse("x:a-key-this-system-does-not-know"), node.settings.namespace)
    rejected = dict(node.signer.rejected)
    forged = [
        json.dumps({"node": "evil", "steps": [{**STEP, "orderId": "evil-1"}], "missed": 999999}),
        json.dumps({"steps": [1, 2, 3]}),
        stranger.sign(channel, json.dumps({"node": "evil", "steps": [], "missed": 7})),
        node.signer.sign(channel, json.dumps({"node": "n", "steps": [1, 2, 3], "missed": 0})),
        node.signer.sign(channel, json.dumps({"node": "n", "steps": [], "missed": -5})),
        node.signer.sign(
            channel, json.dumps({"node": "n", "steps": [{**STEP, "extra": "<b>"}], "missed": 0})
        ),
    ]
    async with watching(shop) as stream:
        for message in forged:
            await node.redis.publish(channel, message)
        genuine = {"node": "n", "steps": [STEP], "missed": 0}
        await node.redis.publish(channel, node.signer.sign(channel, json.dumps(genuine)))
        await eventually(lambda: _now(stream.of(STEP["orderId"])), within=5)

    assert stream.of("evil-1") == []
    assert stream.missed == 0
    assert [step for step in stream.steps if step.get("extra")] == []
    assert stream.steps == [STEP]
    counted = {reason: n - rejected.get(reason, 0) for reason, n in node.signer.rejected.items()}
    assert counted == {"unsigned": 2, "unknown_key": 1, "invalid": 3}
