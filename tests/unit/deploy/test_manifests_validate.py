"""The deployment manifests validate against their schemas, as the tools that apply them would.

Every Kubernetes object that ``deploy/k8s`` and ``deploy/k8s-demo`` build is checked with
kubernetes-validate (the API's OpenAPI schemas, strict: an unknown or misspelt field fails) for
the oldest Kubernetes release we support, as written and, where kubectl is installed, as
``kubectl kustomize`` builds them (the city overlays ``deploy/k8s-city-*`` too: generated
ConfigMaps, replica counts copied from them); ``docker-compose.yml`` is checked against the Compose
Specification's JSON schema (``compose-spec.json``, copied from compose-spec/compose-spec at
170098ba07d9f53c383a41bfd4c5166b0a4529a6).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

# The oldest Kubernetes release the manifests are meant for (HPA autoscaling/v2 and PDB
# policy/v1 are both GA there).
KUBERNETES_VERSION = "1.28.0"
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")
ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIRS = (ROOT / "deploy" / "k8s", ROOT / "deploy" / "k8s-demo")
CITY_DIRS = (ROOT / "deploy" / "k8s-city-1m", ROOT / "deploy" / "k8s-city-10m")


def k8s_objects(directory: Path) -> list[dict[str, Any]]:
    """Every object the kustomization in ``directory`` lists (resources followed)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    found: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        target = (directory / resource).resolve()
        if target.is_dir():
            found.extend(k8s_objects(target))
        else:
            docs = yaml.safe_load_all(target.read_text(encoding="utf-8"))
            found.extend(doc for doc in docs if doc)
    return found


def objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for directory in K8S_DIRS:
        for obj in k8s_objects(directory):
            found.append((f"{directory.name}/{obj['kind']}/{obj['metadata']['name']}", obj))
    return found


@pytest.mark.parametrize(("where", "obj"), objects(), ids=[where for where, _ in objects()])
def test_kubernetes_objects_validate_strictly(where: str, obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")


@pytest.mark.parametrize("directory", K8S_DIRS + CITY_DIRS, ids=lambda d: d.name)
def test_kustomize_output_validates_strictly(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here; the objects as written were validated")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    built = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert built
    for obj in built:
        where = f"{directory.name}/{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")


def test_a_replica_count_copied_as_text_is_refused() -> None:
    # What a replacement that copied "10" as a string would build: the schema refuses it.
    statefulset = next(o for _, o in objects() if o["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(statefulset))
    broken["spec"]["replicas"] = "10"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_catches_a_misspelt_field() -> None:
    # The check bites: a Deployment with a field Kubernetes does not know is refused.
    deployment = next(o for _, o in objects() if o["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_specification() -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert compose_errors(document) == []


def test_compose_schema_catches_a_misspelt_field() -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    document["services"]["gateway"]["helthcheck"] = document["services"]["gateway"].pop(
        "healthcheck"
    )
    assert compose_errors(document)
