"""A tiny OpenID Connect provider for the web tests: discovery, JWKS, an authorize endpoint that signs
in whoever the test says (no form), and a token endpoint that checks the client secret and PKCE and
issues RS256 ID tokens, and a userinfo endpoint that answers for the access token. In its
``claims_in="userinfo"`` mode it behaves like a certified provider's default settings: the ID token
carries no ``email``, only userinfo does (OIDC Core 5.4 allows either). Served over real HTTP on a
loopback port by ``oidc_site``, next to a second copy of the web pages configured to use it, over
the module's ledger. The issuer is addressed as ``localhost`` while the pages are on ``127.0.0.1``,
so in a browser the provider is another site, as it is in production."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mash_broker.app.web.server import WebServer, start_web
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.signing import Signers
from web.conftest import WebStack

CLIENT_ID = "mash-broker-test"
CLIENT_SECRET = "provider-test-secret"  # noqa: S105  # a synthetic test secret
ALEX = "alex.keyadult@example.org"  # has a password too
SAM = "sam.deputy@example.org"  # in the directory, no password: OIDC alone identifies them


@dataclass
class Provider:
    """What the fake provider puts in the next ID token; a test changes one thing to break it."""

    issuer: str = ""
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    email: str = ALEX
    email_verified: bool = True
    audience: str = CLIENT_ID
    nonce: str | None = None  # None: the one the broker sent
    sign_with: rsa.RSAPrivateKey | None = None  # None: the published key
    refuse: str | None = None  # an OAuth error code to send the browser back with instead of a code
    interactive: bool = False  # a page the person clicks on (as real providers have), not a redirect
    claims_in: Literal["id_token", "userinfo"] = "id_token"  # userinfo: email only from the userinfo endpoint
    userinfo_sub: str | None = None  # None: the ID token's subject
    userinfo_calls: int = 0
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.email, self.email_verified, self.audience = ALEX, True, CLIENT_ID
        self.nonce = self.sign_with = self.refuse = self.userinfo_sub = None
        self.interactive = False
        self.claims_in = "id_token"
        self.userinfo_calls = 0

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "userinfo_endpoint": f"{self.issuer}/userinfo",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def jwks(request: Request) -> Response:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return JSONResponse({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

        async def authorize(request: Request) -> Response:
            q = request.query_params
            if (q.get("response_type"), q.get("client_id"), q.get("code_challenge_method")) != (
                "code",
                CLIENT_ID,
                "S256",
            ) or "openid" not in q.get("scope", "").split():
                return JSONResponse({"error": "invalid_request"}, 400)
            if self.refuse:
                answer = {"error": self.refuse, "state": q["state"]}
            else:
                code = secrets.token_urlsafe(16)
                self.codes[code] = {
                    "nonce": q["nonce"],
                    "challenge": q["code_challenge"],
                    "redirect_uri": q["redirect_uri"],
                }
                answer = {"code": code, "state": q["state"]}
            back = f"{q['redirect_uri']}?{urlencode(answer)}"
            if self.interactive:  # the navigation back then starts on the provider's site
                link = f'<a id="continue" href="{html.escape(back)}">Continue to MASH Broker</a>'
                return HTMLResponse(f"<!doctype html><title>Provider</title>{link}")
            return RedirectResponse(back, 302)

        async def token(request: Request) -> Response:
            form = await request.form()
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_client"}, 401)
            issued = self.codes.pop(str(form.get("code", "")), None)  # a code works once
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if issued is None or issued["challenge"] != challenge or issued["redirect_uri"] != form["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, 400)
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "sub": "person-1",
                "aud": self.audience,
                "iat": now,
                "exp": now + 300,
                "nonce": self.nonce if self.nonce is not None else issued["nonce"],
            }
            if self.claims_in == "id_token":
                claims |= {"email": self.email, "email_verified": self.email_verified}
            id_token = jwt.encode(claims, self.sign_with or self.key, algorithm="RS256", headers={"kid": "k1"})
            access_token = secrets.token_urlsafe(16)
            self.access_tokens.add(access_token)
            return JSONResponse({"access_token": access_token, "token_type": "Bearer", "id_token": id_token})

        async def userinfo(request: Request) -> Response:
            self.userinfo_calls += 1
            scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
            if scheme != "Bearer" or access_token not in self.access_tokens:
                return JSONResponse({"error": "invalid_token"}, 401)
            return JSONResponse(
                {"sub": self.userinfo_sub or "person-1", "email": self.email, "email_verified": self.email_verified}
            )

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/userinfo", userinfo),
            ]
        )


@dataclass
class OidcSite:
    provider: Provider
    web: WebServer


@contextmanager
def oidc_site(web_stack: WebStack) -> Iterator[OidcSite]:
    """The fake provider on a free port, and the web pages (another port) signing in through it."""
    provider = Provider()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    provider.issuer = f"http://localhost:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(provider.app(), log_config=None, access_log=False, lifespan="off"))
    tasks: list[asyncio.Task[None]] = []

    async def serve() -> WebServer:
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not server.started:
            if tasks[0].done():
                tasks[0].result()
            await asyncio.sleep(0.01)
        settings = web_stack.settings.model_copy(
            update={
                "web_port": 0,
                "oidc_issuer": provider.issuer,
                "oidc_client_id": CLIENT_ID,
                "oidc_client_secret": SecretStr(CLIENT_SECRET),
            }
        )
        return await start_web(settings, web_stack.ledger, web_stack.clock, Signers(KeyStore(settings.keys_dir)))

    web = web_stack.call(serve())
    try:
        yield OidcSite(provider, web)
    finally:
        web_stack.call(web.stop())
        server.should_exit = True
        web_stack.call(asyncio.wait_for(tasks[0], 10))
