"""A student's page on libvirt's test:/// driver (no browser): a copy's token
opens that copy only; "check my work" runs the checks marked for students and
keeps every attempt; a reset or snapshot acts on the token's copy and nothing
else; forged tokens, another copy's VM, and a student's token on the
instructor's API are refused and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from labctl.dashboard.app import Dashboard
from labctl.lab.loader import load_lab
from labctl.usecases import classes, students
from labctl.usecases.session import Session

from .fakes import FakeReach, session_on

LAB = """name: room
copies: 2
per_copy:
  flag: {secret: 8}
vms:
  - name: node
checks:
  - name: os
    points: 2
    vm: node
    student: true
    command: {run: cat /etc/os-release, stdout: Debian}
  - name: secret-one
    vm: node
    command: {run: "true"}
"""
TOKEN = "instructor-token"


@pytest.fixture
def room(tmp_path: Path):
    (tmp_path / "room.yaml").write_text(LAB)
    reach = FakeReach({"cat /etc/os-release": (0, "\nNAME=Debian\n", "")})
    session = session_on(tmp_path, reach)
    classes.up_any(session, load_lab(tmp_path / "room.yaml"), lambda *_: None)

    def make(settings, report):
        made = Session(settings, report, open_host=lambda _u: session.host(), reach=reach)
        made.close = lambda: None
        return made

    app = Dashboard(session.settings, TOKEN, make_session=make).app()

    def client(student: str | None = None) -> TestClient:
        made = TestClient(app, base_url="http://127.0.0.1:8800")
        if student is not None:
            made.get(f"/student?token={student}", follow_redirects=False)  # the cookie
        return made

    return session, client


def test_a_copys_token_opens_its_page_and_only_that_copy(room):
    session, client = room
    one, two = students.token(session, "room-1"), students.token(session, "room-2")
    assert one != two and len(one) == 40
    first = client()
    opened = first.get(f"/student?token={one}", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/student"
    assert "student/static/student.js" in first.get("/student").text
    state = first.get("/student/api/state").json()
    assert (state["lab"], state["copy"]) == ("room-1", "1")
    assert [vm["name"] for vm in state["vms"]] == ["node"]
    assert [c["name"] for c in state["checks"]] == ["os"]  # the student's checks only
    assert "room-2" not in str(state) and "flag" not in str(state)
    assert client(two).get("/student/api/state").json()["lab"] == "room-2"
    assert "fetch" in first.get("/student/static/student.js").text
    assert first.get("/student/static/app.js").status_code == 404  # the instructor's script


def test_a_copys_page_renders_the_lab_file_again_only_when_it_changed(room, monkeypatch):
    import os

    from labctl.usecases import values
    session, _client = room
    renders = []
    real = values.renderer
    monkeypatch.setattr(values, "renderer",
                        lambda data_dir, lab: renders.append(1) or real(data_dir, lab))
    students._RENDERED.clear()
    first = students.state(session, "room-1")
    assert students.state(session, "room-1")["checks"] == first["checks"]  # kept
    assert len(renders) == 1
    source = session.data_dir.parent / "room.yaml"
    source.write_text(source.read_text().replace("name: os", "name: release"))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert [c["name"] for c in students.state(session, "room-1")["checks"]] == ["release"]
    assert len(renders) == 2


def test_check_my_work_keeps_every_attempt(room):
    session, client = room
    student = client(students.token(session, "room-1"))
    for _ in range(2):
        done = student.post("/student/api/check", json={})
        assert done.status_code == 200, done.json()
        (copy,) = done.json()["copies"]
        assert copy["lab"] == "room-1" and [o["check"] for o in copy["outcomes"]] == ["os"]
    attempts = student.get("/student/api/state").json()["attempts"]
    assert [a["earned"] for a in attempts] == [2, 2] and attempts[0]["total"] == 2
    assert len(students.attempts(session, "room-1")) == 2  # the instructor sees them all
    assert students.attempts(session, "room-2") == []
    # the instructor's check history is not the students'
    from labctl.checks.store import CheckHistory
    assert CheckHistory(session.data_dir).runs("room") == []


def test_a_student_acts_on_their_own_copy_only(room):
    session, client = room
    student = client(students.token(session, "room-2"))
    done = student.post("/student/api/reset", json={"vm": "node"})
    assert done.json() == {"reset": ["node"], "target": "copy '2' of 'room'"}
    # naming another copy is not a thing a student can say
    assert student.post("/student/api/reset", json={"vm": "node", "copy": "1"}
                        ).status_code == 400
    assert student.post("/student/api/reset", json={"vm": "room-1.node"}).status_code == 400
    listed = student.post("/student/api/containers", json={})
    assert listed.status_code == 200 and listed.json() == {"containers": []}
    saved = student.post("/student/api/snapshot",
                         json={"vm": "node", "name": "before", "action": "save"})
    assert saved.status_code == 200, saved.json()
    assert "before" in student.get("/student/api/state").json()["vms"][0]["snapshots"]
    assert session.host().snapshots("room-1.node") == [] or all(
        s.name != "before" for s in session.host().snapshots("room-1.node"))


def test_forged_and_misplaced_tokens_are_refused(room):
    session, client = room
    nobody = client()
    assert nobody.get("/student/api/state").status_code == 403
    assert nobody.get("/student/api/state?token=forged").status_code == 403
    assert nobody.get(f"/student/api/state?token={TOKEN}").status_code == 403  # instructor's
    student = client(students.token(session, "room-1"))
    before = session.host().domain("room-1", "node").meta.spec_hash
    for path, body in (("/api/reset", {"lab": "room", "copy": "1", "vm": "node"}),
                       ("/api/check", {"lab": "room"})):
        refused = student.post(path, json=body,
                               headers={"x-labctl-token": students.token(session, "room-1")})
        assert refused.status_code == 403, path
    assert student.get("/api/state").status_code == 403
    assert session.host().domain("room-1", "node").meta.spec_hash == before
    other_site = student.post("/student/api/check", json={},
                              headers={"origin": "http://evil.example"})
    assert other_site.status_code == 403


def test_the_handout_gives_each_student_their_own_page(room, tmp_path):
    import csv

    from labctl.usecases import handout

    session, client = room
    made = handout.write(session, "room", tmp_path / "out", page="http://lab-host:8800/")
    pages = {h.copy: h.page for h in made}
    assert pages["1"] == f"http://lab-host:8800/student?token={students.token(session, 'room-1')}"
    readme = (tmp_path / "out" / "1" / "README.txt").read_text()
    assert pages["1"] in readme and pages["2"] not in readme
    roster = {r["student"]: r["page"] for r in csv.DictReader((tmp_path / "out" /
                                                                "roster.csv").open())}
    assert roster == pages
    token = pages["2"].split("token=")[1]
    assert client(token).get("/student/api/state").json()["copy"] == "2"


# -- the browser terminal ---------------------------------------------------------

def test_a_students_terminal_reaches_a_vm_of_their_copy_only(room, monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    from labctl.usecases import terminal

    from .fakes import EchoChannel

    session, client = room
    opened: list[tuple[str, str, EchoChannel]] = []

    def fake_shell(_session, lab, vm, cols, rows):
        channel = EchoChannel()
        channel.sizes.append((cols, rows))
        opened.append((lab, vm, channel))
        return type("T", (), {"close": lambda self: None})(), channel

    monkeypatch.setattr(terminal, "open_shell", fake_shell)
    token = students.token(session, "room-1")
    ws_client = client()  # the test client's WebSockets send no cookie jar: headers do

    def headers(cookie: str | None, origin: str | None = "http://127.0.0.1:8800") -> dict:
        made = {"host": "127.0.0.1:8800"}
        if cookie:
            made["cookie"] = cookie
        if origin:
            made["origin"] = origin
        return made

    mine = headers(f"labctl_student={token}")
    with ws_client.websocket_connect("/student/terminal?vm=node&cols=100&rows=30",
                                     headers=mine) as ws:
        ws.send_text('{"type": "input", "data": "hostname\\n"}')
        assert ws.receive_bytes() == b"you said: hostname\r\n"
        ws.send_text('{"type": "resize", "cols": 120, "rows": 40}')
        ws.send_text('{"type": "input", "data": "\u00e9\\n"}')  # UTF-8 both ways
        assert ws.receive_bytes().decode() == "you said: \u00e9\r\n"
    assert [(lab, vm) for lab, vm, _ in opened] == [("room-1", "node")]
    assert opened[0][2].sizes == [(100, 30), (120, 40)]
    # refused before any shell: no Origin, another site, a forged token, a VM
    # that is not the copy's, and a student's token on the instructor's terminal
    for path, sent in (
            ("/student/terminal?vm=node", headers(f"labctl_student={token}", None)),
            ("/student/terminal?vm=node", headers(f"labctl_student={token}",
                                                  "http://evil.example")),
            ("/student/terminal?vm=node", headers("labctl_student=forged")),
            ("/student/terminal?vm=room-2.node", mine),
            ("/api/terminal?lab=room-1&vm=node", headers(f"labctl_token={token}"))):
        with pytest.raises(WebSocketDisconnect):
            with ws_client.websocket_connect(path, headers=sent) as ws:
                ws.receive_bytes()
    # the instructor's own token opens any VM's terminal
    with ws_client.websocket_connect("/api/terminal?lab=room-2&vm=node",
                                     headers=headers(f"labctl_token={TOKEN}")) as ws:
        ws.send_text('{"type": "input", "data": "id\\n"}')
        assert ws.receive_bytes() == b"you said: id\r\n"
    assert [(lab, vm) for lab, vm, _ in opened] == [("room-1", "node"), ("room-2", "node")]


def test_a_student_action_on_a_lab_another_labctl_holds_is_409_and_changes_nothing(room):
    from labctl.lock import lab_lock

    session, client = room
    student = client(students.token(session, "room-1"))
    before = session.host().domain("room-1", "node").meta.spec_hash
    with lab_lock(session.data_dir, "room-1", "up"):
        busy = student.post("/student/api/reset", json={"vm": "node"})
    assert busy.status_code == 409, busy.json()
    assert session.host().domain("room-1", "node").meta.spec_hash == before
