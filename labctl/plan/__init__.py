"""Pure planning: a Lab and what a host holds -> names, MACs, subnets, spec
hashes, actions, container plans, domain and seed specs."""
