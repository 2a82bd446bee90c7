"""`labctl dashboard`: the class on one web page, live."""

from __future__ import annotations

import ipaddress
import secrets

import typer

from labctl.cli.app import CHECKS, STATE, app
from labctl.cli.common import URI_OPTION
from labctl.cli.output import out
from labctl.errors import UsageError


@app.command(rich_help_panel=CHECKS)
def dashboard(
    lab: str = typer.Argument(None, metavar="[LAB]", help="Only this lab or class."),
    port: int = typer.Option(8800, "--port", min=1, max=65535),
    listen: str = typer.Option("127.0.0.1", "--listen", metavar="ADDR",
                               help="Serve on this address; any but loopback needs the "
                                    "token printed at start."),
    uri: str = URI_OPTION,
) -> None:
    """A live web page of every lab and class of this data dir (VMs, stages, SSH,
    containers, checks, bench runs), with check, reset and hand-out downloads."""
    import uvicorn

    from labctl.dashboard.app import Dashboard
    from labctl.usecases.session import Settings

    try:
        loopback = ipaddress.ip_address(listen).is_loopback
    except ValueError:
        raise UsageError(f"'{listen}' is not an IP address", "e.g. --listen 0.0.0.0") from None
    token = None if loopback else secrets.token_urlsafe(24)
    board = Dashboard(Settings.from_env(uri, STATE.data_dir), token, lab)
    shown = f"[{listen}]" if ":" in listen else listen
    address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    out.print(f"dashboard: {address}  (Ctrl-C stops it)", markup=False)
    uvicorn.run(board.app(), host=listen, port=port, log_level="warning")
