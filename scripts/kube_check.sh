#!/usr/bin/env bash
# Run the pod of deploy/kubernetes/deployment.yaml for real with `podman kube play`, using the
# image scripts/container_check.sh builds, and check what an orchestrator relies on.
#
# No Kubernetes API server can run here, but podman plays a Deployment's pod spec with the same
# image, user, read-only root file system, dropped capabilities, seccomp profile, emptyDir
# volumes and environment. The manifest is played as written, except for what this machine
# needs: the image is the locally built one, one replica, and the pod shares the host's network
# (no CNI here), so PORT and METRICS_PORT are set to free ports, the container's port list
# (which podman would try to map) is dropped, and the probes name those ports by number.
# podman does not run preStop hooks or readiness probes: readiness is asked here directly.
#
# Checks: the pod becomes ready (/health/ready 200) and answers a benign and a malignant
# prediction; `python -m app audit verify` and `export`, run in the container on its record
# volume, find every answered request with all its rows, nothing else, and intact chains; the
# process runs as the manifest's user; writes to its root file system fail with
# "Read-only file system" while /tmp and the Prometheus directory take them; the metrics port
# answers; on stop, a client's open connection is answered during the drain (readiness 503,
# Connection: close), new connections are refused, and the container exits 0 within the grace
# period. Exits non-zero on any failure. Runs as root.
#
# Environment: MP_IMAGE (default localhost/malignancy-predictor:check, what `make
# container-check` leaves in the store), MP_MANIFEST (default deploy/kubernetes/deployment.yaml).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${MP_IMAGE:-localhost/malignancy-predictor:check}
MANIFEST=${MP_MANIFEST:-$REPO/deploy/kubernetes/deployment.yaml}
PY="$REPO/.venv/bin/python"
NAME="mp-kube-check-$$"

T0=$SECONDS
log() { printf '[kube-check %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { printf '[kube-check] FAIL: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/mp-kube-check.XXXXXX)
PLAYED=0
CTR=""
cleanup() {
    local rc=$?
    set +e
    if ((PLAYED)); then
        if [[ $rc -ne 0 ]]; then
            echo "----- podman logs -----" >&2
            [[ -n $CTR ]] && podman logs "$CTR" 2>&1 | tail -n 30 >&2
        fi
        podman kube down "$WORK/pod.yaml" >/dev/null 2>&1 || podman pod rm -f "$NAME" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
    if [[ $rc -eq 0 ]]; then
        log "PASS (total ${SECONDS}s)"
    else
        printf '[kube-check] failed after %ds (exit %d)\n' "$SECONDS" "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || fail "run as root (podman's root store holds the image buildah built)"
[[ -x $PY ]] || fail "$REPO/.venv is missing: run 'make kube-check'"
for tool in podman runc catatonit; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install podman runc catatonit"
done

# This machine's podman: runc (crun is not installed), and limits runc is allowed to set. As
# root, podman raises the open-files and processes limits to values this machine refuses ("error
# setting rlimit type 6/7: operation not permitted"); measured here, nproc 32768 is accepted and
# 50000 is not, though the shell's hard limit is higher. The service needs a handful of each.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

podman image exists "$IMAGE" || fail "no image $IMAGE: run 'make container-check' first"
log "podman $(podman --version | awk '{print $3}'), image $IMAGE"

# ---------------------------------------------------------------------------- the pod spec
"$PY" - "$MANIFEST" "$WORK" "$NAME" "$IMAGE" <<'EOF' || fail "could not prepare the manifest"
import json, socket, sys
from pathlib import Path

import yaml

manifest, work, name, image = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
deployment = yaml.safe_load(manifest.read_text())
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ports = {"http": free_port(), "metrics": free_port()}
while ports["metrics"] == ports["http"]:
    ports["metrics"] = free_port()
deployment["metadata"]["name"] = name
deployment["spec"]["replicas"] = 1
pod["hostNetwork"] = True
container["image"] = image
container["imagePullPolicy"] = "Never"
# With the host's network podman cannot map ports: the listening ports are PORT and
# METRICS_PORT, and the probes name the port by number instead of by its name.
named = {port["name"]: ports[port["name"]] for port in container.pop("ports")}
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    get = container[probe]["httpGet"]
    get["port"] = named[get["port"]]
env = {item["name"]: item for item in container["env"]}
env["PORT"]["value"] = str(ports["http"])
env["METRICS_PORT"]["value"] = str(ports["metrics"])
(work / "pod.yaml").write_text(yaml.safe_dump(deployment, sort_keys=False))
facts = {
    "http": ports["http"],
    "metrics": ports["metrics"],
    "user": pod["securityContext"]["runAsUser"],
    "grace": pod["terminationGracePeriodSeconds"],
    "drain": float(env["SHUTDOWN_DRAIN_SECONDS"]["value"]),
    "writable": ["/tmp", env["PROMETHEUS_MULTIPROC_DIR"]["value"]],
    "workdir_probe": "/opt/malignancy-predictor/probe",
}
(work / "facts.json").write_text(json.dumps(facts))
print(f"  http port {ports['http']}, metrics port {ports['metrics']}")
EOF
facts() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/facts.json" "$1"; }
HTTP_PORT=$(facts http)
GRACE=$(facts grace)

# ---------------------------------------------------------------------------- play
log "podman kube play (pod $NAME)"
PLAYED=1
podman kube play "$WORK/pod.yaml" >"$WORK/play.log" 2>&1 || { cat "$WORK/play.log" >&2; fail "podman kube play failed"; }
POD=$(podman pod ps --filter "name=^$NAME" --format '{{.Name}}' | head -n 1)
[[ -n $POD ]] || fail "podman kube play created no pod named $NAME*"
CTR=$(podman ps -a --filter "pod=$POD" --format '{{.Names}}' | grep -v -- '-infra$' | head -n 1)
[[ -n $CTR ]] || fail "no container in pod $POD"
log "container $CTR: $(podman inspect --format '{{.State.Status}}' "$CTR")"

t=$SECONDS
"$PY" - "$HTTP_PORT" <<'EOF' || fail "the pod did not become ready"
import sys, time, urllib.error, urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/health/ready"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except (OSError, urllib.error.URLError):
        pass
    time.sleep(0.3)
sys.exit(f"{url} did not answer 200 within 60 s")
EOF
log "ready after $((SECONDS - t))s"
CTR_ID=$(podman inspect --format '{{.Id}}' "$CTR")

# ---------------------------------------------------------------------------- serve
"$PY" - "$WORK/facts.json" "$REPO" "$WORK/answered.json" <<'EOF' || fail "the pod's answers"
import json, sys, urllib.request

facts = json.load(open(sys.argv[1]))
answered = {}  # request id -> rows: what the record must hold afterwards
sys.path.insert(0, sys.argv[2])
from app.openapi.examples import BENIGN, MALIGNANT  # noqa: E402
from model.artifact import DEFAULT_ARTIFACT_PATH, load_artifact  # noqa: E402

version = load_artifact(DEFAULT_ARTIFACT_PATH).model_version
for expected, body in (("benign", BENIGN), ("malignant", MALIGNANT)):
    request = urllib.request.Request(
        f"http://127.0.0.1:{facts['http']}/predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        got = json.loads(answer.read())
        answered[answer.headers["X-Request-ID"]] = 1
    print(f"  /predict {expected}: {json.dumps(got)}")
    if got["class"] != expected or got["model_version"] != version:
        sys.exit(f"expected class {expected} from model {version}")
# The largest request the defaults allow, a few times: the memory figure below includes it.
batch = json.dumps({"instances": [BENIGN, MALIGNANT] * 500}).encode()
for _ in range(20):
    request = urllib.request.Request(
        f"http://127.0.0.1:{facts['http']}/predict/batch",
        data=batch,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        if len(json.loads(answer.read())["predictions"]) != 1000:
            sys.exit("a 1,000-row batch did not get 1,000 answers")
        answered[answer.headers["X-Request-ID"]] = 1000
print("  20 batches of 1,000 rows answered")
json.dump(answered, open(sys.argv[3], "w"))
with urllib.request.urlopen(f"http://127.0.0.1:{facts['metrics']}/metrics", timeout=10) as answer:
    text = answer.read().decode()
    if answer.status != 200 or "# TYPE" not in text:
        sys.exit("the metrics port does not answer Prometheus' text format")
print(f"  metrics port: {len(text.splitlines())} lines of exposition")
EOF

# ---------------------------------------------------------------------------- the record
# Every answer above was committed to the record (SQLite on the pod's record volume, as no
# Secret names a database) before it was sent: the operator's tools, run in the container as
# `kubectl exec` would run them, find every answered request with all its rows, nothing else,
# and every chain intact.
podman exec "$CTR" python -m app audit verify >"$WORK/verify.out" 2>"$WORK/verify.err" ||
    { cat "$WORK/verify.out" "$WORK/verify.err" >&2; fail "audit verify found problems in the pod's record"; }
podman exec "$CTR" python -m app audit export --format jsonl >"$WORK/export.jsonl" 2>"$WORK/export.err" ||
    { cat "$WORK/export.err" >&2; fail "audit export of the pod's record failed"; }
"$PY" - "$WORK/answered.json" "$WORK/export.jsonl" <<'EOF' || fail "the pod's record does not hold what it answered"
import collections, json, sys

answered = json.load(open(sys.argv[1]))
rows = collections.Counter(json.loads(line)["request_id"] for line in open(sys.argv[2]))
missing = [rid for rid, n in answered.items() if rows.get(rid) != n]
extra = sorted(set(rows) - set(answered))
print(f"  record: {sum(rows.values())} rows of {len(rows)} requests exported; "
      f"{sum(answered.values())} rows of {len(answered)} requests answered")
if missing or extra:
    sys.exit(f"answered, not (wholly) recorded: {missing[:3]}; recorded, not answered: {extra[:3]}")
EOF
log "record: $(tail -n 1 "$WORK/verify.err")"

# ---------------------------------------------------------------------------- file system
podman exec -i "$CTR" python - "$(<"$WORK/facts.json")" <<'EOF' >"$WORK/fs.log" 2>&1 || { cat "$WORK/fs.log" >&2; fail "the root file system is not read-only, or the volumes are not writable"; }
import errno, json, os, sys

facts = json.loads(sys.argv[1])
problems = []
if os.getuid() != facts["user"] or os.getgid() == 0:
    problems.append(f"runs as uid {os.getuid()} gid {os.getgid()}")
for path in (facts["workdir_probe"], "/probe", "/etc/probe", "/var/probe"):
    try:
        with open(path, "w") as f:
            f.write("x")
        problems.append(f"wrote {path}")
    except OSError as exc:
        if exc.errno != errno.EROFS:
            problems.append(f"{path}: {exc} (expected Read-only file system)")
for directory in facts["writable"]:
    path = os.path.join(directory, "kube-check-probe")
    with open(path, "w") as f:
        f.write("x")
    os.unlink(path)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
if status["CapEff"].strip() != "0000000000000000":
    problems.append(f"effective capabilities {status['CapEff'].strip()}")
if status["Seccomp"].strip() != "2":
    problems.append(f"seccomp mode {status['Seccomp'].strip()}, not filtering")
print("\n".join(problems) or "read-only root; /tmp and the metrics directory writable; no capabilities; seccomp on")
sys.exit(1 if problems else 0)
EOF
grep -q '^read-only root' "$WORK/fs.log" || { cat "$WORK/fs.log" >&2; fail "the file system check did not run"; }
log "$(tail -n 1 "$WORK/fs.log")"
log "memory in use after the batches: $(podman stats --no-stream --format '{{.MemUsage}}' "$CTR" 2>/dev/null || echo unknown)"

# ---------------------------------------------------------------------------- stop
log "stopping the pod (grace ${GRACE}s) with a client connection open"
"$PY" - "$WORK/facts.json" "$POD" <<'EOF' || fail "the pod did not drain on stop"
import http.client, json, socket, subprocess, sys, time

facts = json.load(open(sys.argv[1]))
port = facts["http"]
held = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
held.request("GET", "/health/ready")
first = held.getresponse()
first.read()
assert first.status == 200, first.status
started = time.monotonic()
stop = subprocess.Popen(
    ["podman", "pod", "stop", "-t", str(facts["grace"]), sys.argv[2]],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
)
# The listener closes when the drain starts: from then on new connections are refused.
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        break
    if time.monotonic() - started > facts["grace"]:
        sys.exit("new connections were still accepted after the grace period")
    time.sleep(0.05)
refused_after = time.monotonic() - started
held.request("GET", "/health/ready")
during = held.getresponse()
body = during.read().decode()
print(f"  new connections refused {refused_after:.2f}s after stop; the open one got "
      f"{during.status} ({during.getheader('Connection')}): {body}")
if during.status != 503 or (during.getheader("Connection") or "").lower() != "close":
    sys.exit("during the drain, readiness should answer 503 with Connection: close")
held.close()
stop.wait(facts["grace"] + 30)
took = time.monotonic() - started
print(f"  pod stopped {took:.2f}s after stop (grace {facts['grace']}s)")
if stop.returncode != 0:
    sys.exit(f"podman pod stop failed: {stop.stderr.read().decode()}")
if took >= facts["grace"]:
    sys.exit("the pod needed the whole grace period: it was killed, not drained")
EOF
EXIT_CODE=$(podman inspect --format '{{.State.ExitCode}}' "$CTR_ID")
[[ $EXIT_CODE == 0 ]] || fail "the service exited with code $EXIT_CODE"
podman logs "$CTR_ID" >"$WORK/server.log" 2>&1 || true
log "exit code 0; last log line: $(tail -n 1 "$WORK/server.log" | cut -c1-160)"
