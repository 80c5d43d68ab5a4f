"""Exit codes of `rawws send` and `rawws chat` (``rawws.errors.ClientFailure`` carries one), and of `rawws serve`.

A script tells "could not connect" from "refused" from "timed out" by the code alone, so the codes are
part of the interface: they live in one place, and the `--help` epilogs are built from them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CANNOT_CONNECT = 3
EXIT_REFUSED = 4
EXIT_TIMEOUT = 5
EXIT_CLOSED_WITH_ERROR = 6
EXIT_NOT_STORED = (
    7  # `rawws send --user`: the chat server answered the message with an error
)
EXIT_INTERRUPTED = (
    130  # Ctrl-C before the connection was open (`rawws serve`: before it listened)
)
EXIT_CANNOT_SERVE = (
    1  # `rawws serve`: a bad flag, variable, file, URL or database, said in one line
)

CLIENT_EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}  done; the connection closed normally
  {EXIT_USAGE}  usage error (bad arguments or URL)
  {EXIT_CANNOT_CONNECT}  could not connect (name resolution, TCP, TLS)
  {EXIT_REFUSED}  the server refused the upgrade (HTTP status shown) or answered it wrongly,
     or refused the login (--user), or is not the chat (--user: no welcome)
  {EXIT_TIMEOUT}  timed out (connecting, the handshake, or the closing handshake)
  {EXIT_CLOSED_WITH_ERROR}  the connection closed with an error code (shown), or was lost
     (chat: and reconnecting gave up)
"""
SEND_EXIT_CODES = (
    CLIENT_EXIT_CODES
    + f"""\
  {EXIT_NOT_STORED}  --user: the server did not store the message (its error shown)
"""
)
CHAT_EXIT_CODES = (
    CLIENT_EXIT_CODES
    + f"""\
  {EXIT_NOT_STORED}  --user: lines typed or piped were not stored when it quit (how many shown)
"""
)
SERVE_EXIT_CODES = (
    f"exit codes: {EXIT_OK} stopped by SIGTERM or SIGINT (once listening: after a graceful shutdown; "
    f"SIGTERM while starting too); {EXIT_CANNOT_SERVE} a bad flag, variable, file, URL or database, said in "
    f"one line naming it; {EXIT_INTERRUPTED} Ctrl-C (SIGINT) before it listened."
)
