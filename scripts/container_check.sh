#!/usr/bin/env bash
# Build the project's Dockerfile without a Docker daemon and check the image serves the same
# answers as the checkout.
#
# No Docker engine runs here and container registries are unreachable, so:
#   1. a Debian bookworm root file system made with debootstrap (python3, python3-venv,
#      python3-pip, ca-certificates, python-is-python3) stands in for python:3.11-slim; it is
#      cached in $MP_CACHE_DIR (default /var/cache/malignancy-predictor, kept between runs on
#      this machine) and imported into buildah's store as localhost/mp-base:<key>;
#   2. `buildah bud --from localhost/mp-base:<key>` builds the Dockerfile (the FROM line is
#      substituted, every other step is the Dockerfile's own);
#   3. the image's own CMD runs as the image's USER (both read with `buildah inspect`) on a free
#      port, next to the checkout's service (`.venv/bin/python -m app`, as `make serve` runs it);
#   4. benign and malignant cases posted to /predict must get identical JSON from both, and so
#      must GET /v2 (the server metadata) and openapi.json's `info`, whose version must be the
#      package's (pyproject.toml), not the uninstalled fallback 0.0.0+unknown; the
#      image's HEALTHCHECK must pass inside the running container (and fail with no server);
#      the served process must not run as root; the image must hold the runtime lock
#      (requirements/runtime.txt) and no pandas, matplotlib, scikit-learn or scipy.
# Exits non-zero on any failure or difference. Runs as root, non-interactively (CI=true).
#
# Environment: MP_CACHE_DIR (base cache), MP_DEBIAN_MIRROR (debootstrap mirror),
# MP_IMAGE (tag of the built image, default localhost/malignancy-predictor:check; it is kept,
# with its layers, so the next run reuses them; the image it replaces is removed).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${MP_CACHE_DIR:-/var/cache/malignancy-predictor}
MIRROR=${MP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE=${MP_IMAGE:-localhost/malignancy-predictor:check}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates,python-is-python3
# Bump BASE_RECIPE_VERSION when the way the base is made changes; the key names the cache.
BASE_RECIPE_VERSION=1
BASE_KEY="${SUITE}-py3-v${BASE_RECIPE_VERSION}-$(printf '%s' "$SUITE $BASE_PACKAGES $MIRROR" | sha256sum | cut -c1-8)"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
FORBIDDEN_MODULES="pandas matplotlib sklearn scipy"
BENIGN_ROW="1000025,5,1,1,1,2,1,3,1,1,2"
MALIGNANT_ROW="1017122,8,10,10,8,7,10,9,7,1,4"

T0=$SECONDS
log() { printf '[container-check %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { printf '[container-check] FAIL: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/mp-container-check.XXXXXX)
CONTAINERS=()
GROUPS_TO_KILL=()
cleanup() {
    local rc=$?
    set +e
    for pgid in "${GROUPS_TO_KILL[@]}"; do
        kill -TERM -- "-$pgid" 2>/dev/null
    done
    for pgid in "${GROUPS_TO_KILL[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 -- "-$pgid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$pgid" 2>/dev/null
    done
    for ctr in "${CONTAINERS[@]}"; do
        buildah rm "$ctr" >/dev/null 2>&1
    done
    if [[ $rc -ne 0 ]]; then
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            echo "----- last lines of $(basename "$f") -----" >&2
            tail -n 30 "$f" >&2
        done
    fi
    rm -rf "$WORK"
    if [[ $rc -eq 0 ]]; then
        log "PASS (total ${SECONDS}s)"
    else
        printf '[container-check] failed after %ds (exit %d)\n' "$SECONDS" "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || fail "run as root (buildah and debootstrap need it)"

PY="$REPO/.venv/bin/python"
[[ -x $PY ]] || fail "$REPO/.venv is missing: run 'make container-check' (or 'make serve' / 'make test' first) so the checkout's service can be compared with the image"
[[ -f $REPO/app/__main__.py ]] || fail "app/__main__.py is missing"

# ---------------------------------------------------------------------------- tools
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
command -v setsid >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >"$WORK/apt.log" 2>&1 || fail "apt-get install ${missing[*]} failed (apt.log below)"
fi
log "buildah $(buildah --version | awk '{print $3}'), base key $BASE_KEY"

BUILDAH_RUN=(buildah run --isolation chroot --network host)

# ---------------------------------------------------------------------------- lock drift
# The image installs requirements/runtime.txt; the checkout's .venv comes from constraints.txt.
# Both must pin the same runtime versions, or the comparison below compares different code.
"$PY" - "$REPO/requirements/runtime.txt" "$REPO/constraints.txt" <<'EOF' || fail "requirements/runtime.txt and constraints.txt disagree (regenerate both with: make lock)"
import re, sys
from pathlib import Path

def pins(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line.strip())
        if m:
            out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[2]
    return out

runtime = pins(sys.argv[1])
if not runtime:
    sys.exit(f"no pins in {sys.argv[1]}")
if not Path(sys.argv[2]).exists():
    print(f"note: {sys.argv[2]} not found; lock drift not checked")
    sys.exit(0)
dev = pins(sys.argv[2])
bad = [f"{n}: runtime {v} vs constraints {dev.get(n, 'absent')}" for n, v in runtime.items() if dev.get(n) != v]
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# ---------------------------------------------------------------------------- base image
# The host's CA bundle goes into the imported base (a TLS-intercepting egress proxy may sign
# PyPI's certificate here); its hash is part of the buildah tag so a changed bundle re-imports.
CA_KEY=$(sha256sum "$HOST_CA" | cut -c1-8)
BASE_IMAGE="localhost/mp-base:${BASE_KEY}-ca${CA_KEY}"
BASE_TAR="$CACHE_DIR/$BASE_KEY/rootfs.tar"
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock -w 900 9 || fail "could not lock $CACHE_DIR within 15 minutes"

if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE: cached in buildah's store"
else
    if [[ -s $BASE_TAR ]]; then
        log "base root file system: cached at $BASE_TAR"
    else
        log "base root file system: debootstrap $SUITE ($BASE_PACKAGES) from $MIRROR"
        t=$SECONDS
        staging="$CACHE_DIR/$BASE_KEY.tmp"
        rm -rf "$staging"
        mkdir -p "$staging"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$staging/rootfs" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1 || fail "debootstrap failed"
        rm -rf "$staging"/rootfs/var/cache/apt/archives/*.deb "$staging"/rootfs/var/lib/apt/lists/*
        tar --numeric-owner -C "$staging/rootfs" \
            --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./tmp/*' \
            -cf "$staging/rootfs.tar" .
        mkdir -p "$CACHE_DIR/$BASE_KEY"
        mv "$staging/rootfs.tar" "$BASE_TAR"
        rm -rf "$staging"
        log "debootstrap done in $((SECONDS - t))s ($(du -h "$BASE_TAR" | cut -f1))"
    fi
    t=$SECONDS
    ctr=$(buildah from --name "mp-base-import-$$" scratch)
    CONTAINERS+=("$ctr")
    mnt=$(buildah mount "$ctr")
    tar --numeric-owner -xf "$BASE_TAR" -C "$mnt"
    install -m 0644 "$HOST_CA" "$mnt/etc/ssl/certs/ca-certificates.crt"
    buildah umount "$ctr" >/dev/null
    # The parts of python:3.11-slim's configuration that a build relies on.
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$ctr"
    buildah commit --quiet --format docker --rm "$ctr" "$BASE_IMAGE" >/dev/null
    CONTAINERS=()
    log "imported $BASE_IMAGE in $((SECONDS - t))s"
fi
flock -u 9
exec 9>&-

# ---------------------------------------------------------------------------- build
log "building $REPO/Dockerfile FROM $BASE_IMAGE (instead of its own FROM)"
t=$SECONDS
OLD_IMAGE_ID=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
buildah bud --isolation chroot --network host --format docker --layers \
    --from "$BASE_IMAGE" -f "$REPO/Dockerfile" -t "$IMAGE" "$REPO" >"$WORK/build.log" 2>&1 \
    || fail "buildah bud failed"
grep -q 'file:///' "$WORK/build.log" && fail "the build used a host-local package index (file:///...)"
NEW_IMAGE_ID=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE")
if [[ -n $OLD_IMAGE_ID && $OLD_IMAGE_ID != "$NEW_IMAGE_ID" ]]; then
    buildah rmi "$OLD_IMAGE_ID" >/dev/null 2>&1 || true # the previous run's image, now untagged
fi
log "built $IMAGE in $((SECONDS - t))s ($(grep -c -- '--> Using cache' "$WORK/build.log" || true) cached steps)"

# ---------------------------------------------------------------------------- image config
buildah inspect --type image "$IMAGE" >"$WORK/inspect.json"
"$PY" - "$WORK/inspect.json" "$WORK" <<'EOF' || fail "image configuration incomplete"
import json, shlex, sys
from pathlib import Path

cfg = json.loads(Path(sys.argv[1]).read_text())["Docker"]["config"]
out = Path(sys.argv[2])
errors = []
argv = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
user = cfg.get("User") or ""
health = (cfg.get("Healthcheck") or {}).get("Test") or []
env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
if not argv:
    errors.append("no CMD/ENTRYPOINT")
if user in ("", "0", "root") or user.startswith(("0:", "root:")):
    errors.append(f"USER is {user or 'unset'} (root)")
if "8000/tcp" not in (cfg.get("ExposedPorts") or {}):
    errors.append("port 8000 not exposed")
if health[:1] == ["CMD"]:
    hc = health[1:]
elif health[:1] == ["CMD-SHELL"]:
    hc = ["/bin/sh", "-c", health[1]]
else:
    hc = []
    errors.append(f"no usable HEALTHCHECK: {health}")
for var, want in {"HOST": "0.0.0.0", "PORT": "8000", "WORKERS": "1"}.items():
    if env.get(var) != want:
        errors.append(f"ENV {var}={env.get(var)!r}, expected {want!r}")
if not env.get("MODEL_PATH"):
    errors.append("ENV MODEL_PATH unset")
(out / "cmd").write_text("\0".join(argv))
(out / "healthcheck").write_text("\0".join(hc))
(out / "user").write_text(user)
(out / "model_path").write_text(env.get("MODEL_PATH", ""))
print(f"  CMD {shlex.join(argv)}  USER {user}  MODEL_PATH {env.get('MODEL_PATH')}")
print(f"  HEALTHCHECK {json.dumps(hc)}")
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
mapfile -d '' -t IMAGE_CMD <"$WORK/cmd"
mapfile -d '' -t HEALTHCHECK_CMD <"$WORK/healthcheck"
IMAGE_USER=$(<"$WORK/user")

CTR=$(buildah from --name "mp-check-$$" "$IMAGE")
CONTAINERS+=("$CTR")

# ---------------------------------------------------------------------------- image contents
"${BUILDAH_RUN[@]}" --user "$IMAGE_USER" "$CTR" -- python - "$FORBIDDEN_MODULES" \
    >"$WORK/contents.log" 2>&1 <<'EOF' || { cat "$WORK/contents.log" >&2; fail "image contents"; }
import importlib.metadata as md, importlib.util, os, re, sys

errors = []
found = [m for m in sys.argv[1].split() if importlib.util.find_spec(m)]
if found:
    errors.append(f"forbidden packages importable: {found}")
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
installed = {norm(d.metadata["Name"]): d.version for d in md.distributions()}
for tool in ("pip", "setuptools", "wheel"):
    installed.pop(tool, None)
# The package itself must be installed (its metadata is the version the service reports).
if installed.pop("malignancy-predictor", None) is None:
    errors.append("the malignancy-predictor package itself is not installed")
# The lock as copied into the image (WORKDIR/requirements/runtime.txt).
lock = open("requirements/runtime.txt").read()
pinned = {norm(m[1]): m[2] for m in re.finditer(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock)}
if installed != pinned:
    extra = sorted(set(installed.items()) - set(pinned.items()))
    absent = sorted(set(pinned.items()) - set(installed.items()))
    errors.append(f"installed set differs from requirements/runtime.txt: extra {extra}, missing {absent}")
code = [os.path.join(d, f) for d, _, fs in os.walk(os.getcwd()) for f in fs]
junk = [p for p in code if "__pycache__" in p or p.endswith((".pyc", ".png"))]
if junk:
    errors.append(f"generated files in the image: {junk[:5]}")
writable = [p for p in (".", "app", "model", os.environ.get("MODEL_PATH", "")) if p and os.access(p, os.W_OK)]
if writable:
    errors.append(f"the service user can write to {writable}")
for e in errors:
    print(e, file=sys.stderr)
if not errors:
    print(f"{len(installed)} distributions, exactly as locked; none of {sys.argv[1]}; code read-only")
sys.exit(1 if errors else 0)
EOF
log "image contents: $(tail -n 1 "$WORK/contents.log")"

# ---------------------------------------------------------------------------- run both
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'; }
CPORT=$(free_port)
HPORT=$(free_port)
while [[ $HPORT == "$CPORT" ]]; do HPORT=$(free_port); done
# Each its own Prometheus port: both would take the default 9464 (on the host's network).
CMPORT=$(free_port)
HMPORT=$(free_port)
while [[ $CMPORT == "$HMPORT" || $CMPORT == "$CPORT" || $CMPORT == "$HPORT" ]]; do CMPORT=$(free_port); done
while [[ $HMPORT == "$CMPORT" || $HMPORT == "$CPORT" || $HMPORT == "$HPORT" ]]; do HMPORT=$(free_port); done

log "starting the image's CMD as user $IMAGE_USER on port $CPORT"
setsid "${BUILDAH_RUN[@]}" --user "$IMAGE_USER" --env "PORT=$CPORT" --env "METRICS_PORT=$CMPORT" \
    "$CTR" -- "${IMAGE_CMD[@]}" </dev/null >"$WORK/container.log" 2>&1 &
CPID=$!
GROUPS_TO_KILL+=("$CPID")

log "starting the checkout's service (.venv/bin/python -m app) on 127.0.0.1:$HPORT"
(
    cd "$REPO"
    exec env -u API_KEY -u MODEL_PATH -u LOG_LEVEL -u MAX_BATCH_SIZE -u MAX_BODY_BYTES \
        HOST=127.0.0.1 PORT="$HPORT" METRICS_PORT="$HMPORT" WORKERS=1 RECORD_DIR="$WORK/record" \
        setsid "$PY" -m app
) </dev/null >"$WORK/host.log" 2>&1 &
HPID=$!
GROUPS_TO_KILL+=("$HPID")

wait_health() { # name pid port
    local deadline=$((SECONDS + 90))
    while ((SECONDS < deadline)); do
        kill -0 "$2" 2>/dev/null || fail "$1 exited before answering /health"
        if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "http://127.0.0.1:$3/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.3
    done
    fail "$1 did not answer /health on port $3 within 90s"
}
t=$SECONDS
wait_health container "$CPID" "$CPORT"
log "container healthy after $((SECONDS - t))s"
wait_health "checkout service" "$HPID" "$HPORT"

# ---------------------------------------------------------------------------- non-root
# The process listening on the container's port must be ours (a descendant of `buildah run`)
# and must not run as root.
"$PY" - "$CPORT" "$CPID" <<'EOF' || fail "the served process"
import os, sys

port, root_pid = int(sys.argv[1]), int(sys.argv[2])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except FileNotFoundError:
        continue
    for line in lines:
        f = line.split()
        if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
            inodes.add(f[9])
pids = set()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in {f"socket:[{i}]" for i in inodes}:
                pids.add(int(pid))
    except OSError:
        pass
if not pids:
    sys.exit(f"no process found listening on port {port}")

def ancestors(pid):
    while pid > 1:
        yield pid
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

for pid in sorted(pids):
    if root_pid not in ancestors(pid):
        sys.exit(f"pid {pid} listening on {port} is not the container's")
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines())
    uids = status["Uid"].split()
    cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
    if "0" in uids:
        sys.exit(f"pid {pid} ({cmd}) runs with uid {uids}")
    print(f"  pid {pid} ({cmd}) listens on {port} with uids {' '.join(uids)}")
EOF

# ---------------------------------------------------------------------------- answers
log "comparing /predict answers (container :$CPORT vs checkout :$HPORT)"
"$PY" - "$CPORT" "$HPORT" "$BENIGN_ROW" "$MALIGNANT_ROW" <<'EOF' || fail "the container's answers differ from the checkout's"
import json, sys, urllib.request

FIELDS = ["clump_thickness", "uniformity_of_cell_size", "uniformity_of_cell_shape",
          "marginal_adhesion", "single_epithelial_cell_size", "bare_nuclei", "bland_chromatin",
          "normal_nucleoli", "mitoses"]
cport, hport, rows = sys.argv[1], sys.argv[2], sys.argv[3:]

def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())

ok = True
answers = {}
for label, row in zip(("benign", "malignant"), rows):
    values = [int(v) for v in row.split(",")]
    body = dict(zip(FIELDS, values[1:10]))
    c, h = post(cport, body), post(hport, body)
    answers[label] = h[1]
    same = c == h
    ok &= same
    print(f"  {label:9} container {c[0]} {json.dumps(c[1], sort_keys=True)}")
    print(f"  {'':9} checkout  {h[0]} {json.dumps(h[1], sort_keys=True)}  {'same' if same else 'DIFFERENT'}")
    for key in ("probability", "class", "threshold", "model_version"):
        if key not in c[1]:
            print(f"  missing {key!r} in the answer", file=sys.stderr)
            ok = False
b, m = answers["benign"], answers["malignant"]
if not (b["probability"] < b["threshold"] <= m["probability"]) or b["class"] == m["class"]:
    print("  the benign and malignant cases are not told apart", file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
EOF

log "comparing the reported version: GET /v2 and openapi.json's info"
"$PY" - "$CPORT" "$HPORT" "$REPO/pyproject.toml" <<'EOF' || fail "the container reports another version than the checkout"
import json, sys, tomllib, urllib.request

cport, hport = sys.argv[1], sys.argv[2]
with open(sys.argv[3], "rb") as f:
    package = tomllib.load(f)["project"]["version"]

def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())

ok = True
for path, pick in (("/v2", lambda d: d), ("/openapi.json", lambda d: d["info"])):
    c, h = pick(get(cport, path)), pick(get(hport, path))
    same = c == h and c.get("version") == package
    ok &= same
    shown = lambda d: json.dumps({k: d.get(k) for k in ("name", "title", "version") if k in d})
    print(f"  {path:13} container {shown(c)}")
    print(f"  {'':13} checkout  {shown(h)}  {'same' if same else 'DIFFERENT'}")
if not ok:
    print(f"  expected version {package} (pyproject.toml) from both", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

# ---------------------------------------------------------------------------- HEALTHCHECK
log "running the image's HEALTHCHECK inside the container"
"${BUILDAH_RUN[@]}" --user "$IMAGE_USER" --env "PORT=$CPORT" "$CTR" -- "${HEALTHCHECK_CMD[@]}" \
    >"$WORK/healthcheck.log" 2>&1 || { cat "$WORK/healthcheck.log" >&2; fail "HEALTHCHECK failed against the running service"; }
DEAD_PORT=$(free_port)
if "${BUILDAH_RUN[@]}" --user "$IMAGE_USER" --env "PORT=$DEAD_PORT" "$CTR" -- "${HEALTHCHECK_CMD[@]}" \
    >"$WORK/healthcheck-dead.log" 2>&1; then
    fail "HEALTHCHECK passed with no server listening on port $DEAD_PORT"
fi
log "HEALTHCHECK passes against the service and fails without one"

kill -0 "$CPID" 2>/dev/null || fail "the container's service died during the check"
