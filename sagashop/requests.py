"""The requests one process may ask of a service, wherever it runs (see `Node.ask`).

Like the event names in `sagashop.events`, these names travel between processes, so they live in
one place; a service declares which of them it answers (`Service.commands` and `.queries`).
"""

from enum import StrEnum


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
    CONFIGURE_PAYMENTS = "configure"
    PAYMENT_SETTINGS = "payment_settings"

    ORDER_STATE = "order_state"
    """What a service holds for one order: a service that answers it is stateful."""
    AUDIT_FACTS = "audit_facts"
    """Rows the audit checks: a service that answers it is audited."""

    TIMELINE = "timeline"
    """The steps a service took for one order (every service answers it: see `Node`)."""
    DEAD_LETTERS = "dead_letters"
    COUNT_DEAD_LETTERS = "count_dead_letters"
    REPLAY_DEAD_LETTER = "replay_dead_letter"
