"""The web pages: a Key Adult's inbox and the MASH board, server-rendered (Starlette + Jinja2).

Thin handlers over the ledger: the inbox reads the school's ``deliveries`` rows, and opening a
notification records the read through ``adapters.education.inbox.record_read`` exactly as
`mash school ack` does (so police get the same person-read acknowledgement). Security: sessions
(broker.web.sessions), a CSRF token on every POST, a strict Content Security Policy with no script
at all, no framing, ``no-store`` on every page, Jinja autoescape for all agency text, and another
school's notification (or a page of another role) answered 404 and logged without personal data.

In a region (MASH_AREAS_DIR) the regional manager (``mash``) sees the whole region's board at ``/board``
and each authority's at ``/board/<code>``; an authority's manager (``mash:<code>``) sees only their own at
both. A police force (``police:<force>``) sees what became of its own notifications across the region's
authorities at ``/force`` (``app.web.force``). Anything across the boundary (another authority's board, a
school's page or notification, a page of another role) answers 404 and is put on the audited log as
``web.access_refused`` (``app.web.refusals``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mash_broker.agencies.education.inbox import Sign, record_read
from mash_broker.app.health import PROBE_ROUTES, Readiness
from mash_broker.app.region import deployed_region
from mash_broker.app.tracing import read_span
from mash_broker.app.web import board, force, templating
from mash_broker.app.web.accounts import Account, account_for_email, authenticate, still_allowed
from mash_broker.app.web.oidc import CALLBACK_PATH, Oidc, OidcRefused
from mash_broker.app.web.refusals import refuse_delivery, refuse_page
from mash_broker.app.web.sessions import Session, Sessions
from mash_broker.app.web.throttle import SignInThrottle, Throttled
from mash_broker.core import views
from mash_broker.core.logging import get_logger
from mash_broker.core.records import DeliveryRecord
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

log = get_logger("mash.web")

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mash_session"
LOGIN_CSRF_COOKIE = "mash_login_csrf"
OIDC_STATE_COOKIE = "mash_oidc_state"  # SameSite=Lax: the provider sends the browser back cross-site
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds the security headers to every response, and ``no-store`` to every page but the stylesheet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                headers += SECURITY_HEADERS
                headers.append((b"cache-control", b"max-age=300" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


Handler = Callable[[Request, Session], Awaitable[Response]]


def create_app(
    settings: Settings,
    ledger: Ledger,
    *,
    clock: Callable[[], datetime],
    sign: Sign | None,
    readiness: Readiness | None = None,
) -> Starlette:
    """The web app over ``ledger``; ``clock`` is the stack's clock, ``sign`` signs acknowledgements,
    ``readiness`` is what /readyz asks (default: the ledger only)."""
    tz = ZoneInfo(settings.timezone)
    region = deployed_region(settings)  # as `mash up` builds it: whose board is whose
    areas = frozenset(region.areas) if region is not None else frozenset[str]()
    # A force may sign in while the region names it (a region naming no forces, or none: any force).
    forces = frozenset(region.forces) if region is not None and region.forces else None
    templates = Jinja2Templates(env=templating.environment(tz))
    sessions = Sessions(
        clock=clock,
        idle=timedelta(minutes=settings.web_session_idle_min),
        max_age=timedelta(hours=settings.web_session_max_hours),
    )
    throttle = SignInThrottle(clock)
    secure = settings.web_url.startswith("https://")
    oidc = (
        Oidc(
            issuer=str(settings.oidc_issuer),
            client_id=str(settings.oidc_client_id),
            client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
            redirect_uri=settings.web_url + CALLBACK_PATH,
            clock=clock,
        )
        if settings.oidc_enabled
        else None
    )

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def not_found(request: Request, session: Session | None, what: str) -> Response:
        # Metadata only: the role and school asking, what kind of page; never a name or the content.
        log.warning("web.not_found", agency=session.account.org if session else "anonymous", page=what)
        return page(request, "not_found.html", 404, session=session)

    def signed_in(role: str | None = None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                session = sessions.get(request.cookies.get(SESSION_COOKIE))
                if session is None or not await still_allowed(ledger, session.account, areas, forces):
                    if session is not None:
                        sessions.end_all(session.account.login)
                    return RedirectResponse("/login", 303)
                if role is not None and session.account.role != role:
                    return await refused(request, session, request.url.path.split("/")[1])
                if request.method == "POST":
                    form = await request.form()
                    sent = str(form.get("csrf", ""))
                    if not hmac.compare_digest(sent, session.csrf):
                        log.warning("web.csrf_refused", agency=session.account.role)
                        return page(
                            request,
                            "error.html",
                            403,
                            session=session,
                            message="This form has expired. Go back, reload the page and try again.",
                        )
                return await handler(request, session)

            return endpoint

        return wrap

    async def home(request: Request) -> Response:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return RedirectResponse("/login", 303)
        return RedirectResponse(_home_of(session.account.role), 303)

    async def login_form(
        request: Request, error: str | None = None, status: int = 200, *, login: str = "", wrong: bool = False
    ) -> Response:
        """The form; after a refusal, ``error`` in an error summary, ``login`` kept, and when ``wrong`` the
        login field marked as the one to correct."""
        token = secrets.token_urlsafe(32)
        response = page(
            request,
            "login.html",
            status,
            session=None,
            csrf=token,
            error=error,
            oidc=oidc is not None,
            login=login[:320],
            wrong=wrong,
        )
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/login")
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return await login_form(request)
        form = await request.form()
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        typed = str(form.get("login", "")).strip()
        if not cookie or not hmac.compare_digest(str(form.get("csrf", "")), cookie):
            return await login_form(request, "This form has expired. Please try again.", 403, login=typed)
        who, password = typed.casefold(), str(form.get("password", ""))
        address = request.client.host if request.client else "unknown"
        account = await throttle.attempt(who, address, lambda: authenticate(ledger, who, password, areas, forces))
        if not isinstance(account, Account):
            # The same answer whether throttled or wrong, so it says nothing about the account.
            log.info("web.sign_in_refused", reason="throttled" if account else "no_match")
            response = await login_form(
                request,
                "That email (or user name) and password do not match an account that may sign in.",
                401,
                login=typed,
                wrong=True,
            )
            if isinstance(account, Throttled):
                response.headers["retry-after"] = str(account.retry_after_s)
            return response
        return start_session(request, account, "password")

    def start_session(request: Request, account: Account, how: str) -> Response:
        token = sessions.start(account)
        log.info("web.signed_in", agency=f"school:{account.urn}" if account.urn else account.role, method=how)
        target = _home_of(account.role)
        # Back from a provider, the navigation started on the provider's site, so the browser does not
        # send our SameSite=Strict cookie on it; a page that moves on by itself (meta refresh, no
        # script) starts a same-site navigation that does.
        response = (
            RedirectResponse(target, 303)
            if how == "password"
            else page(request, "signed_in.html", session=None, target=target)
        )
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def oidc_start(request: Request) -> Response:
        if oidc is None:
            return not_found(request, None, "oidc")
        try:
            url, state = await oidc.start()
        except (OidcRefused, OSError, ValueError) as exc:
            log.warning("web.oidc_unavailable", reason=getattr(exc, "reason", type(exc).__name__))
            return await login_form(request, "Sign-in with your organisation is not available just now.", 503)
        response = RedirectResponse(url, 303)
        response.set_cookie(
            OIDC_STATE_COOKIE, state, max_age=600, httponly=True, samesite="lax", secure=secure, path="/login/oidc"
        )
        return response

    async def oidc_callback(request: Request) -> Response:
        if oidc is None:
            return not_found(request, None, "oidc")
        q = request.query_params
        account: Account | None = None
        try:
            if q.get("error"):
                raise OidcRefused("provider_error")
            email = await oidc.finish(q.get("state", ""), request.cookies.get(OIDC_STATE_COOKIE, ""), q.get("code", ""))
            account = await account_for_email(ledger, email, areas, forces)
            if account is None:
                raise OidcRefused("no_account_for_email")
        except (OidcRefused, OSError, ValueError) as exc:
            # Why, never who: no email, name or token in the log.
            log.info("web.sign_in_refused", method="oidc", reason=getattr(exc, "reason", type(exc).__name__))
            response = await login_form(
                request, "Your organisation's sign-in did not identify a person who may sign in here.", 401
            )
            response.delete_cookie(OIDC_STATE_COOKIE, path="/login/oidc")
            return response
        response = start_session(request, account, "oidc")
        response.delete_cookie(OIDC_STATE_COOKIE, path="/login/oidc")
        return response

    @signed_in()
    async def logout(request: Request, session: Session) -> Response:
        sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @signed_in("key_adult")
    async def inbox(request: Request, session: Session) -> Response:
        urn = str(session.account.urn)
        school = await ledger.school(urn)
        now = clock()
        rows = [
            {**r, "overdue": _is_overdue(r, now)}
            for r in views.inbox_rows(
                await ledger.deliveries_for(f"school:{urn}"), tz, await ledger.withdrawn_copies_for(f"school:{urn}")
            )
        ]
        return page(
            request,
            "inbox.html",
            session=session,
            school=school,
            urn=urn,
            rows=rows,
            overdue=sum(r["overdue"] for r in rows),
        )

    async def own_delivery(session: Session, delivery_id: str) -> DeliveryRecord | None:
        rows = await ledger.deliveries_for(f"school:{session.account.urn}")
        return next((r for r in rows if r.delivery_id == delivery_id.strip().lower()), None)

    async def refused(request: Request, session: Session, what: str) -> Response:
        """A page of another role (or another authority's board): 404, and on the audited log when what was
        asked for exists (a delivery, a page, an authority of the region)."""
        params = request.path_params
        if "delivery_id" in params:
            action = "mark_read" if request.url.path.endswith("/read") else "open"
            await refuse_delivery(ledger, session.account, str(params["delivery_id"]), action, clock())
        elif params.get("code") in areas or "code" not in params:
            code = params.get("code")
            owner = f"mash:{code}" if code else {"board": "mash", "force": "police"}.get(what, "school")
            await refuse_page(ledger, session.account, f"/{what}" + (f"/{code}" if code else ""), owner, code, clock())
        return not_found(request, session, what)

    @signed_in("key_adult")
    async def notification(request: Request, session: Session) -> Response:
        row = await own_delivery(session, request.path_params["delivery_id"])
        if row is None:
            await refuse_delivery(ledger, session.account, request.path_params["delivery_id"], "open", clock())
            return not_found(request, session, "notification")
        [view] = views.inbox_rows([row], tz, await ledger.withdrawn_copies_for(row.recipient))
        return page(request, "notification.html", session=session, n=view)

    @signed_in("key_adult")
    async def mark_read(request: Request, session: Session) -> Response:
        row = await own_delivery(session, request.path_params["delivery_id"])
        if row is None:
            await refuse_delivery(ledger, session.account, request.path_params["delivery_id"], "mark_read", clock())
            return not_found(request, session, "notification")
        if row.withdrawn_at is not None:  # nothing left to read: the page says it was withdrawn
            return RedirectResponse(f"/inbox/{row.delivery_id}", 303)
        async with read_span(ledger, row.delivery_id, row.recipient):  # in the notification's trace, if traced
            await record_read(
                ledger, str(session.account.urn), row.delivery_id, session.account.name, clock(), sign=sign
            )
        return RedirectResponse(f"/inbox/{row.delivery_id}", 303)

    def authority(code: str | None, path: str) -> board.Authority | None:
        area = region.area(code) if region is not None else None
        return board.Authority(area.code, area.name, path) if area is not None else None

    @signed_in("mash")
    async def board_page(request: Request, session: Session) -> Response:
        """The regional (or single-area) board; an authority's manager's own authority's."""
        listed = [(a.code, a.name) for a in region.areas.values()] if region is not None else []
        data = await board.build(ledger, clock(), tz, authority(session.account.area, "/board"), listed)
        return page(request, "board.html", session=session, b=data)

    @signed_in("mash")
    async def authority_board(request: Request, session: Session) -> Response:
        """One authority's board: the regional manager's to open, else only its own manager's."""
        code = str(request.path_params["code"])
        if code not in areas:
            return not_found(request, session, "board")
        if session.account.area not in (None, code):
            return await refused(request, session, "board")
        data = await board.build(ledger, clock(), tz, authority(code, f"/board/{code}"))
        return page(request, "board.html", session=session, b=data)

    @signed_in("police")
    async def force_page(request: Request, session: Session) -> Response:
        """What became of the force's own notifications, per authority of the region; nobody else's."""
        data = await force.build(ledger, str(session.account.force), clock(), region)
        return page(request, "force.html", session=session, f=data)

    async def accessibility(request: Request) -> Response:
        return page(
            request,
            "accessibility.html",
            session=sessions.get(request.cookies.get(SESSION_COOKIE)),
            idle_minutes=settings.web_session_idle_min,
            longest_hours=settings.web_session_max_hours,
        )

    async def unknown(request: Request) -> Response:
        return not_found(request, sessions.get(request.cookies.get(SESSION_COOKIE)), "unknown")

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/login/oidc", oidc_start),
            Route(CALLBACK_PATH, oidc_callback),
            Route("/logout", logout, methods=["POST"]),
            Route("/inbox", inbox),
            Route("/inbox/{delivery_id}", notification),
            Route("/inbox/{delivery_id}/read", mark_read, methods=["POST"]),
            Route("/board", board_page),
            Route("/board/{code}", authority_board),
            Route("/force", force_page),
            Route("/accessibility", accessibility),
            *PROBE_ROUTES,  # /healthz, /readyz (app.health)
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            Route("/{rest:path}", unknown),
        ]
    )
    app.add_middleware(SecurityHeaders)
    app.state.sessions = sessions
    app.state.throttle = throttle
    app.state.readiness = readiness or Readiness(ledger)
    return app


def _home_of(role: str) -> str:
    """Where a person lands once signed in: the board, the force's page or the inbox."""
    return {"mash": "/board", "police": "/force"}.get(role, "/inbox")


def _is_overdue(row: dict[str, Any], now: datetime) -> bool:
    """Not read yet and its deadline has passed."""
    due = row["notify_by"] and not row["read_at"] and not row.get("withdrawn_at")
    return bool(due and datetime.fromisoformat(row["notify_by"]) < now)
