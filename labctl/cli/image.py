"""labctl image build | list | rm | pull: the local guest image cache."""

from __future__ import annotations

import typer

from labctl.cli.app import STATE, Typer, app
from labctl.cli.common import IMAGES, URI_OPTION, ProgressPrinter, session
from labctl.cli.output import err, out, print_json
from labctl.errors import UsageError
from labctl.events import Event

image_app = Typer(help="Build, download, list and remove guest images.",
                        no_args_is_help=True)
app.add_typer(image_app, name="image", rich_help_panel=IMAGES)


def _cache():
    from labctl.images.cache import ImageCache

    return ImageCache(STATE.data_dir / "images")


class TransferBar:
    """A rich progress bar fed by Events that carry an amount (downloads)."""

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress("{task.description}", BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=err,
                                 disable=STATE.json)
        self.progress.__enter__()
        self.task = None
        return self

    def __call__(self, event: Event) -> None:
        if event.amount is None:
            return
        done, total = event.amount
        if self.task is None:
            self.task = self.progress.add_task(event.subject, total=total or None)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)


@image_app.command("build")
def build(
    name: str = typer.Argument(..., help="Recipe name (images/NAME.yaml) or a recipe file."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if up to date."),
) -> None:
    """Build a guest image offline from Debian packages (mmdebstrap, no loop devices)."""
    from labctl.images import recipe as recipes
    from labctl.images.builder import build_image

    recipe = recipes.load_recipe(name)
    cache = _cache()
    if not force and cache.has(recipe.name) and \
            cache.get(recipe.name).manifest.get("recipe_digest") == recipe.digest():
        out.print(f"image '{recipe.name}' is up to date (use --force to rebuild).", markup=False)
        return
    image = build_image(recipe, cache, STATE.data_dir / "cache" / "debs", ProgressPrinter(),
                        STATE.data_dir / "logs" / f"image-{recipe.name}.log")
    out.print(f"built image '{image.name}': {image.disk} "
              f"({image.manifest['size'] >> 20} MiB, sha256 {image.sha256[:12]})", markup=False)


@image_app.command("pull")
def pull(
    source: str = typer.Argument(..., metavar="NAME|URL",
                                 help="A catalogue name (debian-12-cloud, ubuntu-24.04-cloud, "
                                      "fedora-41-cloud) or the URL of a qcow2/raw cloud image."),
    sha256: str = typer.Option(None, "--sha256", help="Expected sha256 (with a URL)."),
    name: str = typer.Option(None, "--name", help="Name in the cache (default: the "
                             "catalogue name, or from the URL)."),
    mirror: str = typer.Option(None, "--mirror", envvar="LABCTL_IMAGE_MIRROR", metavar="URL",
                               help="For a catalogue name: a site laid out like the "
                                    "distribution's, instead of the distribution."),
) -> None:
    """Download a stock cloud image; keep it only if its checksum matches."""
    from labctl.images.catalogue import resolve
    from labctl.images.pull import pull_image
    from labctl.lab.values import IMAGE_NAME_RE

    if "://" in source:
        if not sha256:
            raise UsageError("a URL needs --sha256 HEX", "sha256sum the file you trust, or "
                             "use a catalogue name (labctl image pull debian-12-cloud)")
        url, checksum, algorithm = source, sha256, "sha256"
        stem = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0].lower()
        default = stem.removesuffix(".qcow2").removesuffix(".img").replace("_", "-")[:64]
    else:
        resolved = resolve(source, mirror)
        url, checksum, algorithm, default = (resolved.url, resolved.checksum,
                                             resolved.algorithm, source)
    name = name or default
    if not IMAGE_NAME_RE.fullmatch(name):
        raise UsageError(f"'{name}' is not a valid image name", "pass --name NAME")
    with TransferBar() as bar:
        image = pull_image(url, checksum, name, _cache(), bar, algorithm=algorithm)
    out.print(f"pulled image '{image.name}' from {url} ({image.manifest['size'] >> 20} MiB, "
              f"{algorithm} verified)", markup=False)


@image_app.command("list")
def list_() -> None:
    """Images in the cache, and recipes that can be built."""
    from rich.table import Table

    from labctl.images import recipe as recipes

    images = _cache().list()
    if STATE.json:
        print_json([{k: v for k, v in i.manifest.items() if k != "packages"} for i in images])
        return
    table = Table(title=f"images in {_cache().root}", title_justify="left")
    for column in ("name", "kind", "size", "sha256", "made"):
        table.add_column(column)
    for image in images:
        m = image.manifest
        table.add_row(image.name, m.get("kind", "?"), f"{m.get('size', 0) >> 20} MiB",
                      image.sha256[:12], m.get("built_at") or m.get("pulled_at", ""))
    out.print(table)
    _templates_table()
    out.print(f"recipes: {', '.join(recipes.available())}", markup=False)


def _templates_table() -> None:
    from rich.table import Table

    from labctl.usecases.templates import TemplateStore

    found = TemplateStore(STATE.data_dir).all()
    if not found:
        return
    table = Table(title="templates (boot once, restore many)", title_justify="left")
    for column in ("template", "image", "host", "size", "built in", "made"):
        table.add_column(column)
    for t in found:
        table.add_row(t.short, t.image, t.host or "this machine", f"{t.size >> 20} MiB",
                      f"{t.seconds:.0f} s", t.created)
    out.print(table)


@image_app.command("rm")
def rm(name: str = typer.Argument(...), uri: str = URI_OPTION) -> None:
    """Remove an image from the cache, and its templates (VMs already created keep
    their base copy)."""
    from labctl.usecases.templates import remove_templates_of

    _cache().remove(name)
    gone = remove_templates_of(session(uri), name)
    out.print(f"removed image '{name}'" + (f" and its {len(gone)} template(s)" if gone else "")
              + ".", markup=False)
