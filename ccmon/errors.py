"""The errors a user fixes, not bugs: `ccmon.cli` catches `CcmonError` once, prints
`ccmon: <message>` and exits 2, so a bad setting or a refusing server never shows a traceback
(running.md).

The pure modules (`stream/`, the pure ones of `alerts/`) import nothing from `ccmon/`: their
own errors (`RulesError`, `TokensError`) become a `SettingsError` in the shell that loads them.
"""

from __future__ import annotations


class CcmonError(Exception):
    """A condition the user fixes; the message is the one line shown."""


class SettingsError(CcmonError, ValueError):
    """A setting that cannot be used; the message names the setting."""


class KafkaRefused(SettingsError):
    """The brokers refuse this client (a setting to fix, not an outage): one line naming them."""


class EmbeddedBrokerError(CcmonError, RuntimeError):
    """The embedded broker could not be found or did not come up; the message says why."""
