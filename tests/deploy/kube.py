"""Render the Kubernetes manifests (``kubectl kustomize``) and validate them offline.

Core kinds are checked by ``kubernetes-validate`` (the Kubernetes OpenAPI schemas it ships);
custom resources by ``jsonschema`` against the CRD schemas kept in ``crd-schemas/`` (see its
README for their sources and versions).  Both are strict: a field the schema does not know is
an error, as it is for ``kubectl apply`` with server-side field validation.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.deploy.prom import REPO, require_tool

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = sorted(p for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"
# The Kubernetes version the core kinds are validated against (kubectl on this machine).
KUBERNETES_VERSION = "1.32.0"

Manifest = dict[str, Any]


def kubectl() -> str:
    """kubectl next to this Python first (a venv may carry one), then the PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    return shutil.which("kubectl") or require_tool("kubectl", "kubectl")


@functools.cache
def render(directory: Path) -> tuple[Manifest, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    for m in of_kind(manifests, kind):
        if m["metadata"]["name"] == name:
            return m
    raise AssertionError(f"no {kind} {name!r} in the manifests")


def pod_specs(manifests: tuple[Manifest, ...]) -> list[tuple[str, Manifest]]:
    """(workload name, pod spec) of every Deployment and Job."""
    return [
        (m["metadata"]["name"], m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    ]


# -- custom resources --------------------------------------------------------------------------


def schema_file(manifest: Manifest) -> Path:
    group, _, version = manifest["apiVersion"].partition("/")
    return CRD_SCHEMAS / f"{group}_{manifest['kind'].lower()}_{version}.json"


def is_custom(manifest: Manifest) -> bool:
    group = manifest["apiVersion"].partition("/")[0] if "/" in manifest["apiVersion"] else ""
    return "." in group and not group.endswith(".k8s.io")


@functools.cache
def _strict_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text())
    return strict(schema)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields forbidden wherever Kubernetes would prune them.

    A structural CRD schema lists every field; the API server drops (or, with strict field
    validation, refuses) any other, except under ``x-kubernetes-preserve-unknown-fields``.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # apiVersion, kind and metadata are the API server's; the CRD schema lists them loosely.
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {}}
    )
    return schema


def validate(manifest: Manifest) -> None:
    """Raise if the manifest does not validate against its schema (core or CRD)."""
    if is_custom(manifest):
        path = schema_file(manifest)
        assert path.exists(), f"no CRD schema for {manifest['apiVersion']} {manifest['kind']}"
        # Draft 7 without the metaschema check: CRD schemas carry Go regular expressions
        # (e.g. a (?i) flag mid-pattern) that Python's re would refuse to compile up front.
        validator = jsonschema.Draft7Validator(_strict_schema(path))
        error = jsonschema.exceptions.best_match(validator.iter_errors(manifest))
        if error is not None:
            raise error
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
