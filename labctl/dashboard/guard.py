"""Who may talk to the dashboard. Anything a student controls can reach the
machine that runs labctl: qemu's user-mode network maps a guest's 10.0.2.2 to
this host's 127.0.0.1, and the instructor's browser may open a page that
posts forms to loopback. So every request, loopback included, carries the
dashboard's token (the printed address holds it once, then an HttpOnly
cookie), its Host must be a name that cannot be rebound to another site, a
request from a browser must come from the dashboard's own origin, and an
action's body is read only when it is sent as JSON (a cross-site form cannot
send that without the browser asking first)."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

COOKIE = "labctl_token"
HEADER = "x-labctl-token"


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    hint: str = ""


@dataclass(frozen=True)
class Guard:
    token: str
    names: frozenset[str] = field(default_factory=frozenset)  # extra Host names (--name)

    def given_token(self, query: dict, headers: dict, cookies: dict) -> str:
        return query.get("token") or headers.get(HEADER) or cookies.get(COOKIE) or ""

    def token_ok(self, given: str) -> bool:
        """Constant time: a guess learns nothing from how long the refusal took."""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str) -> bool:
        """An IP literal, localhost, this machine's own name, or a name given
        with --name: never a name an attacker's DNS can point here (rebinding)."""
        name = _hostname(host_header)
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        return name in _own_names() or name.endswith(".localhost") or name in self.names

    def refuse(self, method: str, host_header: str, headers: dict, given: str,
               content_type: str, token_ok: bool | None = None) -> Refusal | None:
        """Why a request is refused, or None. `headers`: lower-case names.
        `token_ok`: the caller's own judgement of the token (a student's page
        checks the copy's token, not the instructor's)."""
        if not self.host_ok(host_header):
            return Refusal(403, f"the Host '{host_header[:80]}' is not this dashboard's",
                           "open the address 'labctl dashboard' printed (or give "
                           "--name NAME for a name of this machine)")
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host_header):
            return Refusal(403, "requests from another site are refused",
                           "use the dashboard's own page")
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return Refusal(403, "requests from another site are refused",
                           "use the dashboard's own page")
        if not (self.token_ok(given) if token_ok is None else token_ok):
            return Refusal(403, "a valid token is required",
                           "open the address 'labctl dashboard' printed")
        if method == "POST" and content_type.split(";")[0].strip().lower() != "application/json":
            return Refusal(415, "the request body must be sent as JSON",
                           "Content-Type: application/json")
        return None


@functools.cache
def _own_names() -> frozenset[str]:
    """This machine's names, asked once (getfqdn may wait on DNS)."""
    return frozenset({"localhost", socket.gethostname().lower(), socket.getfqdn().lower()})


def _hostname(host_header: str) -> str:
    try:
        parts = urlsplit(f"//{host_header}")
        return (parts.hostname or "").lower()
    except ValueError:
        return ""


def _same_origin(origin: str, host_header: str) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()
    except ValueError:
        return False
