"""The `checks:` section of a lab file: what an instructor assesses in each
student's copy. A check looks at one VM (`vm`) and is of exactly one kind:

  command    a command's exit code and/or a stdout pattern (in the VM or a container)
  file       a file exists, or contains a pattern (in the VM or a container)
  container  a container is running (with an image, a published port, a volume)
  tcp        a TCP port answers (from the host, or from another VM of the lab)
  http       an HTTP GET gives a status and/or a body pattern (from the host or a VM)

Patterns are Python regular expressions, searched (not matched) in the text."""

from __future__ import annotations

from labctl.lab import values
from labctl.lab.schema import Bool, Field, Int, Obj, Parsed, Str


def _regex(doc: str) -> Parsed:
    return Parsed(values.regex, "a regular expression", doc)


def _name(doc: str) -> Parsed:
    return Parsed(values.name(63), "a name", doc,
                  {"type": "string", "pattern": values.NAME_RE.pattern, "maxLength": 63})


PORT = Int(1, 65535, "a TCP port")
FROM = Str("where the connection starts: 'host' (default; a published port, on the host "
           "side) or the name of another VM of the lab", max_len=40)
ABS_PATH = Parsed(values.pattern(values.ABS_PATH_RE, "an absolute path"), "a path",
                  "absolute path")

KIND_FIELDS = {
    "command": Field(Obj("a command check", {
        "run": Field(Str("the command, run by the lab user's shell (sh -c)"), required=True),
        "container": Field(_name("run it inside this container instead")),
        "exit": Field(Int(0, 255, "the exit code it must give (default 0)")),
        "stdout": Field(_regex("a pattern its output must contain")),
    })),
    "file": Field(Obj("a file check", {
        "path": Field(ABS_PATH, required=True),
        "contains": Field(_regex("a pattern the file must contain")),
        "container": Field(_name("look inside this container instead")),
    })),
    "container": Field(Obj("a container check", {
        "name": Field(_name("the container that must be running"), required=True),
        "image": Field(Str("the image it must run (as given to run, e.g. nginx or "
                           "10.0.2.2:5000/web:1)")),
        "port": Field(PORT, ),
        "volume": Field(Str("a volume (name or host path) it must have mounted", max_len=255)),
    })),
    "tcp": Field(Obj("a TCP check", {
        "port": Field(PORT, required=True),
        "from": Field(FROM),
    })),
    "http": Field(Obj("an HTTP check", {
        "port": Field(PORT, required=True),
        "path": Field(Parsed(values.pattern(values.URL_PATH_RE, "a URL path"), "a path",
                             "the path asked for (default /)")),
        "status": Field(Int(100, 599, "the status it must answer (default 200)")),
        "body": Field(_regex("a pattern the body must contain")),
        "from": Field(FROM),
    })),
}

CHECK = Obj("a check", {
    "name": Field(_name("the check's name, unique in the lab"), required=True),
    "description": Field(Str("what the student must have done, in their words")),
    "points": Field(Int(0, 1000, "points it is worth (default 1)")),
    "student": Field(Bool("true: students may run it themselves from their page "
                          "(\"check my work\"); false (default): the instructor's only")),
    "vm": Field(Str("the VM it looks at (for replicas: NAME-1...)", max_len=45),
                required=True),
    "timeout": Field(Int(1, 600, "seconds before it counts as 'could not run' (default 20)")),
    **KIND_FIELDS,
}, doc="one thing to assess in every copy: a VM and one kind of test")
