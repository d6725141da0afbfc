"""The deployment files hold together: Dockerfile, docker-compose.yml, deploy/k8s*, Prometheus
and Grafana.

No Docker engine or cluster is needed. The files are parsed and cross-checked against each
other and against the code: every command names a module that exists, every URL points at a
port something listens on, every Service selects pods, every dashboard query names a metric the
code defines, and no file carries a real-looking secret. `docker compose config` and
`kubectl kustomize` run as well where those tools are installed.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import math
import re
import shutil
import subprocess
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prepaid_common.settings import DEVELOPMENT_SECRET

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
K8S_DIRS = (ROOT / "deploy" / "k8s", ROOT / "deploy" / "k8s-demo")
# The city shapes of docs/scaling.md: overlays of deploy/k8s that only change its scale.
CITY_DIRS = (ROOT / "deploy" / "k8s-city-1m", ROOT / "deploy" / "k8s-city-10m")
SCALING_DOC = ROOT / "docs" / "scaling.md"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# The internal port of each cluster service (the entry points' conventions).
SERVICE_PORTS = {"collector": 8101, "billing": 8102, "control": 8103, "payments": 8104}
GATEWAY_PORT = 8000
# The gateway's metrics are on a port of their own, not on the public API.
GATEWAY_METRICS_PORT = 9100
URL_VARIABLES = {
    "PREPAID_COLLECTOR_URL": "collector",
    "PREPAID_BILLING_URL": "billing",
    "PREPAID_CONTROL_URL": "control",
    "PREPAID_PAYMENTS_URL": "payments",
}
INFRA_PORTS = {"postgres": 5432, "rabbitmq": 5672, "prometheus": 9090, "grafana": 3000}
# Every process `python -m ...` that compose and the demo overlay run.
EXPECTED_MODULES = {
    "collector",
    "billing",
    "control",
    "payments",
    "notifications",
    "gateway",
    "simulator",
    "standalone.seed",
}
# The metrics the dashboards may query, with the labels each may carry: every metric the code
# defines (defined_metrics, below); tests/unit/ops checks the same against the live registry.
# The series of a histogram are its name with _bucket, _sum and _count.
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}
PLACEHOLDER = re.compile(r"change[-_]?me", re.IGNORECASE)
SECRET_NAME = re.compile(
    r"(?<![A-Z])PASS(WORD|WD)?(?![A-Z])|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY", re.IGNORECASE
)
KUSTOMIZATION = "kustomization.yaml"


# --- loading ------------------------------------------------------------------------------
@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def built_services() -> dict[str, dict[str, Any]]:
    """Compose services built from the project's Dockerfile (the Python processes)."""
    return {name: svc for name, svc in compose_services().items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return [str(part) for part in (cmd.split() if isinstance(cmd, str) else cmd)]


def without_interpolation(value: str) -> str:
    """Replace compose ``${VAR...}`` and Kubernetes ``$(VAR)`` references by a stand-in."""
    return re.sub(r"\$\{[^}]*\}|\$\([A-Za-z_][A-Za-z0-9_]*\)", "x", value)


def option(args: list[str], name: str) -> str | None:
    """Return the value after ``name`` in an argument list."""
    for index, arg in enumerate(args[:-1]):
        if arg == name:
            return args[index + 1]
    return None


def module_of(args: list[str]) -> str | None:
    return option(args, "-m")


def module_source(module: str) -> Path | None:
    """Return the file ``python -m module`` runs, from the project's package folders."""
    top, *rest = module.split(".")
    packages = [*ROOT.glob(f"services/*/{top}"), ROOT / "libs" / top]
    for package in packages:
        if not (package / "__init__.py").is_file():
            continue
        if not rest:
            candidates = [package / "__main__.py"]
        else:
            inner = package.joinpath(*rest)
            candidates = [inner.with_suffix(".py"), inner / "__main__.py"]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def listen_port(name: str) -> int | None:
    """The port a compose service listens on."""
    service = compose_services().get(name)
    if service is None:
        return None
    env = environment(service)
    for variable in ("PREPAID_SERVICE_PORT", "PREPAID_HTTP_PORT"):
        if variable in env:
            return int(env[variable])
    return INFRA_PORTS.get(name)


def urls_in(values: list[str]) -> Iterator[tuple[str, Any]]:
    for value in values:
        plain = without_interpolation(value)
        if re.match(r"^[a-z][a-z0-9+.-]*://", plain):
            yield value, urlsplit(plain)


def load_documents(path: Path) -> list[dict[str, Any]]:
    documents = [
        doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None
    ]
    for doc in documents:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return documents


@functools.cache
def kustomization(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / KUSTOMIZATION).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def manifest_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.name != KUSTOMIZATION
    )


@functools.cache
def k8s_objects(directory: Path) -> tuple[dict[str, Any], ...]:
    """Every object the kustomization in ``directory`` builds: resources followed, the
    ConfigMaps of its configMapGenerator (under their names, without kustomize's hash), then
    its components' replacements (a value copied into a field), in kustomize's order."""
    objects: list[dict[str, Any]] = []
    for resource in kustomization(directory).get("resources", []):
        target = (directory / resource).resolve()
        if target.is_dir():
            objects.extend(k8s_objects(target))
        else:
            objects.extend(load_documents(target))
    objects = [json.loads(json.dumps(o)) for o in objects]  # the cache's copies stay as read
    for generator in kustomization(directory).get("configMapGenerator", []):
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        found = [
            o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == generator["name"]
        ]
        if generator.get("behavior") == "merge":
            assert found, f"{directory.name}: merges into no ConfigMap {generator['name']}"
            found[0]["data"].update(data)
            continue
        assert not found, f"{directory.name}: ConfigMap {generator['name']} twice"
        labels = generator.get("options", {}).get("labels", {})
        metadata = {"name": generator["name"], "namespace": kustomization(directory)["namespace"]}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata | ({"labels": labels} if labels else {}),
                "data": data,
            }
        )
    for component in kustomization(directory).get("components", []):
        for replacement in kustomization((directory / component).resolve()).get("replacements", []):
            replace(objects, replacement)
    return tuple(objects)


def selected(objects: list[dict[str, Any]], select: dict[str, str]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == select["kind"] and o["metadata"]["name"] == select["name"]
    ]


def replace(objects: list[dict[str, Any]], replacement: dict[str, Any]) -> None:
    """Apply one kustomize replacement (a field of one object copied into others' fields).

    As kustomize does, the target keeps its type: a ConfigMap's "10" lands as 10 in an
    integer field (and "ten" there is an error)."""
    source = replacement["source"]
    (origin,) = selected(objects, source)
    value: Any = origin
    for key in source["fieldPath"].split("."):
        value = value[key]
    for target in replacement["targets"]:
        found = selected(objects, target["select"])
        assert found, f"a replacement's target is missing: {target['select']}"
        for obj in found:
            for path in target["fieldPaths"]:
                *parents, last = path.split(".")
                node = obj
                for key in parents:
                    node = node[key]
                node[last] = int(value) if isinstance(node.get(last), int) else value


def generated_config_maps(directory: Path) -> set[str]:
    """Names of the ConfigMaps a kustomization's generators make, its bases' included."""
    names = {g["name"] for g in kustomization(directory).get("configMapGenerator", [])}
    for resource in kustomization(directory).get("resources", []):
        target = (directory / resource).resolve()
        if target.is_dir():
            names |= generated_config_maps(target)
    return names


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize` builds from ``directory``; skips where kubectl is missing."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here; the YAML checks above still ran")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def unhashed(obj: dict[str, Any], generated: set[str]) -> str:
    """An object's name, less the hash kustomize appends to a generated ConfigMap's."""
    name: str = obj["metadata"]["name"]
    if obj["kind"] == "ConfigMap":
        base, _, suffix = name.rpartition("-")
        if base in generated and len(suffix) == 10:
            return base
    return name


def deleted_by_patches(directory: Path) -> set[tuple[str, str]]:
    """(kind, name) of the objects a kustomization removes with ``$patch: delete``."""
    deleted = set()
    for patch in kustomization(directory).get("patches", []):
        body = yaml.safe_load(patch.get("patch", "")) or {}
        if body.get("$patch") == "delete":
            deleted.add((body["kind"], body["metadata"]["name"]))
    return deleted


def all_k8s_objects() -> list[dict[str, Any]]:
    """Every object of every manifest file under deploy/k8s*, once."""
    return [
        doc
        for directory in K8S_DIRS
        for p in manifest_files(directory)
        for doc in (load_documents(p))
    ]


def of_kind(objects: Any, *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in kinds]


def workloads(objects: Any) -> list[dict[str, Any]]:
    return of_kind(objects, "Deployment", "StatefulSet", "Job")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def env_value(container: dict[str, Any], name: str) -> str | None:
    item = container_env(container).get(name)
    return None if item is None or "value" not in item else str(item["value"])


def named_workload(objects: Any, name: str) -> dict[str, Any]:
    found = [w for w in workloads(objects) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload named {name}, found {len(found)}"
    return found[0]


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity (``100m``, ``1``, ``512Mi``, ``1G``) as a plain number."""
    text = str(value)
    suffixes = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|Ki|Mi|Gi|Ti)?", text)
    assert match, f"not a Kubernetes quantity: {text!r}"
    number, suffix = match.groups()
    return float(number) * (suffixes[suffix] if suffix else 1.0)


# --- Dockerfile and .dockerignore ---------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends with a continuation line"
    result = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        result.append((instruction.upper(), rest.strip()))
    return result


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, '/'-separated) out of the context."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        if pattern.startswith("**/"):
            regex = "(?:.*/)?" + fnmatch.translate(pattern[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerfile_builds_from_python_311_slim_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    args = {}
    for name, rest in instructions:
        if name == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    bases = [rest.split()[0] for name, rest in instructions if name == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
        assert resolved == "python:3.11-slim", f"base image {resolved!r}"
    final_stage = instructions[max(i for i, (n, _) in enumerate(instructions) if n == "FROM") :]
    users = [rest for name, rest in final_stage if name == "USER"]
    assert users, "the runtime stage runs as root: add USER"
    uid = users[-1].split(":")[0]
    # Numeric, so that Kubernetes can check runAsNonRoot.
    assert uid.isdigit(), f"USER {users[-1]!r} should be a numeric uid"
    assert int(uid) != 0
    # Kubernetes manifests run as the same uid.
    for workload in workloads(all_k8s_objects()):
        assert pod_spec(workload)["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_installs_with_constraints_and_no_custom_index() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    for flag in ("--index-url", "--extra-index-url", "--trusted-host", "--find-links", " -i "):
        assert flag not in text, f"the Dockerfile should use the default index, not {flag}"
    installs = [
        rest for name, rest in dockerfile_instructions() if name == "RUN" and "pip install" in rest
    ]
    assert installs
    for rest in installs:
        for part in rest.split("&&"):
            if "pip install" in part:
                assert "-c constraints.txt" in part, f"pip install without constraints: {part}"


def test_dockerfile_copies_what_the_build_needs_and_dockerignore_keeps_it() -> None:
    sources: list[str] = []
    for name, rest in dockerfile_instructions():
        if name == "COPY" and "--from=" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources += parts[:-1]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", "constraints.txt", pyproject["project"]["readme"]}
    needed |= set(pyproject["tool"]["setuptools"]["packages"]["find"]["where"])
    copied = {s.removeprefix("./").rstrip("/") for s in sources}
    for path in needed:
        assert any(path == c or path.startswith(c + "/") for c in copied), (
            f"the image build needs {path} but the Dockerfile does not COPY it"
        )
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignore_excludes(source), f".dockerignore drops {source}"
    for private in (".git", ".venv", ".env", "services/x/__pycache__"):
        assert dockerignore_excludes(private), f".dockerignore should exclude {private}"


def _matched_by_own_package(relative: Path, package_data: dict[str, list[str]]) -> bool:
    """Whether a package's own entry (``"gateway.web" = ["static/**/*"]``) takes the file."""
    for package, globs in package_data.items():
        if package == "*":
            continue
        prefix = Path(*package.split("."))
        if not relative.is_relative_to(prefix):
            continue
        inside = relative.relative_to(prefix).as_posix()
        # fnmatch's * crosses "/", so "static/**/*" reads as "static/*".
        if any(fnmatch.fnmatch(inside, glob.replace("**/", "")) for glob in globs):
            return True
    return False


def test_package_data_covers_every_non_python_file() -> None:
    # The image installs the project as a wheel: a data file (a meter profile, a migration
    # template) that package-data does not match works from the source tree but not there.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"].get("package-data", {})
    patterns = package_data.get("*", [])
    missing = []
    for where in pyproject["tool"]["setuptools"]["packages"]["find"]["where"]:
        for path in (ROOT / where).rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix in (".py", ".pyc", ".md") or path.name == "py.typed":
                continue
            if any(fnmatch.fnmatch(path.name, p) for p in patterns):
                continue
            if not _matched_by_own_package(path.relative_to(ROOT / where), package_data):
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, (
        f"not matched by [tool.setuptools.package-data], so not in the image: {missing}"
    )


# --- docker-compose.yml -------------------------------------------------------------------
def test_compose_services_build_from_the_dockerfile_or_use_a_pinned_image() -> None:
    for name, service in compose_services().items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (ROOT / context).resolve() == ROOT, f"{name}: build context is not the root"
            assert dockerfile in (None, "Dockerfile"), f"{name}: builds {dockerfile}"
            continue
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})", image), (
            f"{name}: image {image!r} has no tag"
        )
        assert not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"


def test_compose_runs_every_process_of_the_product() -> None:
    modules = {module_of(command(s)) for s in built_services().values()}
    assert modules == EXPECTED_MODULES


@pytest.mark.parametrize(
    "module",
    sorted(
        {m for s in built_services().values() if (m := module_of(command(s))) is not None}
        | {
            m
            for w in workloads(all_k8s_objects())
            for c in pod_spec(w)["containers"]
            if (m := module_of([str(a) for a in c.get("args", [])])) is not None
        }
    ),
)
def test_every_python_m_command_names_an_existing_module(module: str) -> None:
    assert module_source(module) is not None, (
        f"`python -m {module}` is run by docker-compose.yml or deploy/k8s*, but neither "
        f"services/*/{module.replace('.', '/')}/__main__.py nor a module file exists"
    )


def test_compose_cluster_services_listen_on_the_agreed_ports() -> None:
    for name, port in SERVICE_PORTS.items():
        assert environment(compose_services()[name])["PREPAID_SERVICE_PORT"] == str(port)
    assert environment(compose_services()["gateway"])["PREPAID_HTTP_PORT"] == str(GATEWAY_PORT)


def test_compose_urls_point_at_a_service_and_the_port_it_listens_on() -> None:
    names = set(compose_services())
    gateway_env = environment(compose_services()["gateway"])
    for variable, target in URL_VARIABLES.items():
        assert urlsplit(gateway_env[variable]).hostname == target, variable
    checked = 0
    for name, service in compose_services().items():
        values = list(environment(service).values()) + command(service)
        for raw, url in urls_in(values):
            if url.hostname in ("127.0.0.1", "localhost"):
                continue
            assert url.hostname in names, f"{name}: {raw} names no compose service"
            assert url.port == listen_port(url.hostname), (
                f"{name}: {raw} but {url.hostname} listens on {listen_port(url.hostname)}"
            )
            checked += 1
    assert checked >= 10


def compose_secret_file(service: dict[str, Any], value: str) -> str | None:
    """The compose secret a ``*_FILE`` value names, if the service mounts it; else None."""
    match = re.fullmatch(r"/run/secrets/([a-z0-9_]+)", value)
    if match is None or match.group(1) not in (service.get("secrets") or []):
        return None
    return match.group(1)


def test_compose_cluster_services_get_the_common_settings_and_secrets() -> None:
    for name in [*SERVICE_PORTS, "gateway"]:
        service = compose_services()[name]
        env = environment(service)
        assert env.get("PREPAID_ENVIRONMENT") == "production", name
        assert env.get("PREPAID_LOG_FORMAT") == "json", name
        for variable in ("PREPAID_DATABASE_URL", "PREPAID_AMQP_URL"):
            assert variable in env, f"{name} lacks {variable}"
        # The token secret as a file of a mounted compose secret, not in the environment.
        assert "PREPAID_TOKEN_SECRET" not in env, name
        token_file = env.get("PREPAID_TOKEN_SECRET_FILE", "")
        assert compose_secret_file(service, token_file) in compose()["secrets"], name
    assert "PREPAID_ADMIN_PASSWORD" in environment(compose_services()["gateway"])


def test_compose_healthchecks_probe_the_port_the_service_listens_on() -> None:
    for name, service in built_services().items():
        if service.get("restart") == "no":
            continue  # a one-shot job
        test = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
        assert test, f"{name} has no healthcheck"
        port = listen_port(name)
        if port is not None:
            # Healthy means ready: the database and the broker answer (/readyz).
            assert f"127.0.0.1:{port}/readyz" in test, f"{name}: healthcheck {test}"
        else:
            base_port = option(command(service), "--base-port")
            assert base_port is not None, f"{name} listens on no known port"
            assert base_port in test, f"{name}: healthcheck {test}"


def test_compose_depends_on_waits_for_what_each_service_needs() -> None:
    services = compose_services()
    conditions = {"service_healthy", "service_started", "service_completed_successfully"}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec.get("condition") in conditions, f"{name} -> {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            # A service outside every profile cannot wait for one that is only in a profile.
            target_profiles = set(services[target].get("profiles", []))
            if target_profiles:
                assert target_profiles & set(service.get("profiles", [])), (
                    f"{name} depends on {target}, which runs only with profile {target_profiles}"
                )
        env = " ".join(environment(service).values())
        for infra in ("postgres", "rabbitmq"):
            if f"@{infra}:" in env:
                assert depends.get(infra, {}).get("condition") == "service_healthy", (
                    f"{name} uses {infra} but does not wait for it to be healthy"
                )
    for upstream in SERVICE_PORTS:
        condition = services["gateway"]["depends_on"][upstream]["condition"]
        assert condition == "service_healthy"


def test_compose_publishes_only_the_gateway_and_the_dtu_listener() -> None:
    published: dict[str, list[str]] = {}
    for name, service in compose_services().items():
        for entry in service.get("ports", []):
            published.setdefault(name, []).append(without_interpolation(str(entry)))
    assert any(p.endswith(f":{GATEWAY_PORT}") for p in published.get("gateway", []))
    for name, port in SERVICE_PORTS.items():
        # Internal APIs have no authentication of their own.
        for entry in published.get(name, []):
            assert not entry.endswith(f":{port}"), f"{name}'s internal API is published"
    for name, entries in published.items():
        for entry in entries:
            # Beyond the gateway, only the collector's DTU listener faces the field.
            field_facing = name == "gateway" or (name == "collector" and entry.endswith(":9502"))
            if not field_facing:
                assert entry.startswith("127.0.0.1:"), f"{name} publishes {entry} on every address"


def test_compose_mounts_and_volumes_exist() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in compose_services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_secrets_come_from_required_env_variables_listed_in_env_example() -> None:
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert used <= listed, f"not in deploy/env.example: {sorted(used - listed)}"
    for name, service in compose_services().items():
        for key, value in environment(service).items():
            carries_password = re.search(r"://[^/@]+:[^/@]+@", without_interpolation(value))
            if re.search(r"_FILE$", key) and compose_secret_file(service, value):
                continue  # a file of a compose secret (below)
            if SECRET_NAME.search(key) or carries_password:
                # ${NAME:?message}: compose refuses to start while .env lacks it.
                assert re.search(r"\$\{[A-Z][A-Z0-9_]*:\?", value), (
                    f"{name}: {key} must come from a required variable in .env"
                )
    for line in example.splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and SECRET_NAME.search(match.group(1)):
            assert match.group(2) == "", f"deploy/env.example gives {match.group(1)} a value"
    # Compose secrets: each from a variable of .env (compose refuses to start while it is
    # unset), mounted by some service.
    mounted = {name for svc in compose_services().values() for name in svc.get("secrets", [])}
    for name, secret in compose().get("secrets", {}).items():
        assert set(secret) == {"environment"}, f"secret {name}: {secret}"
        assert secret["environment"] in listed, f"secret {name}: not in deploy/env.example"
        assert name in mounted, f"secret {name} is mounted by no service"


def test_seed_job_matches_the_simulator() -> None:
    services = compose_services()
    simulators = [n for n, s in built_services().items() if module_of(command(s)) == "simulator"]
    seeds = [s for s in built_services().values() if module_of(command(s)) == "standalone.seed"]
    assert len(simulators) == 1
    assert len(seeds) == 1
    simulator_args = command(services[simulators[0]])
    pairs = [(seeds[0]["command"], simulator_args, simulators[0])]
    demo = K8S_DIRS[1]
    seed_job = named_workload(k8s_objects(demo), "prepaid-seed")
    sim_workload = named_workload(k8s_objects(demo), "simulator")
    pairs.append(
        (
            pod_spec(seed_job)["containers"][0]["args"],
            [str(a) for a in pod_spec(sim_workload)["containers"][0]["args"]],
            "simulator",
        )
    )
    for seed_args, sim_args, sim_host in pairs:
        # The simulator listens on loopback by default: the collectors could not reach it.
        assert option(sim_args, "--host") == "0.0.0.0", "the simulator must listen on all addresses"
        seed_args = [str(a) for a in seed_args]
        assert option(seed_args, "--simulator-host") == sim_host
        for flag in ("--base-port", "--dtus", "--meters", "--seed"):
            assert option(seed_args, flag) == option(sim_args, flag), flag
        gateway = urlsplit(option(seed_args, "--gateway") or "")
        assert (gateway.hostname, gateway.port) == ("gateway", GATEWAY_PORT)
        # The seed logs in as admin with PREPAID_ADMIN_PASSWORD from its environment: a
        # password on a command line shows in ps and in the pod's spec.
        assert "--admin-password" not in seed_args, "the admin password is on a command line"
    seed_env = compose_services()["seed"]["environment"]
    assert "PREPAID_ADMIN_PASSWORD" in seed_env, "the seed logs in as admin"
    job_env = container_env(pod_spec(seed_job)["containers"][0])
    assert "secretKeyRef" in job_env["PREPAID_ADMIN_PASSWORD"]["valueFrom"]


# --- Prometheus and Grafana ---------------------------------------------------------------
def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = set()
    metric_labels = set().union(*known_metrics().values())
    for job in config["scrape_configs"]:
        # RabbitMQ's per-queue depth (the dead-letter queue's) is on its detailed endpoint.
        expected_path = "/metrics/detailed" if job["job_name"] == "rabbitmq-queues" else "/metrics"
        assert job.get("metrics_path", "/metrics") == expected_path
        for static in job.get("static_configs", []):
            targets |= set(static["targets"])
            clash = set(static.get("labels", {})) & metric_labels
            assert not clash, f"target labels {clash} would rename the metrics' own labels"
        for relabel in job.get("relabel_configs", []):
            assert relabel.get("target_label") not in metric_labels
    expected = {f"{name}:{port}" for name, port in SERVICE_PORTS.items()}
    expected.add(f"gateway:{GATEWAY_METRICS_PORT}")
    assert expected <= targets, f"not scraped: {sorted(expected - targets)}"
    gateway_env = environment(compose_services()["gateway"])
    assert gateway_env["PREPAID_METRICS_PORT"] == str(GATEWAY_METRICS_PORT)
    assert gateway_env["PREPAID_PUBLIC_METRICS"] == "false"
    for target in targets:
        host, port = target.rsplit(":", 1)
        if host in SERVICE_PORTS:
            assert int(port) == listen_port(host)
        elif host != "localhost":
            assert host in compose_services(), f"scrape target {target} is no compose service"


def dashboards() -> list[Path]:
    return sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def datasource_uid() -> str:
    config = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    (source,) = [s for s in config["datasources"] if s["type"] == "prometheus"]
    url = urlsplit(source["url"])
    assert (url.hostname, url.port) == ("prometheus", INFRA_PORTS["prometheus"])
    assert "prometheus" in compose_services()
    return str(source["uid"])


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    grafana = compose_services()["grafana"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/dashboards/prepaid.yml").read_text(encoding="utf-8")
    )
    for provider in providers["providers"]:
        path = provider["options"]["path"]
        assert mounts.get(path) == "./deploy/grafana/dashboards", f"{path} is not mounted"
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert (GRAFANA_DIR / "dashboards" / Path(home).name).is_file()
    assert dashboards(), "no dashboard JSON in deploy/grafana/dashboards"


def panel_targets() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    uid = datasource_uid()
    for path in dashboards():
        board = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in board["panels"]:
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                yield path.name, panel, target


def metric_family(series: str) -> tuple[str, set[str]]:
    """The metric a series name belongs to, and the extra labels that series has."""
    for histogram in defined_histograms():
        if series == f"{histogram}_bucket":
            return histogram, {"le"}
        if series in (f"{histogram}_sum", f"{histogram}_count"):
            return histogram, set()
    return series, set()


def queried_metrics() -> dict[str, set[str]]:
    """Metric families the dashboards query, with the labels the queries use on each."""
    queried: dict[str, set[str]] = {}
    for _board, _panel, target in panel_targets():
        expr = target["expr"]
        used = set(re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr))
        names = {part.strip() for clause in used for part in clause.split(",") if part.strip()}
        for matchers in re.findall(r"prepaid_[a-z0-9_]+\{([^}]*)\}", expr):
            names |= set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers))
        for series in re.findall(r"\bprepaid_[a-z0-9_]+", expr):
            family, _extra = metric_family(series)
            labels = known_metrics().get(family, set())
            queried.setdefault(family, set()).update(names & labels)
    return queried


def test_dashboard_queries_only_known_metrics_and_their_labels() -> None:
    queried: set[str] = set()
    for board, panel, target in panel_targets():
        expr = target["expr"]
        where = f"{board} / {panel['title']}: {expr}"
        labels: set[str] = set()
        for series in re.findall(r"\bprepaid_[a-z0-9_]+", expr):
            family, extra = metric_family(series)
            assert family in known_metrics(), f"unknown metric {series} in {where}"
            queried.add(family)
            labels |= known_metrics()[family] | extra
        # A panel of Prometheus' own or RabbitMQ's series (tests/unit/ops allow-lists them).
        external = re.search(r"\b(ALERTS\{|up\{|rabbitmq_[a-z_]+)", expr)
        assert labels or re.search(r"\bprepaid_", expr) or external, f"no product metric: {where}"
        if external and not labels:
            continue  # their labels are checked by tests/unit/ops
        for matchers in re.findall(r"prepaid_[a-z0-9_]+\{([^}]*)\}", expr):
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                # job and instance: the target labels Prometheus adds (template variables).
                assert label in labels | TARGET_LABELS, f"label {label} not on the metric: {where}"
        grouped = set()
        for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            grouped |= {part.strip() for part in clause.split(",") if part.strip()}
        assert grouped <= labels | TARGET_LABELS, f"groups by {grouped - labels}: {where}"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        shown = grouped if re.search(r"\b(sum|max|min|avg|count)\b", expr) else labels
        assert legend <= shown | ({"instance", "job"} if not grouped else set()), (
            f"legend {legend} uses labels the query drops: {where}"
        )
    for needed in (
        "prepaid_bus_messages_total",
        "prepaid_outbox_backlog",
        "prepaid_http_request_seconds",
        "prepaid_collector_meters_online",
        "prepaid_collector_reads_total",
    ):
        assert needed in queried, f"the dashboard shows nothing of {needed}"


@functools.cache
def known_metrics() -> dict[str, set[str]]:
    """Metric families the dashboards may query: every one the code defines."""
    return defined_metrics()


@functools.cache
def defined_histograms() -> frozenset[str]:
    """Names of the histograms the code defines (their series end _bucket, _sum, _count)."""
    found = set()
    for folder in ("libs", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", ""))
                    in ("Histogram", "LoopHistogram")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    found.add(node.args[0].value)
    return frozenset(found)


def defined_metrics() -> dict[str, set[str]]:
    """Prometheus metrics the code defines (exported name -> label names)."""
    found: dict[str, set[str]] = {}
    # The collector's per-poll metrics are its own loop-only kinds (collector.metrics).
    kinds = {"Counter", "Gauge", "Histogram", "Summary", "LoopCounter", "LoopHistogram"}
    for folder in ("libs", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if kind not in kinds or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                name = first.value
                if kind in ("Counter", "LoopCounter") and not name.endswith("_total"):
                    name += "_total"
                label_node = node.args[2] if len(node.args) > 2 else None
                for keyword in node.keywords:
                    if keyword.arg == "labelnames":
                        label_node = keyword.value
                labels: set[str] = set()
                if kind == "LoopCounter" and isinstance(label_node, ast.Constant):
                    labels = {str(label_node.value)}  # its one label, named alone
                elif isinstance(label_node, ast.List | ast.Tuple):
                    labels = {
                        e.value
                        for e in label_node.elts
                        if isinstance(e, ast.Constant) and isinstance(e.value, str)
                    }
                found[name] = labels
    return found


def test_every_metric_on_the_dashboard_is_defined_by_the_code() -> None:
    defined = defined_metrics()
    for name, labels in queried_metrics().items():
        assert name in defined, (
            f"the dashboard queries {name}, which no module under libs/ or services/ defines"
        )
        assert labels <= defined[name], (
            f"the dashboard uses labels {sorted(labels)} of {name}; the code defines "
            f"{sorted(defined[name])}"
        )


# --- Kubernetes ---------------------------------------------------------------------------
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "NetworkPolicy": "networking.k8s.io/v1",
}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize("directory", K8S_DIRS, ids=lambda d: d.name)
def test_kustomization_lists_every_manifest_file(directory: Path) -> None:
    resources = kustomization(directory).get("resources", [])
    files = {r for r in resources if (directory / r).is_file()}
    folders = [r for r in resources if (directory / r).is_dir()]
    assert set(resources) == files | set(folders), f"missing resources: {resources}"
    assert files == {p.name for p in manifest_files(directory)}
    for folder in folders:
        assert (directory / folder / KUSTOMIZATION).is_file()
    namespace = kustomization(directory).get("namespace")
    for obj in k8s_objects(directory):
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]["name"]


def test_k8s_objects_are_well_formed() -> None:
    seen = set()
    for obj in all_k8s_objects():
        kind = obj.get("kind")
        assert kind in API_VERSIONS, f"unexpected kind {kind}"
        assert obj.get("apiVersion") == API_VERSIONS[kind], f"{kind} apiVersion"
        name = obj["metadata"]["name"]
        assert DNS_LABEL.fullmatch(name), f"bad name {name}"
        assert len(name) <= 63, f"name too long: {name}"
        assert (kind, name) not in seen, f"{kind} {name} defined twice"
        seen.add((kind, name))
        if kind in ("Deployment", "StatefulSet", "Job"):
            selector = obj["spec"].get("selector", {}).get("matchLabels", {})
            assert selector.items() <= pod_labels(obj).items(), f"{name}: selector vs labels"


def test_the_five_services_run_on_kubernetes_with_their_ports() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    for name, port in [*SERVICE_PORTS.items(), ("gateway", GATEWAY_PORT)]:
        workload = named_workload(objects, name)
        (container,) = pod_spec(workload)["containers"]
        assert module_of([str(a) for a in container["args"]]) == name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports.get("http") == port, f"{name} container port"
        variable = "PREPAID_HTTP_PORT" if name == "gateway" else "PREPAID_SERVICE_PORT"
        assert env_value(container, variable) == str(port), f"{name}: {variable}"
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        scraped = GATEWAY_METRICS_PORT if name == "gateway" else port
        assert annotations.get("prometheus.io/port") == str(scraped), f"{name} scrape port"
        if name == "gateway":
            assert ports.get("metrics") == GATEWAY_METRICS_PORT
            assert env_value(container, "PREPAID_PUBLIC_METRICS") == "false"


def test_k8s_workloads_have_probes_resources_and_keep_the_entrypoint() -> None:
    for workload in workloads(all_k8s_objects()):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"].get("runAsNonRoot") is True, name
        for container in spec["containers"]:
            # `command` would replace the image's entrypoint (tini as PID 1).
            assert "command" not in container, f"{name}: use args, not command"
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            if workload["kind"] != "Job":
                for probe in ("readinessProbe", "livenessProbe"):
                    assert probe in container, f"{name} has no {probe}"
                    http = container[probe].get("httpGet")
                    tcp = container[probe].get("tcpSocket")
                    assert http or tcp, f"{name}: {probe}"
                    port = (http or tcp)["port"]
                    assert port in ports or port in ports.values(), f"{name}: {probe} port"
                    if http:
                        # Ready while the database and broker answer; alive while it answers.
                        path = "/readyz" if probe == "readinessProbe" else "/healthz"
                        assert http["path"] == path, f"{name}: {probe} path"
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request is not None, f"{name}: no {resource} request"
                assert limit is not None, f"{name}: no {resource} limit"
                assert parse_quantity(request) <= parse_quantity(limit), f"{name}: {resource}"


def test_k8s_services_select_pods_and_their_ports() -> None:
    for directory in K8S_DIRS:
        objects = k8s_objects(directory)
        for service in of_kind(objects, "Service"):
            name = service["metadata"]["name"]
            selector = service["spec"]["selector"]
            matched = [w for w in workloads(objects) if selector.items() <= pod_labels(w).items()]
            assert matched, f"Service {name} selects no pods"
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for workload in matched:
                    offered = [
                        p.get("name") if isinstance(target, str) else p["containerPort"]
                        for c in pod_spec(workload)["containers"]
                        for p in c.get("ports", [])
                    ]
                    assert target in offered, f"Service {name} targets {target}"


def test_k8s_urls_in_the_config_map_name_services_and_their_ports() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    (config,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == "prepaid-config"
    ]
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(objects, "Service")
    }
    for variable, target in URL_VARIABLES.items():
        url = urlsplit(config["data"][variable])
        assert url.hostname == target, variable
        assert url.port in services.get(target, set()), f"{variable}: no Service port {url.port}"
        assert url.port == SERVICE_PORTS[target]
    assert config["data"]["PREPAID_ENVIRONMENT"] == "production"
    for key, value in config["data"].items():
        assert not SECRET_NAME.search(key), f"{key} belongs in the Secret"
        assert not re.search(r"://[^/@]+:[^/@]+@", str(value)), f"{key} holds a password"


def secret_files(workload: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Paths of the Secret keys mounted into a container (a key's file, or every key's)."""
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    files = set()
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is not None:
            for item in secret.get("items", []):
                files.add(f"{mount['mountPath']}/{item['path']}")
    return files


def test_k8s_config_and_secret_references_exist() -> None:
    for directory in K8S_DIRS + CITY_DIRS:
        objects = k8s_objects(directory)
        maps = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
        map_keys = {o["metadata"]["name"]: set(o["data"]) for o in of_kind(objects, "ConfigMap")}
        secrets = {
            o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
            for o in of_kind(objects, "Secret")
        }
        for workload in workloads(objects):
            name = workload["metadata"]["name"]
            for container in pod_spec(workload)["containers"]:
                for source in container.get("envFrom", []):
                    if "configMapRef" in source:
                        assert source["configMapRef"]["name"] in maps, name
                    if "secretRef" in source:
                        assert source["secretRef"]["name"] in secrets, name
                for variable, item in container_env(container).items():
                    if SECRET_NAME.search(variable) or variable.endswith("_URL"):
                        assert "value" not in item or not re.search(
                            r"://[^/@]+:[^/@]+@", item["value"]
                        ), f"{name}: {variable} holds a password"
                    if SECRET_NAME.search(variable) and variable.endswith("_FILE"):
                        # A file of a mounted Secret: the secret is not in the environment.
                        assert item["value"] in secret_files(workload, container), (
                            f"{name}: {variable} names no file of a mounted Secret"
                        )
                    elif SECRET_NAME.search(variable):
                        assert "valueFrom" in item, f"{name}: {variable} given in plain text"
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in secrets.get(ref["name"], set()), (
                            f"{name}: {variable} refers to a missing secret key"
                        )
                    ref = item.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        assert ref["key"] in map_keys.get(ref["name"], set()), (
                            f"{name}: {variable} refers to a missing ConfigMap key"
                        )
                # The common settings refuse to start in production without these.
                if module_of([str(a) for a in container.get("args", [])]) in {
                    *SERVICE_PORTS,
                    "gateway",
                }:
                    env = container_env(container)
                    for variable in ("PREPAID_DATABASE_URL", "PREPAID_AMQP_URL"):
                        assert variable in env, f"{name} lacks {variable}"
                    assert "PREPAID_TOKEN_SECRET" in env or "PREPAID_TOKEN_SECRET_FILE" in env, (
                        f"{name} lacks PREPAID_TOKEN_SECRET"
                    )


def test_k8s_secret_volumes_mount_existing_keys_readable_by_the_service_only() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    secrets = {
        o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}))
        for o in of_kind(objects, "Secret")
    }
    for workload in workloads(objects):
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret is None:
                continue
            for item in secret["items"]:
                assert item["key"] in secrets[secret["secretName"]], workload["metadata"]["name"]
            # Group-readable for the pod's fsGroup (the service's own group), nobody else.
            assert secret["defaultMode"] & 0o007 == 0
            assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_demo_overlay_never_applies_the_placeholder_secret() -> None:
    # Applying it would overwrite the real Secret created out of band.
    (secret,) = of_kind(k8s_objects(K8S_DIRS[1]), "Secret")
    assert ("Secret", secret["metadata"]["name"]) in deleted_by_patches(K8S_DIRS[1])


def test_k8s_secret_example_holds_only_placeholders() -> None:
    (secret,) = of_kind(all_k8s_objects(), "Secret")
    assert "data" not in secret, "base64 data hides what is committed: use stringData"
    values = secret["stringData"]
    # The development default, which production refuses: the cluster cannot start with it.
    assert values["PREPAID_TOKEN_SECRET"] == DEVELOPMENT_SECRET
    for key, value in values.items():
        assert PLACEHOLDER.search(str(value)), f"{key} is not a clearly marked placeholder"


def test_collector_statefulset_names_each_replica_and_takes_dial_in_dtus() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    collector = named_workload(objects, "collector")
    assert collector["kind"] == "StatefulSet"
    (container,) = pod_spec(collector)["containers"]
    # Replicas share the field by leases under their own names: the pod's, stable.
    instance = container_env(container)["PREPAID_COLLECTOR_INSTANCE"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "PREPAID_COLLECTOR_REPLICAS" not in container_env(container), "leases, not a count"
    (governing,) = [
        s
        for s in of_kind(objects, "Service")
        if s["metadata"]["name"] == collector["spec"]["serviceName"]
    ]
    assert governing["spec"].get("clusterIP") == "None", "the governing Service is headless"
    # DTUs in client mode dial the listener (PREPAID_COLLECTOR_LISTEN_PORT, 9502).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["dtu"] == 9502
    dial_in = [
        s
        for s in of_kind(objects, "Service")
        if any(p.get("targetPort") == "dtu" for p in s["spec"]["ports"])
    ]
    assert dial_in, "no Service lets DTUs dial in"
    assert all(s["spec"].get("type") == "LoadBalancer" for s in dial_in)


def test_compose_collector_takes_dial_in_dtus_under_a_fixed_name() -> None:
    collector = compose_services()["collector"]
    assert collector["environment"]["PREPAID_COLLECTOR_INSTANCE"]
    assert any(without_interpolation(str(p)).endswith(":9502") for p in collector["ports"])


def test_single_consumer_services_never_run_two_pods() -> None:
    # Control consumes its queues in order (per meter): two pods side by side, even during a
    # rolling update, would compete for the same queue.
    workload = named_workload(k8s_objects(K8S_DIRS[0]), "control")
    assert workload["spec"]["replicas"] == 1
    assert workload["spec"]["strategy"]["type"] == "Recreate"


def test_billing_statefulset_gives_each_replica_its_ordinal() -> None:
    # Billing shards the readings over replicas: each pod's host name ends in the ordinal
    # that says which shards are its own, and a rolling update replaces one ordinal at a time.
    objects = k8s_objects(K8S_DIRS[0])
    billing = named_workload(objects, "billing")
    assert billing["kind"] == "StatefulSet"
    assert billing["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    (governing,) = [
        s
        for s in of_kind(objects, "Service")
        if s["metadata"]["name"] == billing["spec"]["serviceName"]
    ]
    assert governing["spec"].get("clusterIP") == "None", "the governing Service is headless"


def test_billing_has_a_disruption_budget_that_lets_a_drain_finish() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    billing = named_workload(objects, "billing")
    budgets = [
        b
        for b in of_kind(objects, "PodDisruptionBudget")
        if b["spec"]["selector"]["matchLabels"].items() <= pod_labels(billing).items()
    ]
    assert len(budgets) == 1, "billing needs one PodDisruptionBudget"
    spec = budgets[0]["spec"]
    replicas = billing["spec"]["replicas"]
    if "minAvailable" in spec:
        assert int(spec["minAvailable"]) < replicas, "minAvailable >= replicas blocks drains"
    else:
        assert int(spec["maxUnavailable"]) >= 1


def test_gateway_is_protected_from_drains_scaled_and_spread() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    gateway = named_workload(objects, "gateway")
    budgets = [
        b
        for b in of_kind(objects, "PodDisruptionBudget")
        if b["spec"]["selector"]["matchLabels"].items() <= pod_labels(gateway).items()
    ]
    assert len(budgets) == 1, "the gateway needs one PodDisruptionBudget"
    # It protects: a drain keeps one gateway up, and it cannot block every drain.
    assert 1 <= int(budgets[0]["spec"]["minAvailable"]) < gateway["spec"]["replicas"]
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    terms = pod_spec(gateway)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    selector = terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= pod_labels(gateway).items()


def test_services_pause_before_sigterm_so_endpoints_drop_them_first() -> None:
    for workload in workloads(k8s_objects(K8S_DIRS[0])):
        spec = pod_spec(workload)
        for container in spec["containers"]:
            command = container["lifecycle"]["preStop"]["exec"]["command"]
            assert command[0] == "sleep", workload["metadata"]["name"]
            assert int(command[1]) < int(spec["terminationGracePeriodSeconds"])


def test_dtu_load_balancer_admits_only_listed_source_ranges() -> None:
    for service in of_kind(k8s_objects(K8S_DIRS[0]), "Service"):
        if service["spec"].get("type") == "LoadBalancer":
            ranges = service["spec"]["loadBalancerSourceRanges"]
            assert ranges, service["metadata"]["name"]
            assert "0.0.0.0/0" not in ranges


def test_ingress_exposes_neither_metrics_nor_docs() -> None:
    (ingress,) = of_kind(k8s_objects(K8S_DIRS[0]), "Ingress")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            if path["pathType"] == "Exact":
                continue
            prefix = path["path"].rstrip("/")
            assert prefix, "a Prefix / would route /metrics, /docs and /openapi.json too"
            for hidden in ("/metrics", "/docs", "/openapi.json", "/readyz"):
                # Kubernetes matches prefixes path element by element.
                assert hidden != prefix, hidden
                assert not hidden.startswith(prefix + "/"), hidden


def test_compose_rotates_logs_and_pins_images() -> None:
    for name, service in compose_services().items():
        options = service["logging"]["options"]
        assert options["max-size"], name
        assert int(options["max-file"]) >= 1, name
        if "build" not in service and "@sha256:" not in service["image"]:
            # A full version or a digest: a tag like 15 or 3.13 moves under you. PostgreSQL's
            # versions have two numbers (15.8), the others three.
            repository, tag = service["image"].split(":", 1)
            numbers = 2 if repository == "postgres" else 3
            assert re.match(r"v?\d+" + r"\.\d+" * (numbers - 1) + r"(\b|-)", tag), name


def test_dockerfile_exposes_every_listening_port() -> None:
    exposed = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("EXPOSE"):
            exposed |= {int(port) for port in line.split()[1:]}
    assert {GATEWAY_PORT, GATEWAY_METRICS_PORT, 9502, *SERVICE_PORTS.values()} <= exposed


def test_ingress_routes_to_the_gateway_service() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    (ingress,) = of_kind(objects, "Ingress")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "gateway"
            ports = services[backend["name"]]["spec"]["ports"]
            port = backend["port"]
            assert any(
                p.get("name") == port.get("name") or p["port"] == port.get("number") for p in ports
            )


def test_demo_simulator_service_exposes_every_dtu_port() -> None:
    objects = k8s_objects(K8S_DIRS[1])
    simulator = named_workload(objects, "simulator")
    args = [str(a) for a in pod_spec(simulator)["containers"][0]["args"]]
    base, dtus = int(option(args, "--base-port") or 0), int(option(args, "--dtus") or 0)
    (service,) = [s for s in of_kind(objects, "Service") if s["metadata"]["name"] == "simulator"]
    exposed = {p["port"] for p in service["spec"]["ports"]}
    assert exposed == set(range(base, base + dtus))


@pytest.mark.parametrize("directory", K8S_DIRS + CITY_DIRS, ids=lambda d: d.name)
def test_kustomize_builds_when_kubectl_is_installed(directory: Path) -> None:
    generated = generated_config_maps(directory)
    built = {(doc["kind"], unhashed(doc, generated)) for doc in kustomize_build(directory)}
    expected = {(o["kind"], o["metadata"]["name"]) for o in k8s_objects(directory)}
    assert built == expected - deleted_by_patches(directory)


def scale_of(objects: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The built prepaid-scale ConfigMap: its hashed name and its values."""
    (scale,) = [
        o
        for o in of_kind(objects, "ConfigMap")
        if unhashed(o, {"prepaid-scale"}) == "prepaid-scale"
    ]
    return scale["metadata"]["name"], scale["data"]


def check_the_scale_values(objects: list[dict[str, Any]]) -> None:
    """The StatefulSets' replica counts are the prepaid-scale ConfigMap's values, and collector
    and billing read the one shard count (and the collector its poll interval) from it."""
    name, values = scale_of(objects)
    collector = named_workload(objects, "collector")
    billing = named_workload(objects, "billing")
    assert collector["spec"]["replicas"] == int(values["collector-replicas"])
    assert billing["spec"]["replicas"] == int(values["PREPAID_BILLING_REPLICAS"])
    shards = int(values["PREPAID_READING_SHARDS"])
    assert 1 <= billing["spec"]["replicas"] <= shards, "a billing replica without a shard"
    assert float(values["PREPAID_POLL_INTERVAL_SECONDS"]) > 0
    expected = {
        "collector": {"PREPAID_READING_SHARDS", "PREPAID_POLL_INTERVAL_SECONDS"},
        "billing": {"PREPAID_READING_SHARDS", "PREPAID_BILLING_REPLICAS"},
    }
    for workload in (collector, billing):
        (container,) = pod_spec(workload)["containers"]
        env = container_env(container)
        for variable in expected[workload["metadata"]["name"]]:
            reference = env[variable]["valueFrom"]["configMapKeyRef"]
            assert reference == {"name": name, "key": variable}, variable
    # Billing's index is its pod's ordinal (billing-2), never one value for every pod.
    assert "PREPAID_BILLING_REPLICA" not in container_env(pod_spec(billing)["containers"][0])


@pytest.mark.parametrize("directory", K8S_DIRS + CITY_DIRS, ids=lambda d: d.name)
def test_replicas_and_shards_come_from_the_scale_values(directory: Path) -> None:
    # One place for the scale. An overlay that merges values but forgets components/scale
    # keeps the base's replica counts: this fails then (as read here, and as kubectl builds).
    check_the_scale_values(list(k8s_objects(directory)))


@pytest.mark.parametrize("directory", K8S_DIRS + CITY_DIRS, ids=lambda d: d.name)
def test_replicas_and_shards_come_from_the_scale_values_as_kubectl_builds(
    directory: Path,
) -> None:
    check_the_scale_values(kustomize_build(directory))


@pytest.mark.parametrize("directory", CITY_DIRS, ids=lambda d: d.name)
def test_city_overlays_change_the_scale_only_and_are_documented(directory: Path) -> None:
    base = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects(K8S_DIRS[0])}
    city = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects(directory)}
    assert city.keys() == base.keys()
    _, values = scale_of(list(city.values()))
    _, base_values = scale_of(list(base.values()))
    assert values.keys() == base_values.keys(), "an overlay sets only the base's scale values"
    assert values != base_values
    assert int(values["collector-replicas"]) > 1
    assert int(values["PREPAID_BILLING_REPLICAS"]) > 1
    # docs/scaling.md derives each overlay's numbers and names the overlay.
    doc = SCALING_DOC.read_text(encoding="utf-8")
    assert f"deploy/{directory.name}" in doc
    for value in values.values():
        assert value in doc, f"docs/scaling.md never states {value}"


# --- secrets and docs ---------------------------------------------------------------------
def deployment_files() -> list[Path]:
    files = [DOCKERFILE, ROOT / ".dockerignore", COMPOSE_FILE]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    if DEPLOY_DOC.exists():
        files.append(DEPLOY_DOC)
    return files


def entropy(text: str) -> float:
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def test_no_file_holds_a_real_looking_secret() -> None:
    # Placeholders, and RabbitMQ's well-known guest account (it only works from localhost).
    placeholder_password = re.compile(r"^(<|\.\.\.|x$|guest$)|change[-_]?me", re.IGNORECASE)
    for path in deployment_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        assert "PRIVATE KEY-----" not in text, f"{where}: private key"
        assert not re.search(r"\bAKIA[0-9A-Z]{16}\b", text), f"{where}: cloud access key"
        assert not re.search(r"\beyJ[\w-]{10,}\.eyJ[\w-]{10,}\.", text), f"{where}: a JWT"
        plain = without_interpolation(text)
        for match in re.finditer(r"[a-z][a-z0-9+.-]*://([^/\s:@]+):([^@\s/]+)@", plain):
            password = match.group(2)
            assert placeholder_password.search(password), f"{where}: password in {match[0]}"
        for token in re.findall(r"(?<![A-Za-z0-9+=_-])[A-Za-z0-9+=_-]{20,}", plain):
            if re.fullmatch(r"[0-9a-fA-F]{32,}", token):
                raise AssertionError(f"{where}: {token[:6]}... looks like a hex key")
            mixed = re.search(r"[a-z]", token) and re.search(r"[A-Z]", token)
            if mixed and re.search(r"[0-9]", token):
                assert entropy(token) < 4.0, f"{where}: {token[:6]}... looks like a key"
    for path in (ENV_EXAMPLE, COMPOSE_FILE):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*([A-Z][A-Z0-9_]*)\s*[=:]\s*(\S.*)?$", line)
            if match and SECRET_NAME.search(match.group(1)) and match.group(2):
                value = match.group(2)
                # A variable or a file under /run/secrets (a compose secret), never a value.
                assert value.startswith(("${", "/run/secrets/")), f"{path.name}: {line.strip()}"


def test_env_file_is_never_committed() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    tracked = subprocess.run(
        [git, "ls-files", "--error-unmatch", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert tracked.returncode != 0, ".env (real secrets) is committed"
    ignored = subprocess.run(
        [git, "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, ".env must be listed in .gitignore"


def test_deploy_doc_covers_every_setting_the_manifests_use() -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    assert "cp deploy/env.example .env" in doc
    used = set(re.findall(r"\bPREPAID_[A-Z0-9_]+", COMPOSE_FILE.read_text(encoding="utf-8")))
    for path in manifest_files(K8S_DIRS[0]):
        used |= set(re.findall(r"\bPREPAID_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    used |= set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE
        )
    )
    missing = sorted(name for name in used if name not in doc)
    assert not missing, f"docs/deploy.md does not explain {missing}"


def test_only_the_gateway_and_prometheus_reach_the_internal_apis() -> None:
    objects = k8s_objects(K8S_DIRS[0])
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    internal = policies["internal-apis-from-the-gateway"]
    (expression,) = internal["podSelector"]["matchExpressions"]
    assert set(expression["values"]) == set(SERVICE_PORTS), "every internal API is covered"
    (rule,) = internal["ingress"]
    sources = rule["from"]
    assert [s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in sources[:1]] == [
        "gateway"
    ]
    assert all("podSelector" in s or "namespaceSelector" in s for s in sources)
    assert not any(s.get("ipBlock") for s in sources), "no address range reaches them"
    # Pods are reached through their Services: they listen beyond loopback in the cluster.
    config = next(
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == "prepaid-config"
    )
    assert config["data"]["PREPAID_LISTEN_HOST"] == "0.0.0.0"
