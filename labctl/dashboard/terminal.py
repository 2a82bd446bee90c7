"""The browser terminal's other end: a WebSocket carrying one SSH shell in one
VM (usecases/terminal.py). The app decides who may open it (the instructor's
token for any VM, a student's for a VM of their copy) and checks Host and
Origin first: a WebSocket is not covered by the browser's same-origin rule,
so a page of another site could otherwise open one with the cookie. Output
goes as binary frames; input and resizes come as JSON text frames. The shell
ends when the socket does (the tab closed), and the other way round."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from labctl.errors import LabctlError
from labctl.usecases import terminal
from labctl.usecases.session import Session

READ = 32768


async def serve(websocket: WebSocket, session: Session, lab: str, vm: str) -> None:
    cols, rows = _size(websocket.query_params)
    await websocket.accept()
    try:
        transport, channel = await asyncio.to_thread(terminal.open_shell, session, lab, vm,
                                                     cols, rows)
    except LabctlError as exc:
        await websocket.send_text(json.dumps({"error": exc.message}))
        await websocket.close(code=1011)
        return
    except Exception as exc:  # noqa: BLE001 -- SSH refused, no route: said, then closed
        await websocket.send_text(json.dumps({"error": f"cannot reach VM '{vm}': {exc}"}))
        await websocket.close(code=1011)
        return

    async def pump_out() -> None:
        while True:
            data = await asyncio.to_thread(channel.recv, READ)
            if not data:
                return
            await websocket.send_bytes(data)

    async def pump_in() -> None:
        while True:
            message = json.loads(await websocket.receive_text())
            if not isinstance(message, dict):
                continue
            if message.get("type") == "input" and isinstance(message.get("data"), str):
                await asyncio.to_thread(channel.sendall, message["data"].encode())
            elif message.get("type") == "resize":
                c, r = _size(message)
                channel.resize_pty(width=c, height=r)

    tasks = [asyncio.create_task(pump_out()), asyncio.create_task(pump_in())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        channel.close()
        transport.close()
        session.close()
        try:
            await websocket.close()
        except Exception:  # noqa: BLE001 -- already closed by the browser
            pass


def _size(source: Any) -> tuple[int, int]:
    try:
        return int(source.get("cols", 80)), int(source.get("rows", 24))
    except (TypeError, ValueError):
        return 80, 24
