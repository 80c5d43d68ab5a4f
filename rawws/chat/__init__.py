"""The chat: its wire protocol, rooms and encode-once fan-out (hub), and the service that orders, stores and replays."""
