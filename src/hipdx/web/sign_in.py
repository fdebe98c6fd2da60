"""Signing in and out of a browser session (stored cases only): ``GET, POST /sign-in`` and
``POST /sign-out``. The session is the REST API's cookie; without a database there is no sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.web.context import SESSION_COOKIE, PageContext


def routes(ctx: PageContext) -> APIRouter:
    """The sign-in page, the sign-in form posted, and the sign-out."""
    router = APIRouter(include_in_schema=False)
    api, page = ctx.api, ctx.page

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(next: str = "/") -> HTMLResponse:
        if api is None:
            return page("message.html", 404, title="No sign-in", message="These pages run without users (no database).",
                        back="/", back_label="the case list")
        return page("sign_in.html", title="Sign in", next=_local(next), error="")

    @router.post("/sign-in", response_class=HTMLResponse)
    @ctx.guarded  # a record store that fails the sign-in: a page in words, not the service's JSON
    async def sign_in(request: Request) -> Response:
        if api is None:
            return page("message.html", 404, title="No sign-in", message="These pages run without users.", back="/", back_label="the case list")
        from hipdx.store import users

        values = dict(await ctx.form_items(request))
        username, password = values.get("username", "").strip(), values.get("password", "")
        target = _local(values.get("next", "/"))
        if not username or not password or len(username) > 100 or len(password) > 1000 or not username.isprintable():
            return page("sign_in.html", 422, title="Sign in", next=target, username=username[:100],
                        error="Give your user name and your password.")
        from hipdx.errors import TooManyAttempts
        from hipdx.service.api.context import client_address

        try:  # the attempt is recorded and throttled with the API's (hipdx.store.signin)
            token = await run_in_threadpool(users.sign_in, api.engine, username, password, "session", api.token_lifetime,
                                            client_address(request), "web")
        except TooManyAttempts as exc:
            response = page("sign_in.html", 429, title="Sign in", next=target, username=username[:100],
                            error=f"Too many refused sign-ins: try again in {-(-exc.retry_after_s // 60)} minutes.")
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        if token is None:
            return page("sign_in.html", 401, title="Sign in", next=target, username=username,
                        error="Unknown user or wrong password.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(api.token_lifetime.total_seconds()), httponly=True,
                            secure=api.session_cookie_secure, samesite="strict", path="/")
        return response

    @router.post("/sign-out")
    @ctx.guarded
    async def sign_out(request: Request) -> Response:
        from hipdx.store import users

        user = ctx.signed_in(request)
        ctx.check_csrf(user, dict(await ctx.form_items(request)))
        await run_in_threadpool(users.sign_out, api.engine, user.token_hash)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router


def _local(target: str) -> str:
    """A redirect target on this site only (a path), else the case list."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) < 500 else "/"
