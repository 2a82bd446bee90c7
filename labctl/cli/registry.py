"""labctl registry up|down|status and labctl push: the lab's own OCI registry."""

from __future__ import annotations

import typer

from labctl.cli.app import STATE, Typer, app
from labctl.cli.common import LAB_OPTION, REGISTRY, URI_OPTION, lab_name, session
from labctl.cli.containers import split_container
from labctl.cli.output import out, print_json

registry_app = Typer(help="The lab's own OCI registry (CNCF distribution).",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry", rich_help_panel=REGISTRY)
LAB_ARG = typer.Argument(None, metavar="[LAB.yaml|NAME]")


@registry_app.command("up")
def registry_up(lab: str = LAB_ARG, uri: str = URI_OPTION,
                proxy: str = typer.Option(None, "--proxy", metavar="URL",
                                          help="Run as a pull-through cache of this "
                                               "registry (e.g. https://registry-1.docker.io): "
                                               "the class fetches each layer once.")) -> None:
    """Start the registry on the lab network; VMs are configured to use it."""
    from labctl.usecases import registry as cases

    registry = cases.registry_up(session(uri), lab_name(lab, uri), proxy)
    if registry.upstream:
        out.print(f"class cache of '{registry.lab}' at {registry.address}, pulling through "
                  f"from {registry.upstream}: the VMs use it as their Docker Hub mirror",
                  markup=False)
        return
    out.print(f"lab registry of '{registry.lab}' at {registry.address} "
              "(push with 'labctl push VM/CONTAINER')", markup=False)


@registry_app.command("down")
def registry_down(lab: str = LAB_ARG, uri: str = URI_OPTION) -> None:
    """Stop the registry and delete what was pushed to it."""
    from labctl.usecases import registry as cases

    name = lab_name(lab, uri)
    stopped = cases.registry_down(session(uri), name)
    out.print(f"lab registry of '{name}' " + ("stopped." if stopped else "was not running."),
              markup=False)


@registry_app.command("status")
def registry_status(lab: str = LAB_ARG, uri: str = URI_OPTION) -> None:
    """Where the registry listens, if it runs."""
    from labctl.usecases import registry as cases

    registry = cases.registry_status(session(uri), lab_name(lab, uri))
    if STATE.json:
        print_json(registry.__dict__ if registry else None)
    else:
        where = f" on host {registry.host}" if registry and registry.host else ""
        out.print(f"running at {registry.address}{where} (pid {registry.pid})" if registry
                  else "not running", markup=False)


@app.command(rich_help_panel=REGISTRY)
def push(target: str = typer.Argument(..., metavar="VM/CONTAINER"),
         as_name: str = typer.Option(None, "--as", metavar="NAME:TAG",
                                     help="Name in the registry (default CONTAINER:latest)."),
         lab: str = LAB_OPTION, uri: str = URI_OPTION) -> None:
    """Publish the image a container runs to the lab registry."""
    from labctl.usecases import registry as cases

    name, vm, container = split_container(target, lab, uri)
    ref = cases.push(session(uri), name, vm, container, as_name)
    out.print(f"pushed {ref}", markup=False)
