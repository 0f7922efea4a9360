"""The six services of the purchase saga, and the small runtime they share.

Forward:  order.created -> balance.reserved -> inventory.reserved -> item.reserved
          -> payment.processed -> order.completed
Settling: order.completed -> balance.spent -> inventory.filled -> item.sold
          -> notification.sent (the order service then owes nothing more)
Undoing:  newest first: each service gives back what it holds when the service after it
          rejects or gives back, and the order is cancelled once the user's money is back;
          an order past its deadline starts the same chain from the end (order.expired).

Each service module reads top to bottom as "on this event, do this, publish that" and ends in
a `Service` declaration; `runtime` runs them, `steplog` makes each step take effect once, and
`bus` and `streams` carry the events between processes.
"""

from sagashop.actors import inventory, item, notification, order, payment, user
from sagashop.actors.runtime import Service

SERVICES: dict[str, Service] = {
    module.SERVICE.name: module.SERVICE
    for module in (order, user, inventory, item, payment, notification)
}
