"""sagashop: an in-game item purchase saga, choreographed by six pykka actors over Redis.

The public face: `Settings` (every setting, see `sagashop.config`), `running_node` (one process
of the system, started and stopped) and `create_app` (its aiohttp front door).
"""

from sagashop.bootstrap import running_node
from sagashop.config import Settings
from sagashop.http import create_app

__all__ = ["Settings", "create_app", "running_node"]
