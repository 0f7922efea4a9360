"""The six services of the purchase saga, and the small runtime they share.

Happy path:  order.created -> balance.reserved -> inventory.reserved -> item.reserved
             -> payment.processed -> order.completed (user, inventory and item confirm;
             notification tells the user).
A failure is undone newest first: each service releases what it holds when the service after
it rejects or releases, and the order is cancelled once the user's money is back.
"""

from sagashop.actors import inventory, item, notification, order, payment, user
from sagashop.actors.runtime import Service

SERVICES: dict[str, Service] = {
    module.SERVICE.name: module.SERVICE
    for module in (order, user, inventory, item, payment, notification)
}
