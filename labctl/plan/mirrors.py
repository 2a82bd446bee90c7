"""The shell a VM runs (as root) to use the lab's mirrors: decided from the
lab file alone, so plan/ renders it into the seed and `up` runs it again."""

from __future__ import annotations

from labctl import shell

APT_KEY_FILE = "/etc/apt/trusted.gpg.d/labctl-mirror.asc"


def mirror_config_commands(registry: str | None, apt: str | None,
                           apt_key: str | None = None) -> str:
    """Shell (run as root in a VM) that points docker and podman at a registry
    mirror for Docker Hub names (docker.io/...), and apt at a mirror (trusting
    its key when it is not Debian's); only what changed is rewritten, and
    dockerd restarted only then. Runs at first boot (before `packages`) and
    again over SSH on every `up`."""
    parts = ["set -e"]
    if registry:
        host = registry.split("://", 1)[-1].rstrip("/")
        podman = (f'[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
                  f'[[registry.mirror]]\nlocation = "{host}"\ninsecure = true\n')
        docker = (f'{{"registry-mirrors": ["http://{host}"], '
                  f'"insecure-registries": ["{host}"]}}')
        parts += [
            "mkdir -p /etc/containers/registries.conf.d /etc/docker",
            f"printf %b {shell.quote(podman)} > "
            "/etc/containers/registries.conf.d/60-labctl-mirror.conf",
            f"if [ \"$(cat /etc/docker/daemon.json 2>/dev/null)\" != {shell.quote(docker)} ]; then "
            f"printf '%s\\n' {shell.quote(docker)} > /etc/docker/daemon.json; "
            "if systemctl is-active --quiet docker.service; then systemctl restart docker.service; "
            "fi; fi"]
    if apt:
        base = apt.rstrip("/").replace("\\", "\\\\").replace("&", "\\&").replace("#", "\\#")
        # the archive only: deb.debian.org/debian-security stays where it is
        rewrite = shell.quote(rf"s#https?://deb\.debian\.org/debian([[:space:]/]|$)#{base}\1#")
        # one-line .list files and deb822 .sources files alike
        parts.append("for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
                     "/etc/apt/sources.list.d/*.sources; do "
                     f"if [ -f \"$f\" ]; then sed -i -E {rewrite} \"$f\"; fi; done")
    if apt and apt_key:
        parts += ["mkdir -p /etc/apt/trusted.gpg.d",
                  f"printf '%s\\n' {shell.quote(apt_key.strip())} > {APT_KEY_FILE}"]
    return "; ".join(parts)
