"""SSH to lab VMs: keys, pinned host keys, the transport, staged readiness."""
