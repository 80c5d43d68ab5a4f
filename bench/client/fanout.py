"""The fan-out scenario: one sender, N receivers on ``/fanout``, every copy checked; burst, then lock-step."""

from __future__ import annotations

import dataclasses
import random
import select
import socket
import time

from bench.client.common import (
    EPOLLIN,
    RECV_SIZE,
    Target,
    ValidationError,
    percentile,
    proc_cpu_s,
    proc_rss_kib,
    self_cpu_s,
    system_busy_s,
    wait_quiet,
)
from bench.client.connections import close_all, open_connections
from bench.client.frames import prebuilt_frames, ws_client_frame


class FanoutLoad:
    """One sender and ``len(receivers)`` receivers on the broadcast endpoint; every copy is checked.

    The ``k`` messages are distinct (each payload starts with its index) and the
    sender sends them in that order, over and over, so every receiver must see
    exactly that ring, in order: checking what arrived is one byte comparison
    against the expected stream. The sender must receive nothing (a broadcast
    does not go back to its sender). Keepalive pings are answered and skipped;
    a close frame or anything else is an error.
    """

    def __init__(
        self,
        target: Target,
        sender: socket.socket,
        receivers: list[socket.socket],
        size: int,
        k: int,
        seed: int,
    ) -> None:
        self.ws = target.protocol == "ws"
        requests, replies = prebuilt_frames(target, size, k, seed)
        self.req_len = len(requests[0])
        self.rep_len = len(replies[0])
        self.k = k
        self.req2 = memoryview(b"".join(requests) * 2)
        self.exp2 = memoryview(b"".join(replies) * 2)
        self.sender = sender
        self.receivers = receivers
        n = len(receivers)
        self.got = [0] * n  # messages received and checked, per receiver
        self.inbuf = [bytearray() for _ in range(n)]
        self.sender_buf = bytearray()
        self.sent = 0
        self.pong_rng = random.Random(seed + 2)
        self.ep = select.epoll()
        self.index: dict[int, int] = {}
        for i, s in enumerate(receivers):
            s.setblocking(False)
            self.index[s.fileno()] = i
            self.ep.register(s.fileno(), EPOLLIN)
        sender.settimeout(
            10.0
        )  # sendall blocks at most this long; reads happen only when epoll says so
        self.index[sender.fileno()] = -1
        self.ep.register(sender.fileno(), EPOLLIN)

    def close(self) -> None:
        self.ep.close()

    @property
    def delivered(self) -> int:
        return self.sent * len(self.receivers)

    def send(self, count: int) -> None:
        """The next ``count`` messages of the ring, back to back, in one write."""
        j = self.sent % self.k
        self.sender.sendall(self.req2[j * self.req_len : (j + count) * self.req_len])
        self.sent += count

    def wait_all(self, deadline: float) -> None:
        """Until every receiver has every message sent so far (``TimeoutError`` at the monotonic ``deadline``)."""
        self._pump(deadline, until_complete=True)

    def expect_nothing(self, wait_s: float) -> None:
        """Check that nothing but what was due arrives for ``wait_s`` seconds and no partial frame is left."""
        self._pump(time.monotonic() + wait_s, until_complete=False)
        partial = [i for i, b in enumerate(self.inbuf) if b]
        if partial:
            i = partial[0]
            raise ValidationError(
                f"receiver {i}: {len(self.inbuf[i])} stray bytes after the last message {bytes(self.inbuf[i][:12])!r}"
            )

    def _pump(self, deadline: float, *, until_complete: bool) -> None:
        ep, index, receivers, inbuf, got = (
            self.ep,
            self.index,
            self.receivers,
            self.inbuf,
            self.got,
        )
        exp2, rep_len, k = self.exp2, self.rep_len, self.k
        monotonic = time.monotonic
        target = self.sent
        behind = sum(1 for g in got if g < target)
        while behind or not until_complete:
            remaining = deadline - monotonic()
            if remaining <= 0:
                if not until_complete:
                    return
                short = [i for i, g in enumerate(got) if g < target]
                raise TimeoutError(
                    f"{len(short)} of {len(receivers)} receivers still short of the {target} messages sent "
                    f"(receiver {short[0]} has {got[short[0]]})"
                )
            for fd, _ev in ep.poll(min(remaining, 0.5)):
                i = index[fd]
                if i < 0:
                    self._sender_readable()
                    continue
                data = receivers[i].recv(RECV_SIZE)
                if not data:
                    left = f"; unread {bytes(inbuf[i][:16])!r}" if inbuf[i] else ""
                    raise ValidationError(
                        f"server closed receiver {i} ({got[i]} of {target} messages received{left})"
                    )
                buf = inbuf[i]
                buf += data
                m = len(buf) // rep_len
                if not m:
                    continue
                g = got[i]
                n = m * rep_len
                a = (g % k) * rep_len
                if (
                    g + m <= target and m <= k and buf.startswith(exp2[a : a + n])
                ):  # a memcmp, no copies
                    del buf[:n]
                    got[i] = g + m
                else:
                    self._check_slowly(i, target)
                if g < target <= got[i]:
                    behind -= 1

    def _check_slowly(self, i: int, target: int) -> None:
        """Frame by frame: answer and skip pings, reject anything not expected."""
        buf, got, rep_len = self.inbuf[i], self.got, self.rep_len
        while buf:
            if self.ws:
                control = self._control_frame(buf, self.receivers[i], f"receiver {i}")
                if control > 0:
                    continue
                if control < 0:
                    return
            if len(buf) < rep_len:
                return
            if got[i] >= target:
                raise ValidationError(
                    f"receiver {i}: more than the {target} messages sent ({bytes(buf[:12])!r})"
                )
            a = (got[i] % self.k) * rep_len
            if buf[:rep_len] != self.exp2[a : a + rep_len]:
                raise ValidationError(
                    f"receiver {i}: message {got[i]} is not the one sent ({bytes(buf[:12])!r}; "
                    f"expected {bytes(self.exp2[a : a + 12])!r})"
                )
            del buf[:rep_len]
            got[i] += 1

    def _sender_readable(self) -> None:
        data = self.sender.recv(RECV_SIZE)
        if not data:
            raise ValidationError("server closed the sender's connection")
        buf = self.sender_buf
        buf += data
        while buf:
            control = self._control_frame(buf, self.sender, "sender") if self.ws else 0
            if control < 0:
                return
            if control == 0:
                raise ValidationError(
                    f"the sender received {bytes(buf[:12])!r}: a broadcast must not go back to its sender"
                )

    def _control_frame(self, buf: bytearray, sock: socket.socket, who: str) -> int:
        """A ping at the front of ``buf`` is answered and removed (1); a close frame is an error.

        0: no control frame there; -1: the start of one, wait for the rest.
        """
        if buf[0] not in (0x89, 0x88):
            return 0
        if len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            return -1
        n = buf[1] & 0x7F
        if buf[0] == 0x88:
            code = int.from_bytes(buf[2:4], "big") if n >= 2 else None
            raise ValidationError(
                f"server closed {who} with a close frame ({code} {bytes(buf[4 : 2 + n])!r})"
            )
        pong = ws_client_frame(bytes(buf[2 : 2 + n]), opcode=0xA, rng=self.pong_rng)
        try:
            sock.send(pong)
        except BlockingIOError:
            pass
        del buf[: 2 + n]
        return 1


def peak_rss_kib(pid: int) -> int:
    """The server's peak RSS (``VmHWM``) since it started or since ``reset_peak_rss``."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Reset the server's ``VmHWM`` to its RSS now (Linux: ``5`` to ``clear_refs``); whether it could.

    Without it, the peak read after a phase is the process's lifetime peak
    (the start-up, opening 1,000 connections, the smaller fan-out before), not the phase's.
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def fanout_phase(
    load: FanoutLoad,
    pid: int,
    *,
    burst: int,
    duration_s: float,
    max_deliveries: int,
    timeout_s: float,
) -> dict:
    """Send ``burst`` messages back to back, wait until every receiver has them all, again until ``duration_s``.

    ``burst=1`` is lock-step: one message, wait until all receivers have it, the next.
    """
    n = len(load.receivers)
    max_messages = max(burst, max_deliveries // n)
    deadline = time.monotonic() + timeout_s
    perf_ns = time.perf_counter_ns
    samples: list[int] = []
    m0, c0, s0, b0 = load.sent, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
    t0 = time.perf_counter()
    while True:
        ts = perf_ns()
        load.send(burst)
        load.wait_all(deadline)
        samples.append(perf_ns() - ts)
        if (
            time.perf_counter() - t0 >= duration_s
            or load.sent - m0 + burst > max_messages
        ):
            break
    elapsed = time.perf_counter() - t0
    m1, c1, s1, b1 = load.sent, proc_cpu_s(pid), self_cpu_s(), system_busy_s()
    messages = m1 - m0
    deliveries = messages * n
    server_cpu = c1 - c0
    samples.sort()
    return {
        "messages": messages,
        "deliveries": deliveries,
        "cycles": len(samples),
        "elapsed_s": elapsed,
        "deliveries_per_s": deliveries / elapsed,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / deliveries * 1e6,
        "server_cpu_util": server_cpu / elapsed,
        "client_cpu_util": (s1 - s0) / elapsed,
        "other_cpu_cores": max(0.0, (b1 - b0) - server_cpu - (s1 - s0)) / elapsed,
        # send of the first message of a cycle → the last receiver has the last one
        "cycle_p50_us": percentile(samples, 50) / 1e3,
        "cycle_p99_us": percentile(samples, 99) / 1e3,
    }


def fanout_benchmark(
    target: Target,
    pid: int,
    *,
    receivers: int,
    burst: int,
    size: int,
    duration_s: float,
    max_deliveries: int,
    validation_bursts: int = 2,
    timeout_s: float = 60.0,
) -> dict:
    """Broadcast from one sender to ``receivers`` connections on ``/fanout``: burst, then lock-step.

    Everyone (receivers first, the sender last) is connected and upgraded, and
    the server left to settle (no CPU used for 0.2 s) so that every connection
    is registered before anything is sent. Validation: ``validation_bursts``
    bursts, each awaited on every receiver and checked, then nothing more may
    arrive. Burst: ``burst`` messages back to back, wait until every receiver
    has all of them, repeated for ``duration_s``. Lock-step: one message, wait
    until every receiver has it, repeated for ``duration_s``. Every copy is
    checked in both timed phases too. The server's peak RSS is measured from the
    first validation burst to the end of the burst phase (``VmHWM`` reset to the
    idle RSS before), beside that idle RSS.
    """
    fan = dataclasses.replace(target, path="/fanout")
    socks, open_s = open_connections(
        fan, receivers, min(receivers, 100), timeout_s=timeout_s
    )
    try:
        more, _ = open_connections(fan, 1, 1, timeout_s=10.0)
    except BaseException:
        close_all(fan, socks)
        raise
    socks += more
    load = FanoutLoad(fan, socks[-1], socks[:-1], size, burst, seed=1000 + receivers)
    try:
        wait_quiet(pid, quiet_s=0.2)
        # from the first message on: the validation bursts have the burst phase's shape, and
        # what they make the heap grow to stays in RSS (freed memory is reused, rarely returned)
        isolated = reset_peak_rss(pid)
        rss_before = proc_rss_kib(
            pid
        )  # after the reset: the peak can only be at or above it
        deadline = time.monotonic() + timeout_s
        for _ in range(validation_bursts):
            load.send(burst)
            load.wait_all(deadline)
        load.expect_nothing(0.05)
        validated = load.delivered
        burst_phase = fanout_phase(
            load,
            pid,
            burst=burst,
            duration_s=duration_s,
            max_deliveries=max_deliveries,
            timeout_s=timeout_s,
        )
        peak = peak_rss_kib(pid)
        burst_phase.update(
            rss_before_mb=rss_before / 1024,
            peak_rss_mb=peak / 1024,
            # how much the burst added to what the idle connections already held
            peak_rss_growth_mb=(peak - rss_before) / 1024,
            peak_rss_isolated=isolated,
        )
        load.expect_nothing(0.02)
        lockstep_phase = fanout_phase(
            load,
            pid,
            burst=1,
            duration_s=duration_s,
            max_deliveries=max_deliveries,
            timeout_s=timeout_s,
        )
        load.expect_nothing(0.05)
    finally:
        load.close()
        close_all(fan, socks)
    return {
        "receivers": receivers,
        "size": size,
        "burst_messages": burst,
        "open_s": open_s,
        "validated_deliveries": validated,
        "burst": burst_phase,
        "lockstep": lockstep_phase,
        "total_deliveries_checked": load.delivered,
    }
