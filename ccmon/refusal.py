"""Why a server refuses us, in one line, when it is not merely unreachable.

A wrong password, an untrusted certificate or a protocol mismatch will not fix itself, so the
processes stop with that line (exit 2) instead of retrying as for an outage (running.md).
Each function returns None when the failure looks like an outage: connection refused, a
timeout, or the server answering after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from ccmon.security import TLS_PROTOCOLS, KafkaOptions, describe, redis_address
from ccmon.settings import env_name

PROBE_SECONDS = 5.0

KAFKA_CA, KAFKA_CERT, KAFKA_KEY, PROTOCOL = (
    env_name(n) for n in ("kafka_ca_file", "kafka_cert_file", "kafka_key_file",
                          "kafka_security_protocol"))


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _closed_on_us(exc: BaseException) -> bool:
    """The server accepted the connection, then closed it: it wants another protocol."""
    return any(isinstance(cause, ConnectionResetError | asyncio.IncompleteReadError |
                          ssl.SSLEOFError | ssl.SSLZeroReturnError)
               or (isinstance(cause, KafkaConnectionError) and "closed" in str(cause))
               for cause in _causes(exc))


async def speaks_tls(host: str, port: int) -> bool:
    """True if a TLS handshake with host:port completes (its certificate unchecked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


async def _tls_mismatch(where: str, host: str, port: int, tls: bool, hint: str) -> str | None:
    """The line for a server that closed on us because one of us speaks TLS and the other
    does not; None if that is not it."""
    if tls and not await speaks_tls(host, port):
        return f"{where} does not speak TLS: is it a plaintext port? {hint}"
    if not tls and await speaks_tls(host, port):
        return f"{where} speaks TLS and we sent plaintext: {hint}"
    return None


def _tls_refusal(where: str, exc: BaseException, ca_setting: str) -> str | None:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"{where} has a TLS certificate we do not trust ({cause.verify_message}): "
                    f"set {ca_setting} to the CA that signed it")
    return None


# -- Kafka ------------------------------------------------------------------------------------

async def kafka_refusal(bootstrap: str, options: KafkaOptions) -> str | None:
    """The first bootstrap server's refusal of this client, or None."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        reason = await _kafka_refusal(host, int(port), options)
        if reason is not None:
            return reason
    return None


async def _kafka_refusal(host: str, port: int, options: KafkaOptions) -> str | None:
    where = f"Kafka at {host}:{port}"
    protocol = options.get("security_protocol", "PLAINTEXT")
    try:
        conn = await create_conn(host, port, request_timeout_ms=int(PROBE_SECONDS * 1000),
                                 **options)
        try:
            await conn.send(MetadataRequest([]))
        finally:
            conn.close()
        return None
    except SaslAuthenticationFailed as exc:
        said = exc.args[0] if exc.args else exc.description  # the broker's words
        return f"{where} refused the login ({describe(options)}): {said}"
    except UnsupportedSaslMechanismError:
        return (f"{where} does not offer SASL mechanism {options['sasl_mechanism']}: "
                f"check {env_name('kafka_sasl_mechanism')}")
    except IllegalSaslStateError:
        return f"{where} is not a SASL listener: check {PROTOCOL} ({protocol})"
    except (KafkaError, OSError, TimeoutError) as exc:
        return await _kafka_connection_refusal(where, host, port, protocol, exc)


async def _kafka_connection_refusal(where: str, host: str, port: int, protocol: str,
                                    exc: BaseException) -> str | None:
    reason = _tls_refusal(where, exc, KAFKA_CA)
    if reason is not None:
        return reason
    alert = next((c for c in _causes(exc) if isinstance(c, ssl.SSLError)
                  and "ALERT" in (c.reason or "")), None)
    if alert is not None:  # the broker ended the handshake: it did not accept our certificate
        return (f"{where} refused the TLS handshake ({alert.reason}): it wants a client "
                f"certificate it trusts ({KAFKA_CERT}, {KAFKA_KEY})")
    if not _closed_on_us(exc):
        return None
    tls = protocol in TLS_PROTOCOLS
    hint = f"check {PROTOCOL} ({protocol})"
    return (await _tls_mismatch(where, host, port, tls, hint)
            or f"{where} closed the connection after {'the TLS handshake' if tls else 'it'}"
               f": does its listener want SASL? {hint}")


# -- Redis ------------------------------------------------------------------------------------

async def redis_refusal(url: str, exc: BaseException, password: bool) -> str | None:
    """Why Redis at `url` refused us (`exc` from a first command), or None. `password`: we
    sent one."""
    where = f"Redis at {redis_address(url)}"
    password_file = env_name("redis_password_file")
    if isinstance(exc, AuthenticationError) or (
            isinstance(exc, ResponseError) and "AUTH" in str(exc).upper()):
        if not password:
            return f"{where} requires a password: set {password_file}"
        return f"{where} refused the password: invalid user name or password"
    if not isinstance(exc, RedisError | OSError):
        return None
    reason = _tls_refusal(where, exc, env_name("redis_ca_file"))
    if reason is not None or not _closed_on_us(exc):
        return reason
    parts = urlsplit(url)
    return await _tls_mismatch(where, parts.hostname or "localhost", parts.port or 6379,
                               parts.scheme == "rediss",
                               f"check the scheme of {env_name('redis_url')} ({parts.scheme}://)")
