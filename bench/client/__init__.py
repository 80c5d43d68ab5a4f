"""The one fixed load client: raw sockets, an epoll loop, pre-built frames, every reply checked.

Run as its own process by the harness (``python -m bench.client --port P --server-pid PID …``);
it prints one JSON object per finished scenario on stdout, so the harness can
show progress as it goes.

What it does, and what it does not:

* Client frames are built once, before anything is timed: binary messages
  (opcode 0x2), masked with a random key per frame as RFC 6455 requires of a
  client. A window holds ``W`` distinct messages (each payload starts with its
  index), so a reply that comes back out of order, twice or damaged is caught.
* The server's reply to a frame is known exactly (the same payload, unmasked,
  with a 2- or 4-byte header), so checking a reply is one byte comparison
  against the expected stream. Every reply is checked, in the timed phase too;
  before the timed phase a validation pass sends ``W`` messages per connection
  a few times, waits for every reply, and checks the count and that nothing
  more arrives.
* The floor speaks its own length-prefixed protocol (4-byte length + payload
  each way); "handshake" there is TCP connect + close.
* Server CPU time comes from ``/proc/<pid>/stat`` (utime+stime, all threads),
  server memory from ``VmRSS`` in ``/proc/<pid>/status``; the client's own CPU
  share is reported too, so a run where the client, not the server, was the
  limit can be seen (``client_cpu_util`` near 1.0).
"""
