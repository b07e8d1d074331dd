"""HTTPS for ``setpoint serve``: the certificate and key, checked before the server starts.

uvicorn terminates TLS itself (``ssl_certfile``/``ssl_keyfile``). A file that is
missing, unreadable, not PEM, encrypted, or a key that does not belong to the
certificate is a :class:`UsageError` naming the file and the fix, before any worker
starts, instead of a traceback from inside uvicorn (or its prompt for a passphrase).
The context is Python's server default (TLS 1.2 at least) with forward-secret AEAD
ciphers only for TLS 1.2; TLS 1.3 suites are OpenSSL's.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.errors import UsageError

# TLS 1.2 suites: ECDHE or DHE key exchange (forward secrecy) and AEAD encryption.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


@dataclass(frozen=True)
class TLSFiles:
    """A certificate chain and its private key that load together."""

    cert: Path
    key: Path

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "ssl_ciphers": CIPHERS,
        }


class _Encrypted(Exception):
    """Raised from the passphrase callback: the key needs one."""


def _ask_passphrase() -> bytes:
    raise _Encrypted


def check_tls(cert: str | Path | None, key: str | Path | None) -> TLSFiles | None:
    """The TLS files to serve with (None for plain HTTP), or a UsageError naming the fix."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError(
            "give both --tls-cert and --tls-key: the server's certificate (PEM, with any "
            "intermediate certificates after it) and its private key (PEM)"
        )
    cert_path, key_path = Path(cert).expanduser().resolve(), Path(key).expanduser().resolve()
    cert_pem = _read("--tls-cert", cert_path)
    key_pem = _read("--tls-key", key_path)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise UsageError(
            f"--tls-cert {cert}: holds no PEM certificate (a block starting with "
            "-----BEGIN CERTIFICATE-----); give the server's certificate"
        )
    if b"PRIVATE KEY-----" not in key_pem:
        raise UsageError(
            f"--tls-key {key}: holds no PEM private key (a block starting with "
            "-----BEGIN PRIVATE KEY-----); give the certificate's private key"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path, password=_ask_passphrase)
        context.set_ciphers(CIPHERS)
    except _Encrypted:
        raise UsageError(
            f"--tls-key {key}: the key is encrypted with a passphrase, which the server "
            "cannot ask for; give it an unencrypted copy readable only by its user "
            "(openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UsageError(
                f"--tls-key {key} is not the private key of the certificate in "
                f"--tls-cert {cert}; give the key the certificate was issued for"
            ) from None
        raise UsageError(
            f"--tls-cert {cert} and --tls-key {key} cannot be loaded together "
            f"({exc.reason or exc}); check that both are PEM and belong together"
        ) from None
    except OSError as exc:  # a file changed between reading and loading
        raise UsageError(f"the TLS files cannot be read: {exc.strerror or exc}") from None
    return TLSFiles(cert_path, key_path)


def _read(flag: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path}: is a folder; give the PEM file in it") from None
    except OSError as exc:
        raise UsageError(
            f"{flag} {path}: cannot be read ({exc.strerror or exc}); make it readable by "
            "the user running the server"
        ) from None
