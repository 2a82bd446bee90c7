"""The built-in comparison: VM boot versus container start, phase by phase,
with repetitions, statistics, a results history and reports."""
