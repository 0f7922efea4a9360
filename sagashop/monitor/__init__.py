"""The live saga monitor: steps published while a page watches (`feed`), the pages' shared
subscription (`watchers`), and the page itself (`static/`, served by `sagashop.http.monitor`)."""

from sagashop.monitor.feed import StepFeed
from sagashop.monitor.watchers import CLOSED, Watchers

__all__ = ["CLOSED", "StepFeed", "Watchers"]
