"""The asyncio client: `rawws.connect`, chat state, login, reconnect and the terminal UI."""
