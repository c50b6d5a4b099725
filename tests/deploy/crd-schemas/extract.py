"""Extract the ``openAPIV3Schema`` of each CRD the manifests use, as JSON beside this file.

Run by hand when an operator version moves (see README.md here for the sources):

    python tests/deploy/crd-schemas/extract.py <repo-checkout> <tag> <path-of-crd.yaml> ...

Only the schema of each served version is kept, nothing else of the upstream file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    repo, tag, *paths = argv
    for path in paths:
        text = subprocess.run(
            ["git", "-C", repo, "show", f"{tag}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        crd = yaml.safe_load(text)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = version["schema"]["openAPIV3Schema"]
            target = HERE / f"{group}_{kind.lower()}_{version['name']}.json"
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            print(f"{target.name}: {kind} {group}/{version['name']} from {tag}:{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
