"""Image recipes (images/NAME.yaml): what the offline builder installs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError, LabFileError
from labctl.lab import values, yamlmarks
from labctl.lab.schema import Field, ListOf, Obj, Parsed, SchemaError, Str
from labctl.resources import data_dir

RECIPE = Obj("an image recipe", {
    "name": Field(Parsed(values.image_name, "an image name"), required=True),
    "description": Field(Str()),
    "suite": Field(Str(max_len=64), required=True),
    "mirrors": Field(ListOf(Str(), max_items=10), required=True),
    "packages": Field(ListOf(Parsed(values.pattern(values.PACKAGE_RE, "a package name"),
                                    "a package name")), required=True),
    "files": Field(Parsed(values.relative_path, "a relative path")),
    "setup": Field(Parsed(values.relative_path, "a relative path")),
    "cmdline": Field(Str(max_len=1024), required=True),
    "disk_size": Field(Parsed(values.size("GiB", 1, 64), "a size"), required=True),
})


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    suite: str
    mirrors: tuple[str, ...]
    packages: tuple[str, ...]
    cmdline: str
    disk_gib: int
    description: str = ""
    files: Path | None = None
    setup: Path | None = None

    def digest(self) -> str:
        """Hash of the recipe and every file it copies: a changed recipe rebuilds."""
        h = hashlib.sha256(self.path.read_bytes())
        extra = [self.setup] if self.setup else []
        if self.files:
            extra += sorted(p for p in self.files.rglob("*") if p.is_file())
        for path in extra:
            h.update(str(path.relative_to(self.path.parent)).encode())
            h.update(path.read_bytes())
        return h.hexdigest()


def recipe_dir() -> Path:
    return data_dir("images")


def available() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    path = Path(name_or_path)
    if not path.suffix:
        path = recipe_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise LabctlError(f"no image recipe named '{name_or_path}'",
                              f"known recipes: {', '.join(available()) or 'none'}")
    try:
        doc, marks = yamlmarks.parse(path.read_text())
        doc = RECIPE.check(doc, ())
    except yamlmarks.YamlError as exc:
        raise LabFileError(path, exc.mark, exc.message, exc.hint) from None
    except SchemaError as exc:
        mark = marks.key(exc.path) if exc.at_key else marks.value(exc.path)
        raise LabFileError(path, mark, exc.message, exc.hint) from None
    base = path.parent
    return Recipe(
        name=doc["name"], path=path, suite=doc["suite"], mirrors=tuple(doc["mirrors"]),
        packages=tuple(doc["packages"]), cmdline=doc["cmdline"], disk_gib=doc["disk_size"],
        description=doc.get("description", ""),
        files=base / doc["files"] if "files" in doc else None,
        setup=base / doc["setup"] if "setup" in doc else None,
    )
