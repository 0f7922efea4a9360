"""The aiohttp front door: the original project's REST API, over `Node.ask`."""

from sagashop.http.app import NODE, create_app

__all__ = ["NODE", "create_app"]
