"""What listening needs from the settings, each failure said of its setting: the TLS files and the bind.

``ssl.SSLContext.load_cert_chain`` reads the certificate and the key together
and, when either is wrong, says ``[SSL] PEM lib (_ssl.c:3905)`` of neither; so
each file is read on its own first. A failed bind says ``[Errno 99] Cannot
assign requested address`` without the address; ``bind_failure`` tells a host
that is not this machine's from a port that is taken or not allowed.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl

from rawws.errors import SettingError


def _read(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise SettingError(setting, path, "no such file") from None
    except OSError as exc:
        raise SettingError(
            setting, path, f"cannot read it ({exc.strerror or exc})"
        ) from None


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """The context serving ``https://`` and ``wss://`` with ``cert`` (a PEM chain) and ``key`` (a PEM private key)."""
    # Imported here, when TLS is configured: cryptography's x509 and serialization
    # are 14 MB of RSS, a third of an idle library server's (bench/LIMITS.md).
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        x509.load_pem_x509_certificates(_read("tls_cert", cert))
    except ValueError:
        raise SettingError(
            "tls_cert",
            cert,
            "not a PEM certificate (no -----BEGIN CERTIFICATE----- block that parses)",
        ) from None
    try:
        serialization.load_pem_private_key(_read("tls_key", key), password=None)
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        raise SettingError(
            "tls_key", key, "an encrypted private key: rawws needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SettingError("tls_key", key, "not a PEM private key") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError:  # both parsed alone: together they do not make a pair
        raise SettingError(
            "tls_key", key, f"not the private key of the certificate {cert}"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _bind_probe(host: str, port: int) -> OSError | None:
    """Bind (``host``, ``port``) once more, by hand, to learn why it fails: Python 3.13's asyncio reports a
    failed bind on every address as one ``OSError`` with no errno ("could not bind on any address out of …")."""
    try:
        addresses = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return exc
    return None


def bind_failure(
    exc: OSError, host: str, port: int, prefix: str = ""
) -> SettingError | None:
    """What a failed listen on (``host``, ``port``) was the fault of: ``{prefix}host`` or ``{prefix}port``
    (``metrics_`` for the metrics listener); ``None`` for an error that is neither's."""
    if not exc.errno and not isinstance(exc, socket.gaierror):
        exc = _bind_probe(host, port) or exc
    # asyncio words a failed bind its own way ("error while attempting to bind on address …"): the errno's is plainer
    said = (
        exc.strerror
        if isinstance(exc, socket.gaierror) or not exc.errno
        else os.strerror(exc.errno)
    )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return SettingError(
            prefix + "host",
            host,
            f"not an address of this machine ({said}): try 127.0.0.1, or 0.0.0.0 for all of them",
        )
    if exc.errno == errno.EADDRINUSE:
        return SettingError(
            prefix + "port",
            str(port),
            "in use by another process: stop it or pick another port "
            "(0 picks a free one)",
        )
    if exc.errno == errno.EACCES:
        return SettingError(
            prefix + "port",
            str(port),
            f"not allowed for this user ({said}): "
            "ports below 1024 need privileges; pick a higher one",
        )
    return None
