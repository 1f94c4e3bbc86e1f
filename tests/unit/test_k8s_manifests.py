"""The Kubernetes manifests (deploy/k8s, docs/KUBERNETES.md): the base and every overlay
render with kustomize (``kubectl kustomize``), every rendered document validates
against the Kubernetes API's schemas (``kubernetes-validate``, strict) or, for KEDA's
custom resources, which it has no schema for, against deploy/k8s/schemas/; and the
properties the deployment promises hold: executors without privileges, probes and
resources everywhere, no secret value in the repository."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from shared.settings import (
    ExecutorSettings,
    ExtractorSettings,
    GatewaySettings,
    GeneratorSettings,
    ScorerSettings,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KEDA_SCHEMA = K8S / "schemas" / "keda-v1alpha1.json"
DEFAULT = ("base", "overlays/local", "overlays/gpu")
"""What renders with KEDA (the default autoscaler)."""
KUSTOMIZATIONS = (*DEFAULT, "overlays/hpa")
KUBERNETES_VERSION = "1.33.0"
"""The oldest Kubernetes the manifests are for (user-namespaced pods on by default)."""
ENV_FILE = "base/coderm.env"
# the test's own credentials, written into the copy of the tree it renders
TEST_ENV = {
    "CODERM_DATABASE__URL": "postgresql+asyncpg://coderm:test-db-secret@postgres:5432/coderm",
    "CODERM_BROKER__URL": "amqp://coderm:test-mq-secret@rabbitmq:5672/coderm",
}
METRICS_PORTS = {
    "coderm-generator": GeneratorSettings.model_fields["metrics_port"].default,
    "coderm-extractor": ExtractorSettings.model_fields["metrics_port"].default,
    "coderm-scorer": ScorerSettings.model_fields["metrics_port"].default,
    "coderm-executor": ExecutorSettings.model_fields["metrics_port"].default,
    "coderm-gateway": GatewaySettings.model_fields["metrics_port"].default,
}
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^@\s]+@")

Doc = dict[str, Any]


def kustomize_command() -> list[str]:
    """``kubectl kustomize`` (or a ``kustomize`` binary's ``build``); the test fails,
    not skips, without one: deploy/local/up.sh installs kubectl."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.fail("no kubectl or kustomize on PATH (deploy/local/up.sh --infra-only installs it)")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with an env file of test credentials where make-env.sh
    writes the real one (never in the repository)."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("coderm.env"))
    env = copy / ENV_FILE
    env.write_text("".join(f"{k}={v}\n" for k, v in TEST_ENV.items()))
    env.chmod(0o600)
    return copy


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, list[Doc]]:
    """Every kustomization's documents."""
    out: dict[str, list[Doc]] = {}
    for name in KUSTOMIZATIONS:
        done = subprocess.run(
            [*kustomize_command(), str(tree / name)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{name} does not render: {done.stderr}"
        out[name] = [d for d in yaml.safe_load_all(done.stdout) if d]
    return out


def keda_validator() -> Any:
    """A validator of KEDA's ScaledObject and TriggerAuthentication (our schema)."""
    schema = json.loads(KEDA_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(doc: Doc) -> None:
    """Validate one document: KEDA's kinds against our schema, everything else with
    kubernetes-validate (strict: unknown fields are errors). A kind neither knows fails."""
    if str(doc.get("apiVersion", "")).startswith("keda.sh/"):
        errors = [e.message for e in keda_validator().iter_errors(doc)]
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {errors}"
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"no schema for {doc['apiVersion']} {doc['kind']}: add one")
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    """The documents of ``kind``."""
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    """The one document of ``kind`` called ``name``."""
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    """The pod template's spec of a Deployment or Job."""
    return cast(Doc, doc["spec"]["template"]["spec"])


def containers(spec: Doc) -> Iterator[Doc]:
    """Every container of a pod spec, init containers included."""
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_document_validates(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    assert docs
    for doc in docs:
        validate(doc)


def test_kubernetes_validate_has_no_schema_for_keda(rendered: dict[str, list[Doc]]) -> None:
    """Why KEDA's objects go to our schema: kubernetes-validate does not know them (it
    raises SchemaNotFoundError, which :func:`validate` never lets pass silently)."""
    scaled = named(rendered["base"], "ScaledObject", "coderm-executor")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(scaled, KUBERNETES_VERSION, strict=True)


def test_the_keda_schema_rejects_mistakes(rendered: dict[str, list[Doc]]) -> None:
    validator = keda_validator()
    scaled = named(rendered["base"], "ScaledObject", "coderm-executor")
    assert not list(validator.iter_errors(scaled))
    typo = json.loads(json.dumps(scaled))
    typo["spec"]["maxReplicas"] = typo["spec"].pop("maxReplicaCount")
    no_queue = json.loads(json.dumps(scaled))
    del no_queue["spec"]["triggers"][0]["metadata"]["queueName"]
    bad_mode = json.loads(json.dumps(scaled))
    bad_mode["spec"]["triggers"][0]["metadata"]["mode"] = "Length"
    auth = named(rendered["base"], "TriggerAuthentication", "coderm-rabbitmq")
    no_key = json.loads(json.dumps(auth))
    del no_key["spec"]["secretTargetRef"][0]["key"]
    for broken in (typo, no_queue, bad_mode, no_key):
        assert list(validator.iter_errors(broken)), broken


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_executors_run_without_privileges(rendered: dict[str, list[Doc]], name: str) -> None:
    """Every executor container (the init container too): not root, read-only root,
    no capabilities, no privilege escalation, RuntimeDefault seccomp; the bwrap
    backend, no Docker socket or host path, emptyDir for /tmp and the scratch dirs."""
    executor = named(rendered[name], "Deployment", "coderm-executor")
    spec = pod_spec(executor)
    pod_security = spec.get("securityContext", {})
    assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
    assert all("hostPath" not in v for v in spec.get("volumes", []))
    for container in containers(spec):
        security = container.get("securityContext", {})
        where = f"{name}: {container['name']}"
        assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
        assert security.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, where
        assert security.get("readOnlyRootFilesystem") is True, where
        assert security.get("allowPrivilegeEscalation") is False, where
        assert "ALL" in security.get("capabilities", {}).get("drop", []), where
        assert not security.get("capabilities", {}).get("add"), where
        assert not security.get("privileged"), where
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
    main = next(c for c in spec["containers"] if c["name"] == "executor")
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    assert env["CODERM_SANDBOX__BACKEND"] == "bwrap"
    empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts["/tmp"] in empty and mounts["/run/coderm-sandbox"] in empty
    assert mounts[env["CODERM_SANDBOX__ROOTFS_DIR"]] in empty


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_pod_is_hardened(rendered: dict[str, list[Doc]], name: str) -> None:
    """Not only the executors: no coderm container runs as root or keeps a capability."""
    for doc in of_kind(rendered[name], "Deployment") + of_kind(rendered[name], "Job"):
        spec = pod_spec(doc)
        for container in containers(spec):
            security = container.get("securityContext", {})
            where = f"{name}: {doc['metadata']['name']}/{container['name']}"
            run_as_non_root = security.get(
                "runAsNonRoot", spec.get("securityContext", {}).get("runAsNonRoot")
            )
            assert run_as_non_root is True, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in security.get("capabilities", {}).get("drop", []), where


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_probes_ports_and_resources(rendered: dict[str, list[Doc]], name: str) -> None:
    """Every Deployment: readiness on /readyz and liveness on /healthz at its metrics
    port (the service's CODERM_METRICS_PORT default, docs/OBSERVABILITY.md); every
    container of every Deployment and Job: CPU and memory requests and limits."""
    deployments = of_kind(rendered[name], "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(METRICS_PORTS)
    for doc in deployments:
        deployment = doc["metadata"]["name"]
        spec = pod_spec(doc)
        main = spec["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports["metrics"] == METRICS_PORTS[deployment], deployment
        env = {e["name"]: e.get("value") for e in main.get("env", [])}
        assert env["CODERM_METRICS_PORT"] == str(METRICS_PORTS[deployment]), deployment
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    for doc in deployments + of_kind(rendered[name], "Job"):
        for container in containers(pod_spec(doc)):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    f"{name}: {doc['metadata']['name']}/{container['name']} {part}"
                )


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_disruption_budgets_and_migration(rendered: dict[str, list[Doc]], name: str) -> None:
    docs = rendered[name]
    for target in ("coderm-executor", "coderm-gateway"):
        budget = named(docs, "PodDisruptionBudget", target)
        selector = budget["spec"]["selector"]["matchLabels"]
        template = named(docs, "Deployment", target)["spec"]["template"]["metadata"]["labels"]
        assert selector and selector.items() <= template.items(), target
    migrate = named(docs, "Job", "coderm-migrate")
    assert pod_spec(migrate)["containers"][0]["command"] == ["alembic", "upgrade", "head"]


@pytest.mark.parametrize("name", DEFAULT)
def test_keda_scales_executors_on_the_execute_queue(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    """The ScaledObject targets the executors on coderm.execute, authenticated by the
    generated Secret (its hashed name and a key it has), and no HPA competes with it."""
    docs = rendered[name]
    scaled = named(docs, "ScaledObject", "coderm-executor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "coderm-executor"
    named(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "coderm.execute"
    assert "host" not in trigger["metadata"]  # the URL holds a password: from the Secret
    auth = named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    secret = named(docs, "Secret", ref["name"])
    assert ref["key"] in secret["data"]
    assert not of_kind(docs, "HorizontalPodAutoscaler")


def test_the_hpa_overlay_replaces_keda(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["overlays/hpa"]
    assert not [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    hpa = named(docs, "HorizontalPodAutoscaler", "coderm-executor")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "coderm-executor"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"queue": "coderm.execute"}
    base = (K8S / "base" / "kustomization.yaml").read_text()
    local = (K8S / "overlays" / "local" / "kustomization.yaml").read_text()
    assert "hpa" not in base and "hpa" not in local  # not in the default kustomization


def test_the_gpu_overlay_gives_the_generator_a_gpu_and_vllm(
    rendered: dict[str, list[Doc]],
) -> None:
    generator = pod_spec(named(rendered["overlays/gpu"], "Deployment", "coderm-generator"))
    main = generator["containers"][0]
    assert main["image"].startswith("coderm-vllm:")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    local = pod_spec(named(rendered["overlays/local"], "Deployment", "coderm-generator"))
    assert "nvidia.com/gpu" not in local["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_secrets_come_from_the_env_file_only(rendered: dict[str, list[Doc]], name: str) -> None:
    """The one Secret holds exactly the env file's values; no credential anywhere else
    in the rendered documents (env values, config maps, KEDA's metadata)."""
    docs = rendered[name]
    (secret,) = of_kind(docs, "Secret")
    assert "stringData" not in secret
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert values == TEST_ENV
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = json.dumps(doc)
        for value in TEST_ENV.values():
            assert value not in text, f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        assert not CREDENTIALS_IN_URL.search(text), f"{doc['kind']}/{doc['metadata']['name']}"


def test_no_secret_value_in_the_repository() -> None:
    """No manifest in deploy/k8s states a Secret or a credential (comments aside); the
    env file the Secret comes from is git-ignored."""
    for path in K8S.rglob("*"):
        if not path.is_file() or path.name == "coderm.env":
            continue
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert not CREDENTIALS_IN_URL.search(code), path
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict):
                    assert doc.get("kind") != "Secret", path
                    assert "stringData" not in doc, path
                    for generator in doc.get("secretGenerator", []):
                        assert "literals" not in generator, path  # values in the repo
                        assert generator.get("envs") == ["coderm.env"], path
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(K8S / ENV_FILE)], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/k8s/base/coderm.env must be git-ignored"
