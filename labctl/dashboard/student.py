"""A student's page: /student, opened with the copy's own token (the hand-out
gives it). It shows that copy only -- its VMs, the checks the student may run
and their attempts -- and offers "check my work", a reset of one of its VMs,
and saving or restoring a snapshot: one action at a time per copy. The app's
guard resolves the token to the copy before anything here runs
(request.state.copy); nothing a student sends names a lab or a copy."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from labctl.dashboard.replies import refusal
from labctl.errors import LabctlError, UsageError
from labctl.events import Event
from labctl.usecases import students
from labctl.usecases.session import Session

STATIC = Path(__file__).parent / "static"
COOKIE = "labctl_student"
STUDENT_FILES = frozenset({"student.js", "style.css", "terminal.js", "vendor/xterm.js",
                           "vendor/xterm.css", "vendor/addon-fit.js"})
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class StudentPages:
    def __init__(self, session: Callable[..., Session], note: Callable[[str, str, str], None]):
        self.session, self.note = session, note
        self._busy: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def routes(self) -> list[Route]:
        return [Route("/student", self.page), Route("/student/static/{name:path}", self.static),
                Route("/student/api/state", self.api_state),
                Route("/student/api/check", self.api_check, methods=["POST"]),
                Route("/student/api/reset", self.api_reset, methods=["POST"]),
                Route("/student/api/snapshot", self.api_snapshot, methods=["POST"]),
                Route("/student/api/containers", self.api_containers, methods=["POST"])]

    def copy_of(self, given: str) -> str | None:
        if not given:
            return None
        session = self.session()
        try:
            return students.copy_of(session, given)
        finally:
            session.close()

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "student.html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STUDENT_FILES:  # the student's page's own files, nothing else
            return JSONResponse({"error": f"no file '{name}'"}, status_code=404)
        return FileResponse(STATIC / name)

    async def api_state(self, request: Request) -> Response:
        name = request.state.copy

        def look() -> dict[str, Any]:
            session = self.session()
            try:
                return students.state(session, name)
            finally:
                session.close()

        return JSONResponse(await asyncio.to_thread(look))

    async def _one_at_a_time(self, request: Request, what: str,
                             run: Callable[[Session, str, dict], dict],
                             fields: frozenset[str] = frozenset()) -> Response:
        name = request.state.copy
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or any(k not in fields or not isinstance(v, str)
                                             for k, v in body.items()):
            return JSONResponse({"error": "unexpected request", "hint": "fields: "
                                 + (", ".join(sorted(fields)) or "none")}, status_code=400)
        with self._guard:
            busy = self._busy.setdefault(name, threading.Lock())
        if not busy.acquire(blocking=False):
            return JSONResponse({"error": "another action on your lab is still running",
                                 "hint": "wait for it to finish"}, status_code=409)

        def act() -> dict:
            session = self.session(lambda e: self.note(f"{what} {name}", e.stage,
                                                       f"{e.subject} {e.detail}"))
            try:
                self.note(f"{what} {name}", "running", "from the student's page")
                done = run(session, name, body)
                self.note(f"{what} {name}", "done", "")
                return done
            finally:
                session.close()

        try:
            return JSONResponse(await asyncio.to_thread(act))
        except LabctlError as exc:  # as on the instructor's page
            return refusal(exc)
        finally:
            busy.release()

    async def api_check(self, request: Request) -> Response:
        return await self._one_at_a_time(
            request, "check my work", lambda s, name, _b: students.check_my_work(s, name))

    async def api_containers(self, request: Request) -> Response:
        """Their containers, on demand (an SSH round trip per VM)."""
        from labctl.usecases import dashboard as view

        return await self._one_at_a_time(
            request, "containers",
            lambda s, name, _b: {"containers": view.containers_of(s, name)})

    async def api_reset(self, request: Request) -> Response:
        def run(session: Session, name: str, body: dict) -> dict:
            from labctl.usecases import classes

            lab, copy = students.copy_lab(session, name)
            vm = vm_of(session, name, body.get("vm", ""))
            names, target = classes.reset(session, lab, [vm], copy,
                                          lambda _c, e: session.report(e))
            return {"reset": sorted(names), "target": target}

        return await self._one_at_a_time(request, "reset", run, frozenset({"vm"}))

    async def api_snapshot(self, request: Request) -> Response:
        def run(session: Session, name: str, body: dict) -> dict:
            from labctl.usecases import snapshots

            vm = vm_of(session, name, body.get("vm", ""))
            snapshot, action = body.get("name", ""), body.get("action", "")
            if not NAME.fullmatch(snapshot):
                raise UsageError(f"'{snapshot[:40]}' is not a snapshot name",
                                 "lowercase letters, digits, '.', '_' and '-'")
            if action == "save":
                snapshots.save(session, name, vm, snapshot, "from the student's page")
            elif action == "restore":
                snapshots.restore(session, name, vm, snapshot)
            else:
                raise UsageError("the action is save or restore")
            session.report(Event(f"vm {vm}", action, snapshot))
            return {"vm": vm, "action": action, "name": snapshot}

        return await self._one_at_a_time(request, "snapshot", run,
                                          frozenset({"vm", "name", "action"}))


def vm_of(session: Session, lab: str, vm: str) -> str:
    """A VM of the student's own copy (anything else is refused)."""
    known = [f.meta.name for f in session.lab_host(lab).domains(lab)]
    if vm not in known:
        raise UsageError(f"your lab has no VM '{vm[:40]}'", f"its VMs: {', '.join(known)}")
    return vm
