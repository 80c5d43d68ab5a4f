"""`rawws serve …` on uvloop: install the uvloop policy, then call ``rawws.cli.main``.

rawws runs its server with ``asyncio.run``, which takes its loop from the
policy, so nothing in rawws changes. Usage: the same arguments as ``rawws``::

    python -m bench.servers.rawws_uvloop serve --echo --no-compression --port 9000
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from rawws.cli import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    raise SystemExit(main(sys.argv[1:]))
