"""The dashboard's HTTP side. Every request, loopback included, passes the
guard (dashboard/guard.py: token, Host, Origin, JSON bodies); the page and its
script ship in the package (no CDN). State reaches the page as server-sent
events whenever it changes (looked at twice a second, one look shared by every
watching page: `up`, `reset`, `check` or
`down` in another terminal show up live). Actions run in a worker thread
through the same use cases as the CLI, under the same locks; a lab another
labctl holds is refused at once (409), never waited for."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from labctl.bench.analysis import recent_headlines
from labctl.dashboard.guard import COOKIE, Guard
from labctl.dashboard.replies import refusal
from labctl.dashboard.student import COOKIE as STUDENT_COOKIE
from labctl.dashboard.student import StudentPages
from labctl.errors import LabctlError, UsageError
from labctl.events import Event
from labctl.plan import classroom
from labctl.usecases import dashboard as view
from labctl.usecases.session import Session, Settings

STATIC = Path(__file__).parent / "static"
# Seconds between looks at the state: a change shows within TICK plus one
# look (~0.1 s for a class of 40 copies), and every page watching shares the
# look (_view), so more watchers do not mean more looks.
TICK = 0.5


@functools.cache
def _shipped() -> frozenset[str]:
    """The page's files (static/ and its vendor/ folder), by relative path."""
    return frozenset(str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file())


class Dashboard:
    def __init__(self, settings: Settings, token: str, only: str | None = None,
                 make_session: Callable[[Settings, Callable[[Event], None]], Session] = Session,
                 names: frozenset[str] = frozenset()):
        # Actions never wait for a lab another labctl holds: they say so.
        self.settings = dataclasses.replace(settings, lock_wait=False)
        self.guard = Guard(token, names)
        self.only = only
        self._make_session = make_session  # unit tests: a test:/// host and a fake reach
        self.containers: dict[str, list[dict]] = {}
        self.activity: list[dict[str, Any]] = []  # progress of the actions started here
        self.lock = threading.Lock()
        self._looking: Session | None = None
        self._view: tuple[float, dict[str, Any]] | None = None  # (when, the last look)
        self._looks = threading.Lock()  # one look at a time; watchers share it
        self.students = StudentPages(self.session, self.note)

    # -- state ----------------------------------------------------------------
    def session(self, report: Callable[[Event], None] | None = None) -> Session:
        return self._make_session(self.settings, report or (lambda _e: None))

    def state(self, fresh_within: float = 0.0) -> dict[str, Any]:
        """The whole view; one taken less than `fresh_within` seconds ago (by
        any watcher) is shared instead of looking again."""
        with self._looks:
            if self._view is not None and time.monotonic() - self._view[0] < fresh_within:
                data = dict(self._view[1])
            else:
                with self.lock:  # one libvirt connection for the looks, opened once
                    if self._looking is None:
                        self._looking = self.session()
                data = view.state(self._looking, self.only, self.containers)
                data["bench"] = recent_headlines(self.settings.data_dir)
                self._view = (time.monotonic(), data)
                data = dict(data)
        with self.lock:
            data["activity"] = self.activity[-30:]
        return data

    def note(self, what: str, stage: str, detail: str = "") -> None:
        with self.lock:
            self.activity.append({"what": what, "stage": stage, "detail": detail[:200]})

    # -- HTTP -----------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [
            Route("/", self.page), Route("/static/{name:path}", self.static),
            Route("/api/state", self.api_state), Route("/api/events", self.events),
            Route("/api/check", self.api_check, methods=["POST"]),
            Route("/api/reset", self.api_reset, methods=["POST"]),
            Route("/api/containers", self.api_containers, methods=["POST"]),
            Route("/api/handout.zip", self.handout), Route("/api/checks.csv", self.checks_csv),
            *self.students.routes(),
            WebSocketRoute("/api/terminal", self.terminal),
            WebSocketRoute("/student/terminal", self.student_terminal),
        ]
        async def guard(request: Request, call_next):
            student = request.url.path == "/student" or request.url.path.startswith("/student/")
            if student:  # a copy's own token (its page), never the instructor's
                given = request.query_params.get("token") or request.cookies.get(
                    STUDENT_COOKIE) or ""
                copy = await asyncio.to_thread(self.students.copy_of, given)
                request.state.copy = copy
                token_ok = copy is not None
            else:
                given = self.guard.given_token(request.query_params, request.headers,
                                               request.cookies)
                token_ok = None
            refused = self.guard.refuse(request.method, request.headers.get("host", ""),
                                        request.headers, given,
                                        request.headers.get("content-type", ""), token_ok)
            if refused is not None:
                return JSONResponse({"error": refused.error, "hint": refused.hint},
                                    status_code=refused.status)
            if request.query_params.get("token") and request.method == "GET" \
                    and request.url.path == "/":
                # the printed address carries the token once: from here on a cookie
                # (not in the address bar, history or a Referer)
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(COOKIE, self.guard.token, httponly=True,
                                    samesite="strict")
                return response
            if student and request.query_params.get("token") and request.method == "GET" \
                    and request.url.path == "/student":
                response = RedirectResponse("/student", status_code=303)
                response.set_cookie(STUDENT_COOKIE, given, httponly=True, samesite="strict")
                return response
            return await call_next(request)

        return Starlette(routes=routes,
                         middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])

    # -- the browser terminal (WebSockets pass no middleware: each checks here) --
    def _socket_refused(self, websocket: WebSocket, token_ok: bool) -> bool:
        """Host, Origin (required: a browser always sends it on a WebSocket, and
        another site's page could open one with the cookie) and the token."""
        headers = {k.lower(): v for k, v in websocket.headers.items()}
        if "origin" not in headers:
            return True
        return self.guard.refuse("GET", headers.get("host", ""), headers, "",
                                 "", token_ok) is not None

    async def terminal(self, websocket: WebSocket) -> None:
        """The instructor's terminal: any VM of any lab shown here."""
        from labctl.dashboard import terminal

        ok = self.guard.token_ok(websocket.cookies.get(COOKIE, ""))
        if self._socket_refused(websocket, ok):
            await websocket.close(code=1008)
            return
        lab, vm = websocket.query_params.get("lab", ""), websocket.query_params.get("vm", "")
        await terminal.serve(websocket, self.session(), lab, vm)

    async def student_terminal(self, websocket: WebSocket) -> None:
        """A student's terminal: a VM of the copy their token opens, nothing else."""
        from labctl.dashboard import terminal
        from labctl.dashboard.student import vm_of

        copy = await asyncio.to_thread(self.students.copy_of,
                                       websocket.cookies.get(STUDENT_COOKIE, ""))
        if self._socket_refused(websocket, copy is not None):
            await websocket.close(code=1008)
            return
        session = self.session()
        vm = websocket.query_params.get("vm", "")
        try:
            vm_of(session, copy, vm)
        except LabctlError:
            session.close()
            await websocket.close(code=1008)
            return
        await terminal.serve(websocket, session, copy, vm)  # it closes the session

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _shipped():  # the folder's own files, nothing outside it
            return JSONResponse({"error": f"no file '{name[:80]}'"}, status_code=404)
        return FileResponse(STATIC / name)

    async def api_state(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.state))

    async def events(self, request: Request) -> Response:
        async def stream():
            last = ""
            while not await request.is_disconnected():
                data = await asyncio.to_thread(self.state, TICK * 0.8)
                text = json.dumps(data, sort_keys=True, default=str)
                digest = hashlib.sha256(text.replace(f'"at": {data["at"]}', "").encode()
                                        ).hexdigest()
                if digest != last:
                    last = digest
                    yield f"event: state\ndata: {text}\n\n"
                else:
                    yield ": still here\n\n"
                await asyncio.sleep(TICK)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def _action(self, request: Request, run: Callable[[dict], dict],
                      fields: frozenset[str] = frozenset({"lab", "copy"})) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the request body must be JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("lab"), str):
            return JSONResponse({"error": "say which lab: {\"lab\": NAME}"}, status_code=400)
        wrong = sorted(k for k, v in body.items()
                       if k not in fields or not isinstance(v, str | None))
        if wrong:
            return JSONResponse({"error": f"unexpected field '{wrong[0]}'",
                                 "hint": "fields: " + ", ".join(sorted(fields))
                                 + " (strings)"}, status_code=400)
        try:
            return JSONResponse(await asyncio.to_thread(run, body))
        except LabctlError as exc:
            return refusal(exc)

    async def api_check(self, request: Request) -> Response:
        def run(body: dict) -> dict:
            from labctl.usecases.checks import run_checks

            session = self.session()
            lab = view.lab_of(session, body["lab"])
            copy = body.get("copy") or None
            what = f"check {body['lab']}" + (f" copy {copy}" if copy else "")
            self.note(what, "running")
            done = run_checks(session, lab, copy,
                              all_copies=copy is None and classroom.is_class(lab),
                              progress=lambda c: self.note(what, "checked",
                                                           f"{c.copy or c.lab}: {c.passed}"
                                                           f" of {len(c.outcomes)} passed"))
            self.note(what, "done", f"run {done.run_id}")
            session.close()
            return done.to_dict()

        return await self._action(request, run)

    async def api_reset(self, request: Request) -> Response:
        def run(body: dict) -> dict:
            from labctl.usecases import classes

            vm = body.get("vm")
            if not isinstance(vm, str):
                raise UsageError("say which VM to reset: {\"lab\", \"copy\", \"vm\"}")
            what = f"reset {body['lab']} {body.get('copy') or ''} {vm}".replace("  ", " ")
            session = self.session(lambda e: self.note(what, e.stage, f"{e.subject} {e.detail}"))
            lab = view.lab_of(session, body["lab"])
            self.note(what, "running")
            names, target = classes.reset(session, lab, [vm], body.get("copy") or None,
                                          lambda _copy, e: session.report(e))
            self.note(what, "done", target)
            session.close()
            return {"reset": sorted(names), "target": target}

        return await self._action(request, run, frozenset({"lab", "copy", "vm"}))

    async def api_containers(self, request: Request) -> Response:
        def run(body: dict) -> dict:
            rows = view.containers_of(self.session(), body["lab"])
            self.containers[body["lab"]] = rows
            return {"lab": body["lab"], "containers": rows}

        return await self._action(request, run)

    async def handout(self, request: Request) -> Response:
        from labctl.usecases import handout

        group = request.query_params.get("lab", "")
        folder = Path(tempfile.mkdtemp(prefix="labctl-handout-"))
        try:
            lab = await asyncio.to_thread(view.lab_of, self.session(), group)
            # one zip of every student's folder: the folders themselves, not zipped twice
            made = await asyncio.to_thread(handout.write, self.session(), group, folder / group,
                                           None, None, False, lab.checks, lab,
                                           str(request.base_url))
            if not made:
                raise LabctlError(f"class '{group}' has no copies to hand out")
            archive = shutil.make_archive(str(folder / f"{group}-handouts"), "zip",
                                          folder / group)
        except LabctlError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=404)
        # every student's private key is in there: gone once the answer is sent
        return FileResponse(archive, filename=f"{group}-handouts.zip",
                            media_type="application/zip",
                            background=BackgroundTask(shutil.rmtree, folder, True))

    async def checks_csv(self, request: Request) -> Response:
        from labctl.checks.store import CheckHistory

        group = request.query_params.get("lab", "")
        runs = CheckHistory(self.settings.data_dir).runs(group, limit=1)
        if not runs:
            return JSONResponse({"error": f"no check run of '{group}' yet"}, status_code=404)
        return Response(runs[-1].csv_text(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{group}-checks.csv"'})
