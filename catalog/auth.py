"""OAuth2 client-credentials auth: hashed client secrets from config, HMAC-signed bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field

from catalog.errors import AuthorizationExpired, NotAuthorized


def hash_secret(secret: str, salt: str | None = None) -> str:
    """The config form of a client secret: ``sha256$<salt>$<hex sha256(salt + secret)>``."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` matches a stored ``sha256$salt$hex`` entry (constant-time compare)."""
    try:
        algo, salt, digest = stored.split("$", 2)
    except ValueError:
        return False
    if algo != "sha256":
        return False
    return hmac.compare_digest(hash_secret(secret, salt).split("$", 2)[2], digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Auth:
    """Token issuing and checking; ``enabled=False`` lets every request through."""

    enabled: bool = False
    clients: dict[str, str] = field(default_factory=dict)  # client_id -> hashed secret
    token_secret: str = ""
    ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        if self.enabled and not self.token_secret:
            raise ValueError("catalog auth is on but catalog.token_secret is empty")
        self._key = (self.token_secret or secrets.token_urlsafe(32)).encode()

    def check_client(self, client_id: str, client_secret: str) -> bool:
        """True when the client credentials are valid (any credentials when auth is off)."""
        if not self.enabled:
            return True
        stored = self.clients.get(client_id)
        return stored is not None and verify_secret(client_secret, stored)

    def issue(self, client_id: str, now: float | None = None) -> str:
        """A signed bearer token for ``client_id`` valid for ``ttl_seconds``."""
        now = time.time() if now is None else now
        claims = {"sub": client_id, "iat": round(now, 3), "exp": round(now + self.ttl_seconds, 3)}
        payload = _b64(json.dumps(claims).encode())
        sig = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        return f"{payload}.{sig}"

    def verify(self, token: str, now: float | None = None) -> str:
        """The client id of a valid token; 401 when invalid, 419 when expired."""
        try:
            payload, sig = token.split(".", 1)
        except ValueError:
            raise NotAuthorized("Not authorized: malformed bearer token") from None
        expected = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            raise NotAuthorized("Not authorized: invalid bearer token")
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            raise NotAuthorized("Not authorized: malformed bearer token") from None
        if claims.get("sub") not in self.clients:
            raise NotAuthorized("Not authorized: unknown client")
        if (time.time() if now is None else now) >= claims.get("exp", 0):
            raise AuthorizationExpired("Authentication timeout: the bearer token has expired")
        return claims["sub"]
