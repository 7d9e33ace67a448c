"""What a Job must satisfy beyond its OpenAPI schema, written from Kubernetes' documentation.

`kubernetes-validate --strict` checks types and unknown fields; it does not check name and label
syntax, nor the rules that tie fields together, nor what the worker needs of its pod. These
checks are the test's own, deliberately not shared with wove-submit's: a rule the crate gets
wrong must be caught here, not repeated.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List

import kubernetes_validate

# The oldest and newest Kubernetes versions wove-submit supports (k8s-openapi's v1_33 ... v1_37).
SUPPORTED_VERSIONS = ("1.33.0", "1.37.0")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_ARG_STRLEN = 128 * 1024
GRACE_MARGIN = 5
DEFAULT_SHUTDOWN_BUDGET = 25


def validate_schema(objects: Iterable[Dict[str, Any]]) -> None:
    """kubernetes-validate --strict, for every supported version."""
    for obj in objects:
        for version in SUPPORTED_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def _qualified_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(LABEL_NAME.match(name))


def _meta(path: str, meta: Dict[str, Any], problems: List[str]) -> None:
    for key, value in (meta.get("labels") or {}).items():
        if not _qualified_key(key):
            problems.append(f"{path}.labels: bad key {key!r}")
        if len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(f"{path}.labels.{key}: bad value {value!r}")
    for key in meta.get("annotations") or {}:
        if not _qualified_key(key):
            problems.append(f"{path}.annotations: bad key {key!r}")


def job_problems(job: Dict[str, Any], secret: Dict[str, Any] | None = None) -> List[str]:
    """Every rule the Job breaks (empty when sound)."""
    problems: List[str] = []
    name = job["metadata"].get("name", "")
    # The Job controller puts the name into a pod label, so it must be a valid label value too.
    if len(name) > 63 or not DNS_LABEL.match(name):
        problems.append(f"metadata.name {name!r} is not a DNS-1123 label of at most 63 characters")
    _meta("metadata", job["metadata"], problems)
    spec = job["spec"]
    template = spec["template"]
    _meta("spec.template.metadata", template.get("metadata") or {}, problems)
    pod = template["spec"]
    restart = pod.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        problems.append(f"restartPolicy {restart!r}")
    containers = {c["name"]: c for c in pod["containers"]}
    policy = spec.get("podFailurePolicy")
    if policy:
        if restart != "Never":
            problems.append("podFailurePolicy needs restartPolicy Never")
        if spec.get("podReplacementPolicy", "Failed") != "Failed":
            problems.append("podFailurePolicy needs podReplacementPolicy Failed")
        for i, rule in enumerate(policy["rules"]):
            if rule["action"] == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
                problems.append(f"rule {i}: FailIndex without backoffLimitPerIndex")
            codes = rule.get("onExitCodes")
            if codes is None:
                continue
            values = codes["values"]
            if values != sorted(set(values)):
                problems.append(f"rule {i}: values not sorted and unique: {values}")
            if codes["operator"] == "In" and 0 in values:
                problems.append(f"rule {i}: 0 with operator In")
            if codes.get("containerName") not in (None, *containers):
                problems.append(f"rule {i}: no container {codes.get('containerName')!r}")
    if spec.get("backoffLimitPerIndex") is not None and spec.get("completionMode") != "Indexed":
        problems.append("backoffLimitPerIndex without completionMode Indexed")
    worker = containers.get("wove")
    if worker is None:
        problems.append("no container named wove")
        return problems
    env = {var["name"]: var for var in worker.get("env") or []}
    budget = int(env.get("WOVE_WORKER_SHUTDOWN_BUDGET", {}).get("value", DEFAULT_SHUTDOWN_BUDGET))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < budget + GRACE_MARGIN:
        problems.append(f"terminationGracePeriodSeconds {grace} < shutdown budget {budget} + {GRACE_MARGIN}")
    for var in worker.get("env") or []:
        if len(var["name"]) + len(var.get("value") or "") + 2 > MAX_ARG_STRLEN:
            problems.append(f"env {var['name']} is over Linux's MAX_ARG_STRLEN")
    if "value" in env.get("WOVE_WORKER_SIGNING_SECRET", {}):
        problems.append("the signing secret is inline")
    sources = [n for n in ("WOVE_BACKEND_PAYLOAD", "WOVE_BACKEND_PAYLOAD_FILE") if n in env]
    if len(sources) != 1:
        problems.append(f"payload sources: {sources}")
    if "WOVE_BACKEND_PAYLOAD_FILE" in env:
        if secret is None:
            problems.append("the payload file needs its Secret")
        else:
            secret_name = secret["metadata"]["name"]
            volumes = [v for v in pod.get("volumes") or [] if (v.get("secret") or {}).get("secretName") == secret_name]
            mounted = [m for m in worker.get("volumeMounts") or [] if m["name"] in {v["name"] for v in volumes}]
            path = env["WOVE_BACKEND_PAYLOAD_FILE"]["value"]
            if not any(path.startswith(m["mountPath"].rstrip("/") + "/") and m.get("readOnly") for m in mounted):
                problems.append(f"{path} is not in a read-only mount of Secret {secret_name}")
    return problems
