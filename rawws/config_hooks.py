"""The hooks' settings (``docs/server-api.md``, "Hooks"): declared on their fields like every other
setting, kept apart so ``rawws.config`` stays under its cap; ``ServerConfig`` inherits them.

Only values are checked here: the secret file is read when the server starts (``rawws.chat.app``),
so a missing or short one is said in one line naming ``--hook-secret-file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from rawws.core.redact import redact_url
from rawws.core.settings import LIST, SECONDS, Group
from rawws.errors import SettingError

HOOKS = Group(
    "hooks",
    "an application's HTTP endpoint asked before a connect, a private join or a say, "
    "and told of a disconnect (docs/server-api.md)",
)
#: How long the app has to answer one hook call, by default.
DEFAULT_HOOK_TIMEOUT_S = 2.0
HOOK_FAILURE_POLICIES = ("deny", "allow")


@dataclass(frozen=True, slots=True)
class HookSettings:
    """Where the hooks go, the key they are signed with, and what an unanswered one means."""

    hook_url: str | None = HOOKS(
        None,
        "the app's http:// or https:// URL every hook is POSTed to",
        metavar="URL",
        unset="no hooks",
        url=True,
        repr=False,
    )
    hook_secret_file: str | None = HOOKS(
        None,
        "file holding the HMAC-SHA256 key that signs every hook (32 bytes or more)",
        metavar="FILE",
    )
    hook_timeout_s: float = HOOKS(
        DEFAULT_HOOK_TIMEOUT_S,
        "time for the app to answer a hook",
        SECONDS,
        flag="--hook-timeout",
    )
    hook_failure: str = HOOKS(
        "deny",
        "when the app does not answer (timeout, refused, not 2xx, not JSON): deny "
        "(503 / unavailable) or allow",
        choices=HOOK_FAILURE_POLICIES,
    )
    hook_say_rooms: tuple[str, ...] = HOOKS(
        (),
        "a room whose say frames the app decides on: a name, or a prefix ending in *; repeatable",
        LIST,
        flag="--hook-say-room",
        metavar="PATTERN",
        repeat=True,
    )

    def check_hooks(self) -> None:
        """The settings that go together: a URL needs its key (``ServerConfig.__post_init__`` calls this)."""
        if self.hook_url is None:
            return
        shown = redact_url(self.hook_url)
        parts = urlsplit(self.hook_url)
        try:
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018  # raises ValueError when it is not a port
        except ValueError:
            usable = False
        if not usable:
            raise SettingError(
                "hook_url", shown, "must be an http:// or https:// URL with a host"
            )
        if self.hook_secret_file is None:
            raise SettingError("hook_url", shown, "hooks need --hook-secret-file too")
