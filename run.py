"""Start sagashop: the six services (or some of them), the bus bridge and the HTTP front door.

python run.py                        everything in one process, on http://127.0.0.1:3000
python run.py --services order,user  a subset; run the rest elsewhere on the same Redis
python run.py --help                 every setting, with its environment variable
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import ExitStack
from dataclasses import replace

from aiohttp import web

from sagashop import config
from sagashop.embedded_redis import NoRedisServer, embedded_redis
from sagashop.http import create_app

log = logging.getLogger("sagashop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    config.add_arguments(parser)
    try:
        settings = config.load(parser.parse_args(argv))
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    with ExitStack() as stack:
        if settings.redis_url is None:
            try:
                url = stack.enter_context(embedded_redis(settings.data_dir))
            except NoRedisServer as error:
                log.error("%s", error)
                return 1
            settings = replace(settings, redis_url=url)
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=lambda text: log.info("%s", text.strip("= \n")),
            access_log=log if settings.log_level == "DEBUG" else None,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
