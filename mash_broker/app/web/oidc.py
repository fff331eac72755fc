"""Sign-in through an OpenID Connect provider, when ``MASH_OIDC_ISSUER`` and ``MASH_OIDC_CLIENT_ID`` are set.

The authorization code flow with PKCE (S256), ``state`` and ``nonce``: the provider is found from
``<issuer>/.well-known/openid-configuration``; the ID token's signature is checked against the
provider's JWKS (PyJWT, asymmetric algorithms only) with its ``iss``, ``aud``, ``exp`` and ``nonce``.
Only the ``email`` claim, and only with ``email_verified`` true, says who signed in: from the ID
token, or (a provider's default settings often keep it out of the ID token, as OIDC Core allows)
from the provider's userinfo endpoint, asked with the access token, whose ``sub`` must be the ID
token's. The web pages then match it as a password sign-in would (broker.web.accounts.account_for_email). HTTP calls to
the provider use the standard library in a worker thread, so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt

from mash_broker.contracts import MashError

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")  # asymmetric only: never HS* or "none"
PENDING_FOR = timedelta(minutes=10)
MAX_PENDING = 10_000
TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 1_000_000  # a provider answer larger than this is refused, not read into memory
CALLBACK_PATH = "/login/oidc/callback"


class OidcRefused(MashError):
    """The provider's answer does not sign anyone in; ``reason`` is safe to log (no personal data)."""

    code = "oidc_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Pending:
    """One started sign-in, kept until the provider sends the browser back."""

    nonce: str
    verifier: str
    started_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise OidcRefused("provider_url_not_https")
    return url


def _read_json(r: Any) -> Any:
    body = r.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise OidcRefused("provider_answer_too_large")
    return json.loads(body)


def _get_json(url: str, bearer: str | None = None) -> dict[str, Any]:
    req = urllib.request.Request(_check_url(url), headers={"Accept": "application/json"})  # noqa: S310  # https only
    if bearer is not None:
        req.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:  # noqa: S310  # https (or loopback) only
            data = _read_json(r)
    except urllib.error.HTTPError as exc:
        raise OidcRefused(f"provider_http_{exc.code}") from exc
    except json.JSONDecodeError as exc:
        raise OidcRefused("provider_answer_not_json") from exc
    if not isinstance(data, dict):
        raise OidcRefused("provider_answer_not_an_object")
    return data


def _post_form(url: str, form: dict[str, str], auth: tuple[str, str] | None) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310  # _check_url allows https (http on loopback) only
        _check_url(url),
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    if auth is not None:
        pair = f"{urllib.parse.quote(auth[0], safe='')}:{urllib.parse.quote(auth[1], safe='')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:  # noqa: S310
            data = _read_json(r)
    except urllib.error.HTTPError as exc:
        raise OidcRefused(f"token_endpoint_http_{exc.code}") from exc
    if not isinstance(data, dict):
        raise OidcRefused("provider_answer_not_an_object")
    return data


@dataclass
class Oidc:
    """The configured provider: starts sign-ins and turns the provider's answer into a verified email."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    clock: Callable[[], datetime]
    _pending: dict[str, Pending] = field(default_factory=dict)
    _discovery: dict[str, Any] | None = None
    _jwks: dict[str, Any] | None = None

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await asyncio.to_thread(_get_json, url)
            if doc.get("issuer") != self.issuer:
                raise OidcRefused("discovery_issuer_mismatch")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(key), str):
                    raise OidcRefused(f"discovery_without_{key}")
                _check_url(doc[key])
            if "userinfo_endpoint" in doc:
                if not isinstance(doc["userinfo_endpoint"], str):
                    raise OidcRefused("discovery_userinfo_endpoint_not_a_url")
                _check_url(doc["userinfo_endpoint"])
            self._discovery = doc
        return self._discovery

    async def start(self) -> tuple[str, str]:
        """A new sign-in: the provider URL to send the browser to, and the ``state`` to bind to it."""
        doc = await self.discovery()
        now = self.clock()
        self._pending = {s: p for s, p in self._pending.items() if now - p.started_at < PENDING_FOR}
        if len(self._pending) >= MAX_PENDING:  # bounded: a flood of started sign-ins cannot fill memory
            self._pending.clear()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self._pending[state] = Pending(nonce=nonce, verifier=verifier, started_at=now)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": "openid email",
                "state": state,
                "nonce": nonce,
                "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(doc["authorization_endpoint"])
        return endpoint + ("&" if "?" in endpoint else "?") + query, state

    async def finish(self, state: str, bound_state: str, code: str) -> str:
        """The verified email of whoever the provider signed in for ``state`` (which must be the one
        bound to this browser); raises OidcRefused otherwise."""
        if not state or not bound_state or not hmac.compare_digest(state, bound_state):
            raise OidcRefused("state_mismatch")
        pending = self._pending.pop(state, None)
        if pending is None or self.clock() - pending.started_at >= PENDING_FOR:
            raise OidcRefused("state_unknown_or_expired")
        if not code:
            raise OidcRefused("no_code")
        doc = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.client_id,
        }
        auth = (self.client_id, self.client_secret) if self.client_secret else None
        tokens = await asyncio.to_thread(_post_form, str(doc["token_endpoint"]), form, auth)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("no_id_token")
        claims = await self.verify(id_token, pending.nonce)
        if _verified_email(claims) is None:
            claims = await self.userinfo(doc, tokens.get("access_token"), str(claims["sub"]))
        email = _verified_email(claims)
        if email is None:
            raise OidcRefused("email_missing_or_unverified")
        return email

    async def userinfo(self, doc: dict[str, Any], access_token: object, sub: str) -> dict[str, Any]:
        """The userinfo endpoint's claims for ``access_token``, which must be about ``sub`` (OIDC Core
        5.3.2: else they may be another person's); no claims if the provider has no such endpoint."""
        endpoint = doc.get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not isinstance(access_token, str) or not access_token:
            return {}
        claims = await asyncio.to_thread(_get_json, endpoint, access_token)
        if not isinstance(claims.get("sub"), str) or not hmac.compare_digest(claims["sub"], sub):
            raise OidcRefused("userinfo_sub_mismatch")
        return claims

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, ``iss``, ``aud``, ``exp`` and ``nonce`` check out."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise OidcRefused("id_token_malformed") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OidcRefused("id_token_algorithm_not_allowed")
        key = await self._key(header.get("kid"), str(alg))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[str(alg)],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=60,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.InvalidAudienceError as exc:
            raise OidcRefused("id_token_wrong_audience") from exc
        except jwt.InvalidSignatureError as exc:
            raise OidcRefused("id_token_bad_signature") from exc
        except jwt.PyJWTError as exc:
            raise OidcRefused(f"id_token_invalid_{type(exc).__name__}") from exc
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise OidcRefused("id_token_wrong_azp")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise OidcRefused("id_token_wrong_nonce")
        return claims

    async def _key(self, kid: object, alg: str) -> jwt.PyJWK:
        """The provider's key for ``kid`` (the JWKS fetched again once if the key is new to us)."""
        for refresh in (False, True):
            if self._jwks is None or refresh:
                doc = await self.discovery()
                self._jwks = await asyncio.to_thread(_get_json, str(doc["jwks_uri"]))
            keys = [
                k
                for k in self._jwks.get("keys", [])
                if isinstance(k, dict) and k.get("use", "sig") == "sig" and (kid is None or k.get("kid") == kid)
            ]
            if len(keys) == 1:
                try:
                    return jwt.PyJWK(keys[0], algorithm=alg)
                except jwt.PyJWTError as exc:
                    raise OidcRefused("jwks_key_unusable") from exc
        raise OidcRefused("id_token_key_not_in_jwks")


def _verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    return email if claims.get("email_verified") is True and isinstance(email, str) and "@" in email else None
