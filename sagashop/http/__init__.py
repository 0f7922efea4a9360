"""The aiohttp front door: the original project's REST API, over `Node.ask`."""

from sagashop.http.app import create_app
from sagashop.http.context import NODE

__all__ = ["NODE", "create_app"]
