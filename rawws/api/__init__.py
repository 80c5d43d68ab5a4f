"""The applications' client of the server API (``/api/v1``): publish, rooms, members, streams, over asyncio streams and h11."""
