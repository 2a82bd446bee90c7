"""The libvirt backend: connection and capability probe, storage (base images
and per-VM overlays in a labctl pool), networks, domains, labctl metadata."""
