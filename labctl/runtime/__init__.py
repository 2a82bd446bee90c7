"""Containers inside lab VMs: one OCI CLI adapter (docker or podman) run over
the VM's SSH transport, container image sources, and deployment."""
