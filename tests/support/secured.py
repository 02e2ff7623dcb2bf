"""Secured servers for the tests: an Apache Kafka with SASL_SSL and mutual-TLS listeners and a
Redis on TLS with a password, under a certificate authority generated for the run.

One Kafka JVM serves every secured case: listener `SASL_SSL` (SCRAM-SHA-512 users made by
the storage format, PLAIN users in its JAAS line) and listener `SSL` (a client certificate
required), beside the usual PLAINTEXT one its inter-broker traffic uses.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tests.support import servers
from tests.support.tls import CertificateAuthority, Issued

SCRAM_USER, PLAIN_USER = "scram-user", "plain-user"


@dataclass
class SecuredKafka:
    server: servers.Server
    ca: CertificateAuthority
    client: Issued  # a client certificate the SSL listener trusts
    passwords: dict[str, str]  # user -> password

    @property
    def sasl_ssl(self) -> str:
        return self.server.listeners["SASL_SSL"]

    @property
    def mutual_tls(self) -> str:
        return self.server.listeners["SSL"]


def password() -> str:
    # Distinctive, so that a test can look for it in every output.
    return f"pw-{secrets.token_hex(12)}"


def start_secured_kafka(workdir: Path) -> SecuredKafka:
    folder = workdir / "kafka-tls"
    folder.mkdir(exist_ok=True)
    ca = CertificateAuthority(folder, "kafka")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(ca.issue("broker").pem())
    passwords = {SCRAM_USER: password(), PLAIN_USER: password()}
    properties = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca.ca_file),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{PLAIN_USER}="{passwords[PLAIN_USER]}";',
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.ssl.ssl.client.auth": "required",
    }
    server = servers.start_kafka(
        workdir, extra_properties=properties,
        extra_listeners={"SASL_SSL": "SASL_SSL", "SSL": "SSL"},
        format_arguments=["--add-scram",
                          f"SCRAM-SHA-512=[name={SCRAM_USER},password={passwords[SCRAM_USER]}]"])
    return SecuredKafka(server, ca, ca.issue("client"), passwords)


@dataclass
class SecuredRedis:
    server: servers.Server
    ca: CertificateAuthority
    password: str


def start_secured_redis(workdir: Path) -> SecuredRedis:
    folder = workdir / "redis-tls"
    folder.mkdir(exist_ok=True)
    ca = CertificateAuthority(folder, "redis")
    issued = ca.issue("redis")
    secret = password()
    server = servers.start_redis(workdir, tls=(issued.cert, issued.key, ca.ca_file),
                                 password=secret)
    return SecuredRedis(server, ca, secret)
