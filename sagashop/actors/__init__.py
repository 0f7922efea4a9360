"""The six services of the purchase saga.

Forward:  order.created -> balance.reserved -> inventory.reserved -> item.reserved
          -> payment.processed -> order.completed
Settling: order.completed -> balance.spent -> inventory.filled -> item.sold
          -> notification.sent (the order service then owes nothing more)
Undoing:  newest first: each service gives back what it holds when the service after it
          rejects or gives back, and the order is cancelled once the user's money is back;
          an order past its deadline starts the same chain from the end (order.expired).

Each module reads top to bottom as "on this event, do this, publish that" and ends in a
`Service` declaration; `sagashop.saga` runs them and `sagashop.transport` carries their events.
This is the one list of the services: every other list (names, which are stateful or audited)
is derived from it.
"""

from sagashop.actors import inventory, item, notification, order, payment, user
from sagashop.saga import Service

SERVICES: tuple[Service, ...] = tuple(
    module.SERVICE for module in (order, user, inventory, item, payment, notification)
)
SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
