"""The use cases: what each command does, on a Session; they report Events and never print."""
