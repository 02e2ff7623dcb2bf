"""The supervisors' tokens file (alerts.md, `CCMON_TOKENS`): who may see which queues.

Tokens are compared in constant time and never logged or shown, not even in error messages.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import yaml

EVERY_QUEUE = "*"


class TokensError(ValueError):
    """A tokens file that cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class Supervisor:
    name: str
    queues: frozenset[str]

    def sees(self, labels: dict[str, str]) -> bool:
        return EVERY_QUEUE in self.queues or labels.get("queue") in self.queues

    def listed_queues(self) -> list[str]:
        return sorted(self.queues)


class Tokens:
    def __init__(self, entries: list[tuple[bytes, Supervisor]]) -> None:
        self.entries = entries

    def find(self, token: object) -> Supervisor | None:
        """The supervisor of `token`, comparing against every entry in constant time."""
        if not isinstance(token, str) or not token:
            return None
        offered = token.encode()
        found = None
        for secret, supervisor in self.entries:
            if hmac.compare_digest(secret, offered) and found is None:
                found = supervisor
        return found


def load_tokens(path: str) -> Tokens:
    """The tokens of a YAML file; no file configured: nobody gets in."""
    if not path:
        return Tokens([])
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except OSError as exc:
        raise TokensError(f"cannot read the tokens file {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise TokensError(f"the tokens file {path} is not valid YAML") from None  # no echo
    return parse_tokens(document)


def parse_tokens(document: Any) -> Tokens:
    if not isinstance(document, dict) or not isinstance(document.get("tokens"), list):
        raise TokensError("the tokens file must be a mapping with a list under `tokens`")
    entries: list[tuple[bytes, Supervisor]] = []
    secrets: set[bytes] = set()
    for index, entry in enumerate(document["tokens"], start=1):
        if not isinstance(entry, dict):
            raise TokensError(f"token #{index}: must be a mapping of name, token, queues")
        name = entry.get("name")
        who = f"token {name!r}" if isinstance(name, str) and name else f"token #{index}"
        unknown = sorted(set(entry) - {"name", "token", "queues"})
        if unknown:
            raise TokensError(f"{who}: field `{unknown[0]}`: unknown (known: name, token, "
                              "queues)")
        if not isinstance(name, str) or not name:
            raise TokensError(f"{who}: field `name`: required, a non-empty string")
        secret = entry.get("token")
        if not isinstance(secret, str) or not secret:
            raise TokensError(f"{who}: field `token`: required, a non-empty string")
        if secret.encode() in secrets:
            raise TokensError(f"{who}: field `token`: the same as another entry's")
        queues = entry.get("queues")
        if not isinstance(queues, list) or not queues or not all(
                isinstance(queue, str) and queue for queue in queues):
            raise TokensError(f"{who}: field `queues`: a non-empty list of queue names, "
                              'or ["*"] for every queue')
        secrets.add(secret.encode())
        entries.append((secret.encode(), Supervisor(name, frozenset(queues))))
    return Tokens(entries)
