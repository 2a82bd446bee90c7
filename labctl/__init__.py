"""labctl: declarative labs of libvirt VMs and the OCI containers inside them."""

__version__ = "0.1.0"
