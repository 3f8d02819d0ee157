"""Who is calling: bearer tokens from the environment, each naming a caller with its access groups.

The main caller's token is ``RAGTUNE_API_TOKEN`` (an admin, with ``[server] groups``); ``[server.callers.NAME]``
tables add more, each with its own ``token_env``. With no token at all the server binds loopback only and every
request is the main caller. Access groups come from here and nowhere else: never from a request body.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from ragtune.config import ServerSection
from ragtune.corpus.model import parse_groups
from ragtune.errors import ConfigError
from ragtune.server.errors import ApiError

TOKEN_ENV = "RAGTUNE_API_TOKEN"
MAIN_CALLER = "admin"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the name traces record, the groups searches see, whether it may change the corpus.

    >>> Caller("finance-bot", ("finance",), admin=False)
    """

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a client address) is this machine only."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_bind(host: str, environ: Mapping[str, str]) -> None:
    """Refuse to listen beyond loopback unless the main token is set."""
    if is_loopback(host) or environ.get(TOKEN_ENV, "").strip():
        return
    raise ConfigError(
        f"refusing to serve on {host} without a token: set {TOKEN_ENV} (clients then send "
        "`Authorization: Bearer <token>`), or bind 127.0.0.1"
    )


class Callers:
    """The callers this server knows, read from ``[server]`` and the environment once, at start.

    >>> callers = Callers(project.config.server, os.environ)
    >>> callers.authenticate("Bearer s3cret", "127.0.0.1").name
    """

    def __init__(self, section: ServerSection, environ: Mapping[str, str]) -> None:
        self.main = Caller(MAIN_CALLER, parse_groups(section.groups), admin=True)
        self.unset: list[str] = []  # callers whose token variable is empty: they cannot authenticate
        self._tokens: list[tuple[bytes, Caller]] = []
        main_token = environ.get(TOKEN_ENV, "").strip()
        if main_token:
            self._tokens.append((main_token.encode(), self.main))
        for name, entry in section.callers.items():
            if name == MAIN_CALLER:
                raise ConfigError(
                    f"[server.callers.{name}]: '{MAIN_CALLER}' is the caller holding {TOKEN_ENV}; choose another name"
                )
            value = environ.get(entry.token_env, "").strip()
            if not value:
                self.unset.append(f"{name} (${entry.token_env} is not set)")
                continue
            self._tokens.append((value.encode(), Caller(name, parse_groups(entry.groups), entry.admin)))
        owners: dict[bytes, str] = {}
        for secret, caller in self._tokens:
            if secret in owners:
                # one token, two identities: which groups would apply is anyone's guess
                raise ConfigError(
                    f"callers '{owners[secret]}' and '{caller.name}' have the same token; give each caller its own"
                )
            owners[secret] = caller.name

    @property
    def token_required(self) -> bool:
        """Once any token is configured, every endpoint but /health needs one."""
        return bool(self._tokens)

    def authenticate(self, authorization: str | None, client_host: str | None) -> Caller:
        """The caller an ``Authorization`` header names, or an :class:`ApiError` 401."""
        if not self._tokens:
            # Tokenless mode is for a server bound to loopback; refusing other clients holds even if it was
            # started some other way (behind a proxy, or by a host that picked the address itself).
            if client_host is None or not is_loopback(client_host):
                raise ApiError(
                    401,
                    f"this server has no token configured and answers loopback clients only; set {TOKEN_ENV}",
                    headers=_CHALLENGE,
                )
            return self.main
        if not authorization:
            raise ApiError(
                401, "missing bearer token; send `Authorization: Bearer <token>`", "missing_api_key", _CHALLENGE
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "malformed Authorization header; send `Authorization: Bearer <token>`", None, _CHALLENGE
            )
        given = token.strip().encode()
        found: Caller | None = None
        for known, caller in self._tokens:
            # compare against every token, so the time taken does not tell how far a guess got or whose it matched
            if hmac.compare_digest(given, known) and found is None:
                found = caller
        if found is None:
            raise ApiError(401, "invalid token", None, _CHALLENGE)
        return found


def require_admin(caller: Caller, action: str) -> None:
    if not caller.admin:
        raise ApiError(
            403, f"caller '{caller.name}' may not {action}; only admin callers may ingest or forget", "admin_required"
        )
