"""The dashboard's API on libvirt's test:/// driver (Starlette's TestClient,
no server, no browser): the state of labs and classes, checks and resets run
through the core use cases, and bad requests -- unknown lab, forged token, a
lab another labctl holds -- get a clear error and change nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from labctl.dashboard.app import Dashboard
from labctl.lab.loader import load_lab
from labctl.lock import lab_lock
from labctl.usecases import classes
from labctl.usecases.session import Session

from .fakes import FakeReach, session_on

LAB = """name: room
copies: 2
vms:
  - name: node
checks:
  - name: os
    points: 2
    vm: node
    command: {run: cat /etc/os-release, stdout: Debian}
"""


@pytest.fixture
def board(tmp_path: Path):
    (tmp_path / "room.yaml").write_text(LAB)
    reach = FakeReach({"cat /etc/os-release": (0, "\nNAME=Debian\n", "")})
    session = session_on(tmp_path, reach)
    classes.up_any(session, load_lab(tmp_path / "room.yaml"), lambda *_: None)

    def make(settings, report):
        made = Session(settings, report, open_host=lambda _u: session.host(), reach=reach)
        made.close = lambda: None  # the test driver's state lives in this one connection
        return made

    def client(token: str = TOKEN, send: str | None = TOKEN) -> TestClient:
        """A client of a dashboard with `token`, sending `send` (None: nothing)."""
        return TestClient(Dashboard(session.settings, token, make_session=make).app(),
                          base_url="http://127.0.0.1:8800",
                          headers={"x-labctl-token": send} if send else {})

    return session, client


TOKEN = "s3cret-token"


def test_the_state_shows_the_class_copy_by_copy(board):
    _session, client = board
    state = client().get("/api/state").json()
    (room,) = state["labs"]
    assert room["name"] == "room" and room["is_class"] and room["source"].endswith("room.yaml")
    assert [c["copy"] for c in room["copies"]] == ["1", "2"]
    vm = room["copies"][0]["vms"][0]
    assert vm["name"] == "node" and vm["state"] == "running"
    assert vm["stage"] == "boot-finished"  # the latest stage `up` recorded
    page = client().get("/")
    assert page.status_code == 200 and "static/app.js" in page.text
    assert "EventSource" in client().get("/static/app.js").text
    assert client().get("/static/..%2Fapp.py").status_code == 404


def test_the_view_lists_each_hosts_domains_once_and_watchers_share_a_look(board, monkeypatch):
    """A class of N copies looked at N lists of every domain (quadratic: 0.58 s
    for 40 copies); and each watching page looked on its own."""
    from labctl.usecases import dashboard as view
    from labctl.usecases import lab as lab_cases
    session, _client = board
    host = session.host()
    lists = []
    real = type(host).domains
    monkeypatch.setattr(type(host), "domains",
                        lambda self, lab=None: lists.append(lab) or real(self, lab))
    state = view.state(session)
    assert lists == [None]  # once, for both copies
    assert [len(c["vms"]) for c in state["labs"][0]["copies"]] == [1, 1]
    same = [dataclasses.replace(v, uptime=None) for v in lab_cases.status(session, "room-1", {})]
    assert same == [dataclasses.replace(v, uptime=None)
                    for v in lab_cases.status(session, "room-1")]
    looks = []
    monkeypatch.setattr(view, "state", lambda *a, **k: looks.append(1) or {"labs": []})
    board_ = Dashboard(session.settings, TOKEN,
                       make_session=lambda settings, report: session)
    board_.state(fresh_within=10)
    board_.state(fresh_within=10)  # another watcher within the tick: shared
    assert len(looks) == 1
    board_.state()  # an action's answer looks again
    assert len(looks) == 2


def test_one_labs_objects_are_found_without_reading_the_others(board, monkeypatch):
    """A student's page asks for its copy's VMs every 2 s: only objects named
    LAB.* are read (the others' XML is not parsed)."""
    from labctl.virt import inventory, metadata
    session, _client = board
    read = []
    real = metadata.from_xml
    monkeypatch.setattr(metadata, "from_xml", lambda xml: read.append(xml) or real(xml))
    conn = session.host().conn
    (found,) = inventory.domains(conn, "room-1")
    assert found.libvirt_name == "room-1.node" and len(read) == 1
    read.clear()
    assert {f.libvirt_name for f in inventory.domains(conn)} >= {"room-1.node", "room-2.node"}
    assert len(read) >= 2


def test_check_and_reset_through_the_core(board):
    session, client = board
    run = client().post("/api/check", json={"lab": "room"}).json()
    assert [c["earned"] for c in run["copies"]] == [2, 2]
    state = client().get("/api/state").json()
    assert state["labs"][0]["checks"]["run_id"] == run["run_id"]
    assert client().get("/api/checks.csv?lab=room").text.startswith("copy,lab,check")
    done = client().post("/api/reset", json={"lab": "room", "copy": "2", "vm": "node"}).json()
    assert done == {"reset": ["node"], "target": "copy '2' of 'room'"}
    assert session.host().is_running("room-2.node")


def test_bad_requests_get_a_clear_error_and_change_nothing(board, tmp_path):
    session, client = board
    answer = client().post("/api/check", json={"lab": "nope"})
    assert answer.status_code == 400 and "no lab or class 'nope'" in answer.json()["error"]
    assert client().post("/api/reset", json={"lab": "room"}).status_code == 400
    assert client().post("/api/check", content=b"not json",
                         headers={"content-type": "application/json"}).status_code == 400
    guarded = client(send=None)
    assert guarded.get("/api/state").status_code == 403
    assert guarded.get("/api/state?token=forged").status_code == 403
    assert guarded.get(f"/api/state?token={TOKEN}").status_code == 200
    before = session.host().domain("room-1", "node").meta.spec_hash
    with lab_lock(session.data_dir, "room-1", "up"):  # another labctl holds the copy
        busy = client().post("/api/reset", json={"lab": "room", "copy": "1", "vm": "node"})
    assert busy.status_code == 409, busy.json()
    assert session.host().domain("room-1", "node").meta.spec_hash == before
    assert session.host().is_running("room-1.node")


def test_thirty_copies_at_a_glance(tmp_path: Path, monkeypatch):
    """The page must stay usable with a class of 30: each class carries a
    summary (VMs running, copies ready, full marks, copies that could not be
    checked) and the page filters rows by copy."""
    # admission reads this machine's free RAM: fixed here, whatever else runs
    # (the suite's other stream boots real VMs at the same time)
    monkeypatch.setattr("labctl.virt.host._mem_available_mib", lambda: 32 << 10)
    small = "- name: node\n    memory: 256M\n    disk: 1G"  # thirty fit the test driver
    (tmp_path / "big.yaml").write_text(LAB.replace("copies: 2", "copies: 30")
                                       .replace("name: room", "name: big")
                                       .replace("- name: node", small))
    reach = FakeReach({"cat /etc/os-release": (0, "\nNAME=Debian\n", "")})
    session = session_on(tmp_path, reach)
    lab = load_lab(tmp_path / "big.yaml")
    classes.up_any(session, lab, lambda *_: None)
    session.host().conn.lookupByName("big-7.node").destroy()
    from labctl.usecases.checks import run_checks
    run_checks(session, lab, all_copies=True)
    from labctl.usecases.dashboard import state
    (big,) = state(session)["labs"]
    assert [c["copy"] for c in big["copies"]] == [str(n) for n in range(1, 31)]
    assert big["summary"] == {"copies": 30, "vms": 30, "running": 29, "ready": 29,
                              "checked": 30, "full_marks": 29, "could_not_run": 1}
    script = (Path(__file__).parents[2] / "labctl/dashboard/static/app.js").read_text()
    assert "lab.summary" in script and 'addEventListener("input", filter)' in script


# -- the guard: nothing a student controls reaches the instructor's side -------------

def test_loopback_needs_the_token_too(board):
    """A lab VM reaches this machine's 127.0.0.1 as 10.0.2.2 (user-mode): no
    request without the token is served, whatever address it came to."""
    _session, client = board
    bare = client(send=None)
    for path in ("/", "/api/state", "/api/events", "/api/checks.csv?lab=room",
                 "/api/handout.zip?lab=room", "/static/app.js"):
        answer = bare.get(path, headers={"host": "10.0.2.2:8800"})
        assert answer.status_code == 403, path
        assert "room" not in answer.text
    for path in ("/api/check", "/api/reset", "/api/containers"):
        assert bare.post(path, json={"lab": "room", "copy": "1", "vm": "node"}
                         ).status_code == 403, path


def test_the_printed_address_sets_a_cookie_once(board):
    _session, client = board
    browser = client(send=None)
    first = browser.get(f"/?token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert browser.get("/api/state").status_code == 200  # the cookie from here on
    assert client(send=None).get("/api/state").status_code == 403


def test_foreign_origins_and_hosts_are_refused(board):
    session, client = board
    before = session.host().domain("room-2", "node").meta.spec_hash
    c = client()
    form = c.post("/api/reset", content=b"lab=room&copy=2&vm=node",
                  headers={"content-type": "application/x-www-form-urlencoded",
                           "origin": "http://evil.example"})
    assert form.status_code == 403
    plain = c.post("/api/reset", content=b'{"lab": "room", "copy": "2", "vm": "node"}',
                   headers={"content-type": "text/plain"})
    assert plain.status_code == 415  # a cross-site form can send text/plain, never JSON
    neighbour = c.post("/api/reset", json={"lab": "room", "copy": "2", "vm": "node"},
                       headers={"origin": "http://127.0.0.1:9999"})
    assert neighbour.status_code == 403  # another port of loopback is another origin
    sneaky = c.post("/api/reset", json={"lab": "room", "copy": "2", "vm": "node"},
                    headers={"sec-fetch-site": "same-site"})
    assert sneaky.status_code == 403
    rebound = c.get("/api/state", headers={"host": "attacker.example:8800"})
    assert rebound.status_code == 403 and "Host" in rebound.json()["error"]
    assert c.get("/api/state", headers={"host": "localhost:8800"}).status_code == 200
    assert c.get("/api/state", headers={"origin": "http://127.0.0.1:8800"}).status_code == 200
    assert session.host().domain("room-2", "node").meta.spec_hash == before


def test_a_reset_never_makes_a_copy_and_bad_bodies_are_4xx(board):
    session, client = board
    c = client()
    ghost = c.post("/api/reset", json={"lab": "room", "copy": "99", "vm": "node"})
    assert ghost.status_code == 400 and "no copy '99'" in ghost.json()["error"]
    assert session.host().domain("room-99", "node") is None
    for body in ({"lab": "room", "copy": 2, "vm": "node"}, {"lab": "room", "vm": ["node"]},
                 {"lab": "room", "copy": "2", "vm": "node", "extra": "x"}, ["room"],
                 {"lab": 1}, "room"):
        answer = c.post("/api/reset", json=body)
        assert 400 <= answer.status_code < 500, (body, answer.status_code)


def test_the_handout_zip_leaves_no_keys_behind(board, tmp_path, monkeypatch):
    import tempfile
    _session, client = board
    made = tmp_path / "tmp"
    made.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(made))
    answer = client().get("/api/handout.zip?lab=room")
    assert answer.status_code == 200 and answer.content[:2] == b"PK"
    assert list(made.iterdir()) == []
    assert client().get("/api/handout.zip?lab=nope").status_code == 404
    assert list(made.iterdir()) == []


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
def test_labctl_dashboard_always_has_a_token(listen, tmp_path, monkeypatch, capsys):
    """`labctl dashboard` on loopback made no token: a guest's 10.0.2.2 was let in."""
    import uvicorn

    from labctl.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    with pytest.raises(SystemExit):
        main([f"--data-dir={tmp_path}", "dashboard", "--listen", listen, "--port", "8801"])
    printed = capsys.readouterr().out
    token = printed.split("?token=")[1].split()[0]
    assert len(token) >= 32 and served["host"] == listen
    client = TestClient(served["app"], base_url="http://127.0.0.1:8801")
    assert client.get("/api/state").status_code == 403
    assert client.get("/api/state", headers={"x-labctl-token": token}).status_code == 200
