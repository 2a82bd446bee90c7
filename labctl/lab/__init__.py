"""The lab file: reading, templating (jinja2) and validating it into a frozen Lab.
No I/O beyond reading the file."""
