"""belegsync's shared package: domain, ports and adapters used by producers and consumers."""
