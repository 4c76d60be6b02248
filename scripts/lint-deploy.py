#!/usr/bin/env python3
"""`make lint-deploy` (part of `make test`): the deployments, checked offline.

1. Every Kubernetes manifest in deploy/kubernetes validates against the API schemas
   (kubernetes-validate --strict: unknown fields are errors), and the kustomization lists
   exactly the manifests of the folder.
2. Every container of deploy/kubernetes and docker-compose.yml is set up the way its
   binary reads its configuration (the `env = "TICKETDROP_..."` flags of the crate's
   src/config.rs and server-kit's options):
   - every TICKETDROP_* variable it sets is one the binary reads;
   - every variable whose default is a loopback address (127.0.0.1: the local stack) is
     set, since in a container loopback is the container itself;
   - every Secret key it reads exists (stores.yaml, and the keys keys-job.sh makes), and
     every ConfigMap key (web.yaml);
   - it mounts the keys its binary loads: the public keys, mesh.pem where the binary
     signs its own calls (server_kit `service_credential`), users.pem where the web
     server signs development logins; no private key it does not use.
3. The web page reaches the services as a browser does: in docker-compose.yml every
   endpoint the `web` service hands the page is a host address some service of that
   kind publishes, every coordinator replica is among them, and every service lets the
   page's published origin call it (TICKETDROP_WEB_ORIGIN).
4. A broken copy of each deployment is refused (the checks can fail).

Run with the repo's venv: .stack/venv/bin/python scripts/lint-deploy.py
"""

from __future__ import annotations

import copy
import glob
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "kubernetes")

# Which crate holds each binary's configuration.
CRATES = {
    "coordinator": "coordinator",
    "inventory-pg": "inventory-pg",
    "orders-dynamo": "orders-dynamo",
    "payments": "payments",
    "waiting-room": "waiting-room",
    "notifier": "notifier",
    "ticketdrop": "client",
    "ticketdrop-web": "web",
}


def arg_attributes(source: str):
    """The text inside each `#[arg(...)]` attribute, parentheses balanced."""
    for match in re.finditer(r"#\[arg\(", source):
        depth, i = 1, match.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        yield source[match.end() : i - 1]


def read_flags(paths):
    """{variable: default or None} of every flag with an env fallback in `paths`."""
    flags = {}
    for path in paths:
        with open(path) as f:
            source = f.read()
        for attribute in arg_attributes(source):
            env = re.search(r'env\s*=\s*"([A-Z0-9_]+)"', attribute)
            if not env:
                continue
            default = re.search(r'default_value\s*=\s*"([^"]*)"', attribute)
            flags[env.group(1)] = default.group(1) if default else None
    return flags


def binary_config(binary: str):
    """What `binary` reads: its variables with defaults, and whether it signs calls."""
    crate = os.path.join(ROOT, CRATES[binary], "src")
    sources = glob.glob(os.path.join(crate, "**", "*.rs"), recursive=True)
    text = "".join(open(p).read() for p in sources)
    paths = list(sources)
    if binary != "ticketdrop":
        paths.append(os.path.join(ROOT, "server-kit", "src", "options.rs"))
        if "RateLimitOptions" in text:
            paths.append(os.path.join(ROOT, "server-kit", "src", "rate.rs"))
    return {
        "flags": read_flags(paths),
        "signs_calls": "service_credential(" in text,
    }


def loopback(default):
    return default is not None and "127.0.0.1" in default


def truthy(value):
    """clap's reading of a boolean flag's variable."""
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def check_container(where, binary, env, configs, secret_keys, mounted_keys, args=()):
    """Problems of one container running `binary` with `env` ({name: source}: ("value",
    text), ("secret", name, key) or ("configmap", name, key)); `secret_keys` holds the
    keys of every Secret and ConfigMap by (kind, name)."""
    problems = []
    config = configs[binary]
    flags = config["flags"]
    for name, source in env.items():
        if name.startswith("TICKETDROP_") and name not in flags:
            problems.append(f"{where}: {binary} reads no {name}")
        if source and source[0] in ("secret", "configmap"):
            kind, holder, key = source
            if key not in secret_keys.get((kind, holder), set()):
                kind_name = {"secret": "Secret", "configmap": "ConfigMap"}[kind]
                problems.append(f"{where}: {name} reads key {key!r} that {kind_name} {holder} does not hold")
    # Two commands that call nothing: the table setup job and `ticketdrop keys`.
    offline = "--create-table-only" in args or list(args[:1]) == ["keys"]
    if not offline:
        for name, default in sorted(flags.items()):
            if loopback(default) and name not in env:
                problems.append(f"{where}: {name} is not set; {binary}'s default {default} is the container itself")
    if mounted_keys is not None and "--create-table-only" not in args and binary != "ticketdrop":
        dev_login = binary == "ticketdrop-web" and truthy((env.get("TICKETDROP_WEB_DEV_LOGIN") or (None, None))[1])
        needed = {"users.pub.pem", "mesh.pub.pem"}
        needed |= {"mesh.pem"} if config["signs_calls"] else set()
        needed |= {"users.pem"} if dev_login else set()
        if needed - mounted_keys:
            problems.append(f"{where}: mounts no {sorted(needed - mounted_keys)} ({binary} loads them)")
        for private in sorted(({"mesh.pem", "users.pem"} & mounted_keys) - needed):
            problems.append(f"{where}: mounts {private}, which {binary} never uses")
    return problems


# --- Kubernetes ------------------------------------------------------------------------------


def k8s_documents():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.basename(path), doc))
    return docs


def keys_job_secret_keys():
    with open(os.path.join(K8S, "keys-job.sh")) as f:
        return set(re.findall(r'^\s*"([a-z.-]+)": "\$\(b64', f.read(), re.M))


def check_k8s(docs, configs):
    problems = []
    secret_keys = {("secret", "ticketdrop-keys"): keys_job_secret_keys()}
    for _, doc in docs:
        if doc.get("kind") in ("Secret", "ConfigMap"):
            holder = (doc["kind"].lower(), doc["metadata"]["name"])
            secret_keys[holder] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    for path, doc in docs:
        if doc.get("kind") not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            command = container.get("command", [])
            where = f"{path} {doc['kind']}/{doc['metadata']['name']} container {container['name']}"
            if command and command[0] == "ticketdrop-keys-job":
                continue
            binary = command[0] if command else None
            if binary not in configs:
                problems.append(f"{where}: runs {command}, not a binary of the repo")
                continue
            env = {}
            for var in container.get("env", []):
                secret = var.get("valueFrom", {}).get("secretKeyRef")
                config_map = var.get("valueFrom", {}).get("configMapKeyRef")
                if secret:
                    env[var["name"]] = ("secret", secret["name"], secret["key"])
                elif config_map:
                    env[var["name"]] = ("configmap", config_map["name"], config_map["key"])
                else:
                    env[var["name"]] = ("value", var.get("value"))
            mounted = None
            for mount in container.get("volumeMounts", []):
                volume = volumes.get(mount["volumeName"] if "volumeName" in mount else mount["name"], {})
                secret = volume.get("secret")
                if secret and mount["mountPath"] == env_value(container, "TICKETDROP_AUTH_DIR"):
                    mounted = {item["path"] for item in secret.get("items", [])}
                    for item in secret.get("items", []):
                        if item["key"] not in secret_keys.get(("secret", secret["secretName"]), set()):
                            problems.append(f"{where}: mounts key {item['key']!r} that Secret {secret['secretName']} does not hold")
            if mounted is None:
                mounted = set()
            problems += check_container(where, binary, env, configs, secret_keys, mounted, command[1:])
            if "--create-table-only" not in command:
                for probe in ("readinessProbe", "livenessProbe"):
                    port = container.get(probe, {}).get("grpc", {}).get("port")
                    listen = env_value(container, f"TICKETDROP_{prefix(binary)}_LISTEN") or ""
                    if port is None or not listen.endswith(f":{port}"):
                        problems.append(f"{where}: {probe} asks no gRPC health on the port it listens on ({listen})")
    return problems


def prefix(binary):
    return {
        "inventory-pg": "INVENTORY",
        "orders-dynamo": "ORDERS",
        "waiting-room": "WAITING_ROOM",
        "ticketdrop-web": "WEB",
    }.get(binary, binary.upper())


def env_value(container, name):
    for var in container.get("env", []):
        if var["name"] == name:
            return var.get("value")
    return None


def check_kustomization(docs):
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        listed = set(yaml.safe_load(f)["resources"])
    present = {os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))} - {"kustomization.yaml"}
    problems = [f"kustomization.yaml lists {name}, which does not exist" for name in sorted(listed - present)]
    problems += [f"kustomization.yaml leaves out {name}" for name in sorted(present - listed)]
    return problems


def validate_schemas():
    files = sorted(p for p in glob.glob(os.path.join(K8S, "*.yaml")) if not p.endswith("kustomization.yaml"))
    tool = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    result = subprocess.run([tool, "--strict", "--quiet", *files], capture_output=True, text=True)
    out = (result.stdout + result.stderr).strip()
    return [] if result.returncode == 0 else [f"kubernetes-validate: {line}" for line in out.splitlines()]


# --- docker-compose.yml --------------------------------------------------------------------------


def compose_file():
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def check_compose(compose, configs):
    problems = []
    services = compose["services"]
    for name, service in services.items():
        command = service.get("entrypoint") or service.get("command") or []
        binary = command[0] if command else None
        if binary not in configs:
            continue
        env = {k: ("value", str(v)) for k, v in (service.get("environment") or {}).items()}
        where = f"docker-compose.yml service {name}"
        problems += check_container(where, binary, env, configs, {}, None, command[1:])
        if binary != "ticketdrop":  # the CLI, and the keys job
            test = " ".join(service.get("healthcheck", {}).get("test", []))
            listen = (service.get("environment") or {}).get(f"TICKETDROP_{prefix(binary)}_LISTEN", "")
            port = listen.rsplit(":", 1)[-1]
            if not listen or f"127.0.0.1:{port}" not in test:
                problems.append(f"{where}: its healthcheck asks no gRPC health on the port it listens on ({listen})")
            depends = service.get("depends_on") or {}
            if isinstance(depends, list):  # the short form: started, not healthy
                depends = {d: {} for d in depends}
            needs_health = [d for d, c in depends.items() if c.get("condition") != "service_healthy" and d != "keys"]
            if needs_health:
                problems.append(f"{where}: starts before {needs_health} are healthy")
    return problems + check_compose_web(services)


# The web server's variables that name a service a browser calls, and that service's binary.
BROWSER_ENDPOINTS = {
    "TICKETDROP_COORDINATOR_ENDPOINT": "coordinator",
    "TICKETDROP_INVENTORY_ENDPOINT": "inventory-pg",
    "TICKETDROP_ORDERS_ENDPOINT": "orders-dynamo",
    "TICKETDROP_WAITING_ROOM_ENDPOINT": "waiting-room",
}


def published(service, container_port):
    """The host addresses ("127.0.0.1:${VAR:-18050}") at which `service` publishes `container_port`."""
    out = []
    for port in service.get("ports") or []:
        host, _, inner = str(port).rpartition(":")
        if inner == str(container_port):
            out.append(host)
    return out


def listen_port(service, binary):
    listen = (service.get("environment") or {}).get(f"TICKETDROP_{prefix(binary)}_LISTEN", "")
    return listen.rsplit(":", 1)[-1]


def check_compose_web(services):
    """The page's endpoints are the services' published addresses (the browser runs on
    the host), and every service lets the page's published origin call it."""
    problems = []
    binary_of = {}
    for name, service in services.items():
        command = service.get("entrypoint") or service.get("command") or []
        binary_of[name] = command[0] if command else None
    webs = [name for name, binary in binary_of.items() if binary == "ticketdrop-web"]
    if len(webs) != 1:
        return [f"docker-compose.yml: {len(webs)} services run ticketdrop-web; the page needs one"]
    web = services[webs[0]]
    env = web.get("environment") or {}
    where = f"docker-compose.yml service {webs[0]}"
    page = published(web, listen_port(web, "ticketdrop-web"))
    if not page:
        return [f"{where}: publishes no port for the page"]
    for variable, binary in BROWSER_ENDPOINTS.items():
        urls = [u.strip() for u in str(env.get(variable, "")).split(",") if u.strip()]
        addresses = {u.removeprefix("http://").rstrip("/") for u in urls}
        kind = {name: services[name] for name, b in binary_of.items() if b == binary}
        published_by = {}
        for name, service in kind.items():
            hosts = published(service, listen_port(service, binary))
            if not hosts:
                problems.append(f"docker-compose.yml service {name}: publishes no port, yet the page calls {binary}")
            for host in hosts:
                published_by[host] = name
            if hosts and not set(hosts) & addresses:
                problems.append(f"{where}: {variable} leaves out {name} ({' or '.join(hosts)})")
        for address in sorted(addresses - set(published_by)):
            problems.append(f"{where}: {variable} names {address}, which no {binary} service publishes")
        for name, service in kind.items():
            origins = str((service.get("environment") or {}).get("TICKETDROP_WEB_ORIGIN", "")).split(",")
            if not any(o.strip() == f"http://{host}" for host in page for o in origins):
                problems.append(f"docker-compose.yml service {name}: TICKETDROP_WEB_ORIGIN lets no page at http://{page[0]} call it")
    return problems


# --- main ---------------------------------------------------------------------------------------


def self_check(docs, compose, configs):
    """Breaks a copy of each deployment and expects the checks to say so."""
    broken = copy.deepcopy(docs)
    for _, doc in broken:
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "coordinator":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["env"] = [v for v in container["env"] if v["name"] != "TICKETDROP_NOTIFIER_ENDPOINT"]
            container["env"].append({"name": "TICKETDROP_COORDINATOR_NO_SUCH_FLAG", "value": "1"})
    found = check_k8s(broken, configs)
    assert any("TICKETDROP_NOTIFIER_ENDPOINT is not set" in p for p in found), found
    assert any("reads no TICKETDROP_COORDINATOR_NO_SUCH_FLAG" in p for p in found), found
    web = next(doc for _, doc in broken if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "TICKETDROP_WEB_DEV_LOGIN", "value": "true"})
    next(v for v in container["env"] if v["name"] == "TICKETDROP_ORDERS_ENDPOINT")["valueFrom"]["configMapKeyRef"]["key"] = "no-such-url"
    found = check_k8s(broken, configs)
    assert any("mounts no ['users.pem']" in p for p in found), found
    assert any("reads key 'no-such-url' that ConfigMap ticketdrop-web does not hold" in p for p in found), found
    compose = copy.deepcopy(compose)
    del compose["services"]["notifier"]["environment"]["TICKETDROP_NOTIFIER_SMTP_URL"]
    web = compose["services"]["web"]["environment"]
    web["TICKETDROP_ORDERS_ENDPOINT"] = "http://127.0.0.1:18099"
    web["TICKETDROP_COORDINATOR_ENDPOINT"] = web["TICKETDROP_COORDINATOR_ENDPOINT"].rsplit(",", 1)[0]
    compose["services"]["waiting-room"]["environment"]["TICKETDROP_WEB_ORIGIN"] = "http://127.0.0.1:50080"
    found = check_compose(compose, configs)
    assert any("TICKETDROP_NOTIFIER_SMTP_URL is not set" in p for p in found), found
    assert any("names 127.0.0.1:18099, which no orders-dynamo service publishes" in p for p in found), found
    assert any("leaves out coordinator-3" in p for p in found), found
    assert any("service waiting-room: TICKETDROP_WEB_ORIGIN lets no page" in p for p in found), found


def main():
    configs = {binary: binary_config(binary) for binary in CRATES}
    docs = k8s_documents()
    compose = compose_file()
    problems = validate_schemas() + check_kustomization(docs) + check_k8s(docs, configs) + check_compose(compose, configs)
    kinds = sorted({f"{doc['kind']}/{doc['metadata']['name']}" for _, doc in docs})
    if problems:
        for problem in problems:
            print(f"lint-deploy: {problem}", file=sys.stderr)
        sys.exit(f"lint-deploy: {len(problems)} problem(s)")
    self_check(docs, compose, configs)
    print(
        f"lint-deploy: {len(kinds)} Kubernetes resources valid (--strict), "
        f"{len(compose['services'])} compose services; every container's TICKETDROP_* settings match its binary"
    )


if __name__ == "__main__":
    main()
