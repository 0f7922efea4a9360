"""The names that travel between processes besides the events': the services, and the
requests one process may ask of a service wherever it runs (see `Node.ask`).

Like the event names in `sagashop.events` they live in one place: a service's declaration takes
its name from here and says which requests it answers (`Service.commands` and `.queries`); a
test finds any service name written out elsewhere (`tests/unit/test_layout.py`).
"""

from enum import StrEnum


class ServiceName(StrEnum):
    """The six services, in the order a purchase reaches them."""

    ORDER = "order"
    USER = "user"
    INVENTORY = "inventory"
    ITEM = "item"
    PAYMENT = "payment"
    NOTIFICATION = "notification"


class Request(StrEnum):
    PLACE_ORDER = "place_order"
    GET_ORDER = "get_order"
    GET_ORDER_STATUS = "get_order_status"
    LIST_USER_ORDERS = "list_user_orders"
    LIST_ORDERS = "list_orders"
    COUNT_ORDERS = "count_orders"
    CREATE_USER = "create_user"
    GET_USER = "get_user"
    GET_USERS = "get_users"
    CREATE_ITEM = "create_item"
    GET_ITEM = "get_item"
    GET_ITEMS = "get_items"
    LIST_ITEMS = "list_items"
    GET_INVENTORY = "get_inventory"
    LIST_NOTIFICATIONS = "list_notifications"
    CONFIGURE_PAYMENTS = "configure_payments"
    PAYMENT_SETTINGS = "payment_settings"

    SETTLED_ORDERS = "settled_orders"
    """Which orders owe nothing and ended before a moment: retention asks, for every service."""

    ORDER_STATE = "order_state"
    """What a service holds for one order: a service that answers it is stateful."""
    AUDIT_FACTS = "audit_facts"
    """Rows the audit checks: a service that answers it is audited."""

    TIMELINE = "timeline"
    """The steps a service took for one order (every service answers it: see `Node`)."""
    DEAD_LETTERS = "dead_letters"
    COUNT_DEAD_LETTERS = "count_dead_letters"
    REPLAY_DEAD_LETTER = "replay_dead_letter"
