"""TLS for the server: the contexts spikard builds, and reloading their certificates.

Every context spikard builds (the command line's ``--ssl-certfile``, :func:`server_context`,
:class:`ReloadingContext`) refuses TLS below 1.2, offers ALPN ``http/1.1`` (so a client that
prefers h2 settles on HTTP/1.1 in the handshake) and checks client certificates only when
asked to, against the CA certificates it was given (never the system's store, which would
let any publicly issued certificate in). A context the application builds itself
(``app.run(ssl_context=...)``) is used exactly as given.

Reloading: a :class:`ReloadingContext` holds the context new connections get. Its
:meth:`~ReloadingContext.reload` (called on SIGHUP) reads the files again into a new context;
connections already open keep theirs (an ``SSLObject`` stays bound to the context it was made
from), and a reload that fails keeps the previous context and logs one ERROR line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import ssl
from collections.abc import Callable

__all__ = [
    "CERT_REQS",
    "ReloadingContext",
    "TLSConfig",
    "TLSConfigError",
    "describe_handshake_failure",
    "parse_cert_reqs",
    "server_context",
]

logger = logging.getLogger("spikard.server")

ALPN_PROTOCOLS = ("http/1.1",)
"""What the server offers in ALPN: spikard speaks HTTP/1.1 (and WebSocket over it) only."""

CERT_REQS: dict[str, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
"""``--ssl-cert-reqs`` names; uvicorn's integers 0, 1 and 2 mean the same, in this order."""

Password = str | bytes | Callable[[], str | bytes]


class TLSConfigError(Exception):
    """A TLS file cannot be loaded, or the options contradict each other.

    ``str(error)`` is one line that names the file (or the option) and the reason.
    """


def parse_cert_reqs(value: str | int) -> ssl.VerifyMode:
    """``none``/``optional``/``required`` (any case) or ``0``/``1``/``2`` as a verify mode.

    Raises:
        ValueError: anything else; the message lists what is accepted.
    """
    text = str(value).strip().lower()
    if text in CERT_REQS:
        return CERT_REQS[text]
    if text in ("0", "1", "2"):
        return ssl.VerifyMode(int(text))
    raise ValueError(f"unknown client certificate mode {value!r}: use none, optional or required")


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or re.sub(r"^\[SSL\] | \(_ssl\.c:\d+\)$", "", str(exc.strerror or exc))
    return exc.strerror or str(exc)


def _chain_reason(exc: OSError, certfile: str, keyfile: str | None) -> str:
    """What ``load_cert_chain`` could not do; OpenSSL says only "PEM lib" for most of it."""
    reason = _reason(exc)
    key = "the file" if keyfile is None else f"the key file {keyfile!r}"
    if not isinstance(exc, ssl.SSLError):  # a file that cannot be opened
        return f"cannot read {key}: {reason}" if os.path.exists(certfile) else reason
    if exc.reason is not None:  # KEY_VALUES_MISMATCH and the like
        return reason if keyfile is None else f"{reason} ({key})"
    try:
        with open(certfile, "rb") as file:
            has_certificate = b"-----BEGIN CERTIFICATE-----" in file.read(1 << 20)
    except OSError:
        has_certificate = False
    if not has_certificate:
        return f"no PEM certificate in it ({reason})"
    return f"{key} has no private key that can be read (not PEM, or a wrong password) ({reason})"


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    *,
    ca_certs: str | os.PathLike[str] | None = None,
    cert_reqs: ssl.VerifyMode = ssl.CERT_NONE,
    password: Password | None = None,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """A server-side TLS context as spikard builds it (the command line uses this).

    Args:
        certfile: PEM file with the certificate chain (and the key, without ``keyfile``).
        keyfile: PEM file with the private key.
        ca_certs: PEM file (or directory of hashed PEM files) of the CAs whose client
            certificates are accepted; needed by ``cert_reqs`` optional or required.
        cert_reqs: ``ssl.CERT_NONE`` (no client certificate asked for), ``CERT_OPTIONAL``
            (asked for, checked when sent) or ``CERT_REQUIRED`` (a handshake without a
            trusted one fails).
        password: the private key's password, or a callable returning it.
        minimum_version: the oldest TLS version accepted.

    Raises:
        TLSConfigError: a file cannot be loaded (missing, unreadable, not PEM, a key that
            does not match the certificate, a wrong password), or ``ca_certs`` and
            ``cert_reqs`` do not go together.
    """
    if cert_reqs != ssl.CERT_NONE and ca_certs is None:
        raise TLSConfigError(
            "client certificates (cert_reqs optional or required) need ca_certs: "
            "the CA certificates that issue them"
        )
    if cert_reqs == ssl.CERT_NONE and ca_certs is not None:
        raise TLSConfigError(
            "ca_certs checks client certificates only with cert_reqs optional or required"
        )
    # PROTOCOL_TLS_SERVER starts from Python's secure defaults (no compression, server
    # cipher preference, fresh (EC)DH keys) and loads no CA store: nothing is trusted
    # unless ca_certs says so.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = minimum_version
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    try:
        context.load_cert_chain(certfile, keyfile, password)
    except (OSError, ssl.SSLError) as exc:
        reason = _chain_reason(
            exc, os.fspath(certfile), None if keyfile is None else os.fspath(keyfile)
        )
        raise TLSConfigError(
            f"cannot load the TLS certificate {os.fspath(certfile)!r}: {reason}"
        ) from None
    if ca_certs is not None:
        where = os.fspath(ca_certs)
        try:
            if os.path.isdir(where):
                context.load_verify_locations(capath=where)
            else:
                context.load_verify_locations(cafile=where)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot load the CA certificates {where!r}: {_reason(exc)}"
            ) from None
        context.verify_mode = cert_reqs
    return context


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    """The files and options of a server context; :meth:`load` builds it.

    The arguments are those of :func:`server_context`.
    """

    certfile: str
    keyfile: str | None = None
    ca_certs: str | None = None
    cert_reqs: ssl.VerifyMode = ssl.CERT_NONE
    password: Password | None = dataclasses.field(default=None, repr=False)
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2

    def load(self) -> ssl.SSLContext:
        """Read the files into a new context.

        Raises:
            TLSConfigError: as :func:`server_context` does.
        """
        return server_context(
            self.certfile,
            self.keyfile,
            ca_certs=self.ca_certs,
            cert_reqs=self.cert_reqs,
            password=self.password,
            minimum_version=self.minimum_version,
        )


class ReloadingContext:
    """A server context that :meth:`reload` (SIGHUP) builds again from its files.

    Pass it where a context goes (``app.run(ssl_context=ReloadingContext(config))``); the
    command line makes one from ``--ssl-certfile`` and friends.

    Args:
        config: the files and options.

    Raises:
        TLSConfigError: the files cannot be loaded now (so a server never starts without
            a certificate).
    """

    def __init__(self, config: TLSConfig) -> None:
        self.config = config
        self._context = config.load()

    @property
    def context(self) -> ssl.SSLContext:
        """The context new connections get: the last one that loaded."""
        return self._context

    def reload(self) -> bool:
        """Read the files again; new connections get the new context, open ones keep theirs.

        Returns:
            True when the new files are in use; False when they could not be loaded: the
            previous context stays, and one ERROR line says why.
        """
        try:
            context = self.config.load()
        except TLSConfigError as exc:
            logger.error("TLS reload failed, keeping the previous certificate: %s", exc)
            return False
        self._context = context
        logger.info("reloaded the TLS certificate from %r", self.config.certfile)
        return True


def _version_name(version: ssl.TLSVersion) -> str:
    """``TLSv1_2`` as ``TLS 1.2``."""
    return version.name.replace("TLSv", "TLS ").replace("_", ".")


def describe_handshake_failure(exc: ssl.SSLError, context: ssl.SSLContext) -> str:
    """Why a server-side handshake failed, in words, for its one log line."""
    reason = exc.reason or exc.strerror or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the client certificate was refused: {exc.verify_message} ({reason})"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return f"the client sent no certificate, and one is required ({reason})"
    if reason == "UNSUPPORTED_PROTOCOL":
        minimum = context.minimum_version
        if minimum.name.startswith("TLSv"):
            below = f"only TLS versions below {_version_name(minimum)}"
        else:
            below = "no TLS version the server accepts"
        return f"the client offers {below} ({reason})"
    return reason
