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
                               help="Serve on this address (default: loopback only)."),
    names: list[str] = typer.Option([], "--name", metavar="NAME",
                                    help="A DNS name of this machine the browser may use "
                                         "(IP addresses and localhost always work)."),
    uri: str = URI_OPTION,
) -> None:
    """A live web page of every lab and class of this data dir (VMs, stages, SSH,
    containers, checks, bench runs), with check, reset and hand-out downloads.
    Every request needs the token in the printed address, loopback included: a
    lab VM reaches this machine's loopback through its user-mode network."""
    import uvicorn

    from labctl.dashboard.app import Dashboard
    from labctl.usecases.session import Settings

    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise UsageError(f"'{listen}' is not an IP address", "e.g. --listen 0.0.0.0") from None
    token = secrets.token_urlsafe(24)
    board = Dashboard(Settings.from_env(uri, STATE.data_dir), token, lab,
                      names=frozenset(n.lower() for n in names))
    shown = listen if not ipaddress.ip_address(listen).is_unspecified else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    address = f"http://{shown}:{port}/?token={token}"
    out.print(f"dashboard: {address}  (Ctrl-C stops it)", markup=False)
    out.file.flush()  # the address is what a person (or a script) waits for
    uvicorn.run(board.app(), host=listen, port=port, log_level="warning")
