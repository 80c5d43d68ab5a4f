"""The reliability suite: `python -m soak` (`make soak`) runs a real `rawws serve` under load and abuse.

N clients over rooms for a duration, with exact accounting of every message
against the acks and the store (lost, duplicated, out of order, missed), while
the server is stopped with SIGTERM and SIGKILL and started again, slowloris and
silent sockets hold connections, a slow reader sits among fast ones, hostile
frames and JSON arrive, and (on PostgreSQL) the database goes away for a while.
Everything runs on 127.0.0.1, is bounded in count and time, and stops by itself.
"""
