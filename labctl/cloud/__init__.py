"""The OpenStack backend: an OpenStack project as the place VMs run (openstacksdk)."""
