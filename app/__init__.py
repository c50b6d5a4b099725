"""The application layer: the CLI, the composition roots, the demo and the operator use cases
that combine producers and consumers.  It stands on `producers/`, `consumers/` and `shared/`;
nothing below imports it.
"""
