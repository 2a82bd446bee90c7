"""Checks of a student's lab: what to run for each kind (probes), how to judge
what came back (pure), and the results' shapes, renderings and history."""
