"""The one place where settings become the security options of Kafka and Redis clients.

Secrets come only from files (running.md 1.1): the settings, the environment handed to child
processes (`ccmon.launch`) and every message hold the file's path, never its content. A file
that cannot be used is a `SettingsError` naming the setting and the path.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiokafka.helpers import create_ssl_context

from ccmon.errors import SettingsError
from ccmon.settings import Settings, env_name

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")

KafkaOptions = Mapping[str, Any]  # aiokafka client keyword arguments
PLAINTEXT: KafkaOptions = {"security_protocol": "PLAINTEXT"}
CA_PEM = "no PEM certificate in it"
CERT_PEM = f"not a PEM certificate matching the key (in it or in {env_name('kafka_key_file')})"


def read_secret(path: str, setting: str) -> str:
    """The secret in the file of `setting`, without its trailing line break."""
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(f"cannot read {env_name(setting)} {path}: {reason}") from None
    if not secret:
        raise SettingsError(f"{env_name(setting)} {path} is empty")
    return secret


def _refuse_passphrase() -> bytes:
    # Else OpenSSL would prompt on the terminal for an encrypted key, and a service hangs.
    raise SettingsError(f"{env_name('kafka_key_file')} is encrypted: give an unencrypted "
                        "PEM key (keep it readable by ccmon's user only)")


def kafka_tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers' certificates and host names against CCMON_KAFKA_CA_FILE (else the
    system's trust), with the client certificate if one is set (mutual TLS)."""
    if settings.kafka_key_file and not settings.kafka_cert_file:
        raise SettingsError(f"{env_name('kafka_key_file')} needs {env_name('kafka_cert_file')}")
    try:
        context = create_ssl_context(cafile=settings.kafka_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise _bad_pem("kafka_ca_file", settings.kafka_ca_file, exc, CA_PEM) from None
    if settings.kafka_cert_file:
        try:
            context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file or None,
                                    password=_refuse_passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise _bad_pem("kafka_cert_file", settings.kafka_cert_file, exc, CERT_PEM) from None
    return context


def _bad_pem(setting: str, path: str, exc: OSError, content: str) -> SettingsError:
    # OpenSSL's own text ("[SSL] PEM lib (_ssl.c:3926)") says little to an operator.
    reason = content if isinstance(exc, ssl.SSLError) else exc.strerror
    return SettingsError(f"cannot use {env_name(setting)} {path}: {reason}")


def kafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (producer, consumer, admin client alike)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = kafka_tls_context(settings)
    elif settings.kafka_ca_file or settings.kafka_cert_file:
        raise SettingsError(f"{env_name('kafka_ca_file')} and {env_name('kafka_cert_file')} "
                            f"need {env_name('kafka_security_protocol')} SSL or SASL_SSL")
    if protocol in SASL_PROTOCOLS:
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password_file:
            raise SettingsError(f"{env_name('kafka_security_protocol')} {protocol} needs "
                                f"{env_name('kafka_sasl_username')} and "
                                f"{env_name('kafka_sasl_password_file')}")
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": read_secret(settings.kafka_sasl_password_file,
                                                       "kafka_sasl_password_file")}
    return options


def describe(options: KafkaOptions) -> str:
    """How the client logs in, for messages: never the password."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol in SASL_PROTOCOLS:
        return f"{protocol}, {options['sasl_mechanism']} as {options['sasl_plain_username']!r}"
    return protocol


def redis_options(settings: Settings) -> dict[str, Any]:
    """redis-py's keyword arguments beside the URL: the CA of rediss://, the password file."""
    options: dict[str, Any] = {}
    url = urlsplit(settings.redis_url)
    if settings.redis_ca_file:
        if url.scheme != "rediss":
            raise SettingsError(f"{env_name('redis_ca_file')} needs a rediss:// "
                                f"{env_name('redis_url')}")
        try:
            ssl.create_default_context(cafile=settings.redis_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise _bad_pem("redis_ca_file", settings.redis_ca_file, exc, CA_PEM) from None
        options["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_password_file:
        if url.password:
            raise SettingsError(f"{env_name('redis_url')} carries a password and "
                                f"{env_name('redis_password_file')} is set: keep one")
        options["password"] = read_secret(settings.redis_password_file, "redis_password_file")
    return options


def redis_address(url: str) -> str:
    """A Redis URL without its user name and password, for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
