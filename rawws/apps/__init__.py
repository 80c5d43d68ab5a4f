"""The server API for applications: API keys, the /api/v1 calls, publishing exactly once, feed rooms, streamed messages, hooks."""
