"""The asyncio pieces both ends of the library share (the server's and the client's connections).

inbox.py   ``Inbox``: received messages waiting for ``recv()``, bounded, with the order of replies kept
closed.py  ``closed_error``: the ``ConnectionClosedOK``/``ConnectionClosedError`` for a close code
"""
