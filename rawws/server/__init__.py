"""The asyncio edge of `rawws serve`: accept, the h11 request loop, the upgrade hand-off, sessions, pages, wiring."""
