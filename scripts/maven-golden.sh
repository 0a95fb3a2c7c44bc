#!/usr/bin/env bash
# Golden files for sparkstage-maven, produced by the REAL tools:
#
#   scripts/maven-golden.sh                 regenerate maven/fixtures/golden/<case>.{spark,maven}
#   scripts/maven-golden.sh --check         regenerate into a temp dir, diff against the committed
#                                           files, exit 1 with the diff on any difference
#   scripts/maven-golden.sh --case NAME     only that case (repeatable; combines with --check)
#   scripts/maven-golden.sh --keep          keep the work dir (logs of every tool run) for debugging
#
# The tools
#   spark  `spark-submit --packages` of the pyspark wheel pinned in scripts/test-deps.sh
#          (pyspark 4.3.0: Apache Ivy 2.5.3, pyspark/jars/ivy-2.5.3.jar), found through
#          .tools/env.sh ($SPARKSTAGE_TEST_SPARK_SUBMIT), on Debian's Java 17.
#   maven  Debian 12's `mvn` (Maven 3.8.7, Maven Resolver 1.6.3) running
#          org.apache.maven.plugins:maven-dependency-plugin:3.5.0:list (Debian package
#          libmaven-dependency-plugin-java).
#
# The repositories (maven/fixtures/serve.py, a static file server on 127.0.0.1 that answers 404
# for anything that is not a file, directories included: no listings)
#   fixture  maven/fixtures/repo/ (hand-made POMs, written by maven/fixtures/make-repo.py)
#   debian   /usr/share/maven-repo (what the Debian packages in scripts/test-deps.sh install)
#
# Cases: maven/fixtures/cases.tsv, one per line, tab-separated, `#` comments:
#   name  repo  coordinates  excludes
# coordinates are spark-submit `--packages` syntax (g:a:v, comma-separated), excludes are
# `--exclude-packages` syntax (g:a, comma-separated) or `-`.
#
# What each tool is given
#   spark  spark-submit --verbose --master local[1] --packages <coordinates>
#              --repositories http://127.0.0.1:<port>/ [--exclude-packages <excludes>]
#              --conf spark.jars.ivy=<fresh empty dir> <noop.py>
#          Spark's default resolver chain is kept (local-m2-cache, local-ivy-cache, central,
#          spark-packages, then repo-1 = the loopback repository), with a fresh empty HOME and
#          -Duser.home (so ~/.m2/repository and ~/.ivy2 are empty) and an empty SPARK_CONF_DIR.
#          Central and spark-packages are https URLs; SPARK_SUBMIT_OPTS sets
#          -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9 (a closed port) so they are never
#          reached even on a machine with Internet access: Ivy logs "Server access error ...
#          Connection refused" for them and goes on to repo-1 in milliseconds, exactly as it does
#          without network (where their host names do not resolve). Also in SPARK_SUBMIT_OPTS
#          (and SPARK_LAUNCHER_OPTS): -XX:TieredStopAtLevel=1 -XX:+UseSerialGC and a JDK 17
#          class-data-sharing archive dumped by one warm-up resolution at the start: JVM
#          start-up only, about 2 s less per run; resolution is untouched.
#          The primary resource is a Python file that exits 0 at once (no SparkContext).
#   maven  a synthetic root project (sparkstage.golden:root:0, packaging jar) whose
#          <dependencies> are the coordinates in the listed order (scope compile, type jar), each
#          with one <exclusion> per excludes entry (excludes never remove a direct dependency
#          itself: that is where the two tools differ, see case exclusion-global-top-level).
#          mvn -B -s settings.xml -gs <empty> -Dmaven.repo.local=<fresh dir>
#              org.apache.maven.plugins:maven-dependency-plugin:3.5.0:list -DincludeScope=runtime
#              -DoutputAbsoluteArtifactFilename=true -DoutputFile=...
#          settings.xml overrides the repository `central` with http://127.0.0.1:<port>/
#          (releases and snapshots enabled, Maven's default checksum policy `warn`), disables the
#          plugin repository `central` and adds the plugin repository `debian` =
#          file:///usr/share/maven-repo: the plugin and Maven's own needs come from Debian's
#          repository on disk, the project's dependencies only from the loopback server. The
#          plugin's artifacts are resolved once per run into a template local repository that
#          each case copies; they are recorded as coming from `debian`, so Maven still downloads
#          every project dependency from the loopback server (an artifact is only reused from the
#          local repository for the repository id it came from). MAVEN_OPTS: the same JVM
#          start-up options as for Spark, the class-data-sharing archive dumped by the template run.
#
# Output (one file per case and tool, lines sorted with LC_ALL=C)
#   <case>.spark  the file names of the jars Spark puts in spark.jars (from the `--verbose`
#                 "Spark config" line `(spark.jars,...)`), as Spark names them:
#                 <group>_<module>-<revision>[-<classifier>].jar. Empty file: no jar.
#                 On failure: `error`, then the problems of Spark's RuntimeException
#                 (`unresolved dependency: g#a;v: not found`, `download failed: g#a;v!a.jar`, ...).
#   <case>.maven  group:artifact:extension[:classifier]:version of every artifact
#                 dependency:list reports (compile and runtime scope), the root excluded; the
#                 extension is the one of the resolved file (test-jar -> jar + classifier tests,
#                 pom -> pom, ...). On failure: `error`, then the artifacts Maven names as
#                 missing or unresolvable, same format (from "Could not find artifact X" /
#                 "Failure to find X" / "Could not transfer artifact X" / "The following artifacts
#                 could not be resolved: X, Y").
#
# Adding a case: for the fixture repository, add modules to maven/fixtures/make-repo.py and run
# it (it rewrites maven/fixtures/repo/ deterministically); add a line to maven/fixtures/cases.tsv;
# run `scripts/maven-golden.sh --case NAME`; read the two golden files (and the logs with --keep)
# and commit them. For the debian repository, pick coordinates under /usr/share/maven-repo,
# make sure the package that installs them is in DEBIAN_MAVEN_PACKAGES of scripts/test-deps.sh.
#
# Needs: scripts/test-deps.sh (pyspark, Java 17, maven, maven-dependency-plugin and the Debian
# Java libraries), python3. Runs two cases at a time (2 cores); prints the total time.
set -euo pipefail
export LC_ALL=C

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$script_dir/.." && pwd)"
fixtures="$root/maven/fixtures"
cases_file="$fixtures/cases.tsv"
golden_dir="$fixtures/golden"
debian_repo=/usr/share/maven-repo
dep_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.5.0
jobs=2

check=0
keep=0
only=()
while (($#)); do
    case "$1" in
        --check) check=1 ;;
        --keep) keep=1 ;;
        --case) only+=("$2"); shift ;;
        --case=*) only+=("${1#--case=}") ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "maven-golden: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'maven-golden: %s\n' "$*" >&2; }
start=$SECONDS

# shellcheck disable=SC1091
source "$root/.tools/env.sh"
spark_submit="${SPARKSTAGE_TEST_SPARK_SUBMIT:?run scripts/test-deps.sh first}"
# pyspark's spark-submit finds SPARK_HOME through the venv's python: its bin first on PATH.
export PATH="$(dirname "$spark_submit"):$PATH"
command -v mvn >/dev/null || { log "mvn missing: run scripts/test-deps.sh"; exit 1; }
[[ -d "$debian_repo/org/apache/maven/plugins/maven-dependency-plugin/3.5.0" ]] \
    || { log "maven-dependency-plugin 3.5.0 missing: run scripts/test-deps.sh"; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/maven-golden.XXXXXX")"
server_pids=()
cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if ((keep)); then log "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ((check)); then out="$work/golden"; else out="$golden_dir"; fi
mkdir -p "$out" "$work/logs" "$work/cases"

# --- the cases ---------------------------------------------------------------------------------
declare -a names=() repos=() coords=() excludes=()
while IFS=$'\t' read -r name repo coord excl rest; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ -z "${coord:-}" || -z "${excl:-}" || -n "${rest:-}" ]]; then
        log "bad line in $cases_file: $name"; exit 2
    fi
    if [[ "$repo" != fixture && "$repo" != debian ]]; then log "bad repo $repo in case $name"; exit 2; fi
    if ((${#only[@]})); then
        keep_it=0
        for o in "${only[@]}"; do [[ "$o" == "$name" ]] && keep_it=1; done
        ((keep_it)) || continue
    fi
    names+=("$name"); repos+=("$repo"); coords+=("$coord"); excludes+=("$excl")
done <"$cases_file"
if ((${#only[@]})) && ((${#names[@]} != ${#only[@]})); then
    log "unknown case among: ${only[*]}"; exit 2
fi
((${#names[@]})) || { log "no case"; exit 2; }

# --- loopback repositories ---------------------------------------------------------------------
start_server() { # root log -> sets $port
    local fifo="$work/port.fifo"
    mkfifo "$fifo"
    python3 "$fixtures/serve.py" --log "$2" "$1" >"$fifo" 2>"$2.stderr" </dev/null &
    server_pids+=($!)
    read -r _ port <"$fifo"
    rm -f "$fifo"
    [[ -n "$port" ]] || { log "serve.py did not start"; exit 1; }
}
start_server "$fixtures/repo" "$work/logs/requests-fixture.log"
fixture_port=$port
start_server "$debian_repo" "$work/logs/requests-debian.log"
debian_port=$port
port_of() { if [[ "$1" == fixture ]]; then echo "$fixture_port"; else echo "$debian_port"; fi; }

# --- spark-submit -----------------------------------------------------------------------------
printf 'import sys\nsys.exit(0)\n' >"$work/noop.py"
mkdir -p "$work/spark-conf"
spark_jvm_opts="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
spark_cds="$work/spark-submit.jsa"

spark_submit() { # dir log extra-jvm-opts spark-submit-args...
    local dir="$1" logf="$2" extra="$3"
    shift 3
    (cd "$dir" && env HOME="$dir/spark-home" SPARK_CONF_DIR="$work/spark-conf" \
        SPARK_LOCAL_IP=127.0.0.1 SPARK_LAUNCHER_OPTS="$spark_jvm_opts" \
        SPARK_SUBMIT_OPTS="-Duser.home=$dir/spark-home -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9 $spark_jvm_opts $extra" \
        spark-submit "$@" "$work/noop.py" >"$logf" 2>&1)
}

# A class-data-sharing archive of the SparkSubmit JVM (JDK 17 AppCDS), dumped by one warm-up
# resolution, cuts every later spark-submit's start-up by about a second. It only changes how the
# JVM loads classes; without it (dump failed) the runs are the same, only slower.
warm="$work/cases/.warm-up"
mkdir -p "$warm/spark-home"
# It runs while Maven resolves its plugin.
spark_submit "$warm" "$work/logs/warm-up.spark.log" "-XX:ArchiveClassesAtExit=$spark_cds" \
    --verbose --master 'local[1]' --conf "spark.jars.ivy=$warm/ivy" \
    --packages sparkstage.fixture:nl-a:1.0 --repositories "http://127.0.0.1:$fixture_port/" &
warm_pid=$!


# --- Maven: settings and a template local repository holding the plugin ------------------------
echo '<settings/>' >"$work/global-settings.xml"
maven_settings() { # port -> settings.xml on stdout
    cat <<EOF
<settings>
  <interactiveMode>false</interactiveMode>
  <offline>false</offline>
  <profiles>
    <profile>
      <id>golden</id>
      <repositories>
        <repository>
          <id>central</id>
          <url>http://127.0.0.1:$1/</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots>
        </repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository>
          <id>central</id>
          <url>file:///nonexistent</url>
          <releases><enabled>false</enabled></releases>
          <snapshots><enabled>false</enabled></snapshots>
        </pluginRepository>
        <pluginRepository>
          <id>debian</id>
          <url>file://$debian_repo</url>
        </pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles>
    <activeProfile>golden</activeProfile>
  </activeProfiles>
</settings>
EOF
}
maven_settings "$fixture_port" >"$work/settings-fixture.xml"
maven_settings "$debian_port" >"$work/settings-debian.xml"

xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

maven_pom() { # coordinates excludes -> pom.xml on stdout
    local c g a v e eg ea
    echo '<project xmlns="http://maven.apache.org/POM/4.0.0">'
    echo '  <modelVersion>4.0.0</modelVersion>'
    echo '  <groupId>sparkstage.golden</groupId>'
    echo '  <artifactId>root</artifactId>'
    echo '  <version>0</version>'
    echo '  <dependencies>'
    IFS=, read -r -a cs <<<"$1"
    IFS=, read -r -a es <<<"$2"
    for c in "${cs[@]}"; do
        IFS=: read -r g a v <<<"$c"
        echo '    <dependency>'
        echo "      <groupId>$(xml_escape <<<"$g")</groupId>"
        echo "      <artifactId>$(xml_escape <<<"$a")</artifactId>"
        echo "      <version>$(xml_escape <<<"$v")</version>"
        if [[ "$2" != - ]]; then
            echo '      <exclusions>'
            for e in "${es[@]}"; do
                IFS=: read -r eg ea <<<"$e"
                echo "        <exclusion><groupId>$eg</groupId><artifactId>$ea</artifactId></exclusion>"
            done
            echo '      </exclusions>'
        fi
        echo '    </dependency>'
    done
    echo '  </dependencies>'
    echo '</project>'
}

mvn_cds="$work/mvn.jsa"
mvn_cds_opt="-XX:ArchiveClassesAtExit=$mvn_cds" # the template run dumps it, the cases use it
mvn_run() { # dir settings logfile extra-args...
    local dir="$1" settings="$2" logf="$3"
    shift 3
    (cd "$dir" && HOME="$dir/home" \
        MAVEN_OPTS="-Duser.home=$dir/home -XX:TieredStopAtLevel=1 -XX:+UseSerialGC $mvn_cds_opt" \
        mvn -B -s "$settings" -gs "$work/global-settings.xml" -Dmaven.repo.local="$dir/m2" \
        "$@" >"$logf" 2>&1)
}

# The template: the plugin resolved for an empty project, from file:///usr/share/maven-repo.
tmpl="$work/m2-template"
mkdir -p "$tmpl/home"
maven_pom "" - | sed '/<dependencies>/,/<\/dependencies>/d' >"$tmpl/pom.xml"
if ! mvn_run "$tmpl" "$work/settings-fixture.xml" "$work/logs/maven-template.log" \
    "$dep_plugin:list" -DincludeScope=runtime; then
    cat "$work/logs/maven-template.log" >&2
    log "could not run $dep_plugin from $debian_repo"; exit 1
fi
rm -rf "$tmpl/pom.xml" "$tmpl/home" "$tmpl/target"
mvn_cds_opt=""
[[ -s "$mvn_cds" ]] && mvn_cds_opt="-XX:SharedArchiveFile=$mvn_cds"

wait "$warm_pid" || true
cds_opt=""
[[ -s "$spark_cds" ]] && cds_opt="-XX:SharedArchiveFile=$spark_cds"
rm -rf "$warm"

# Parse mvn's dependency:list output file (or its log on failure) into the golden format.
maven_golden() { # ok list-file log-file
    python3 - "$@" <<'EOF'
import os, re, sys
ok, listf, logf = sys.argv[1] == "0", sys.argv[2], sys.argv[3]
out = set()
if ok:
    for line in open(listf):
        line = line.strip().split(" -- ", 1)[0].strip()
        if not line or line.startswith("The following") or line == "none":
            continue
        f = line.split(":")
        # g:a:type[:classifier]:version:scope:/absolute/file
        path = f[-1]
        g, a = f[0], f[1]
        if len(f) == 7:
            classifier, version = f[3], f[4]
        elif len(f) == 6:
            classifier, version = None, f[3]
        else:
            sys.exit(f"unexpected dependency:list line: {line}")
        ext = os.path.basename(path).rsplit(".", 1)[-1]
        out.add(":".join([g, a, ext] + ([classifier] if classifier else []) + [version]))
    print("\n".join(sorted(out)))
    sys.exit(0)
text = open(logf, errors="replace").read()
text = re.sub(r"\x1b\[[0-9;]*m", "", text)
coord = r"([^\s:,]+:[^\s:,]+:[^\s:,]+(?::[^\s:,]+)?:[^\s:,]+)"
pats = [r"Could not find artifact " + coord, r"Failure to find " + coord,
        r"Could not transfer artifact " + coord, r"Missing artifact " + coord]
for p in pats:
    out.update(re.findall(p, text))
for m in re.findall(r"The following artifacts could not be resolved: ([^\n]*?)(?:: Could not| in |$)", text, re.M):
    for c in m.split(","):
        c = c.strip().split(" (", 1)[0]
        if re.fullmatch(coord, c):
            out.add(c)
print("error")
if out:
    print("\n".join(sorted(out)))
EOF
}

spark_golden() { # rc log-file
    python3 - "$@" <<'EOF'
import os, re, sys
rc, logf = int(sys.argv[1]), sys.argv[2]
text = open(logf, errors="replace").read()
m = re.search(r"^Exception in thread \"main\" java\.lang\.RuntimeException: \[(.*)\]$", text, re.M)
if rc != 0 or m:
    print("error")
    if m:
        print("\n".join(sorted(p.strip() for p in m.group(1).split(", "))))
    sys.exit(0)
m = re.search(r"^\(spark\.jars,(.*)\)$", text, re.M)
jars = [os.path.basename(j) for j in m.group(1).split(",")] if m and m.group(1) else []
if jars:
    print("\n".join(sorted(jars)))
EOF
}

run_case() { # index
    local i="$1" name="${names[$1]}" repo="${repos[$1]}" coord="${coords[$1]}" excl="${excludes[$1]}"
    local port dir rc t0 t1 t2
    port=$(port_of "$repo")
    dir="$work/cases/$name"
    mkdir -p "$dir/spark-home" "$dir/maven/home"
    t0=$(date +%s%N)

    # spark-submit
    local args=(--verbose --master 'local[1]' --conf "spark.jars.ivy=$dir/ivy"
        --packages "$coord" --repositories "http://127.0.0.1:$port/")
    [[ "$excl" != - ]] && args+=(--exclude-packages "$excl")
    rc=0
    spark_submit "$dir" "$work/logs/$name.spark.log" "$cds_opt" "${args[@]}" || rc=$?
    spark_golden "$rc" "$work/logs/$name.spark.log" >"$out/$name.spark"
    t1=$(date +%s%N)

    # mvn dependency:list
    cp -r "$tmpl/m2" "$dir/maven/m2"
    maven_pom "$coord" "$excl" >"$dir/maven/pom.xml"
    rc=0
    mvn_run "$dir/maven" "$work/settings-$repo.xml" "$work/logs/$name.maven.log" \
        "$dep_plugin:list" -DincludeScope=runtime -DoutputAbsoluteArtifactFilename=true \
        -DoutputFile="$dir/maven/list.txt" || rc=$?
    maven_golden "$rc" "$dir/maven/list.txt" "$work/logs/$name.maven.log" >"$out/$name.maven"
    t2=$(date +%s%N)

    local s m
    s=$(head -1 "$out/$name.spark"); [[ "$s" == error ]] || s="$(grep -c . "$out/$name.spark" || true) jars"
    m=$(head -1 "$out/$name.maven"); [[ "$m" == error ]] || m="$(grep -c . "$out/$name.maven" || true) artifacts"
    printf 'maven-golden: %-36s spark: %-8s %4.1f s  maven: %-12s %4.1f s\n' "$name" "$s" \
        "$(((t1 - t0) / 1000000))e-3" "$m" "$(((t2 - t1) / 1000000))e-3" >&2
    rm -rf "$dir"
}

log "${#names[@]} cases, $jobs at a time (fixture repo on :$fixture_port, debian repo on :$debian_port)"
live=() # pids of the running cases (not `wait` alone: the servers are children too)
reap_one() {
    local done_pid="" p rest=()
    wait -n -p done_pid "${live[@]}" || true
    for p in "${live[@]}"; do [[ "$p" == "$done_pid" ]] || rest+=("$p"); done
    live=("${rest[@]}")
}
for i in "${!names[@]}"; do
    while ((${#live[@]} >= jobs)); do reap_one; done
    run_case "$i" &
    live+=($!)
done
while ((${#live[@]})); do reap_one; done

# Nothing but the loopback repositories was asked for anything (Central etc. are refused before
# any connection); a sanity check that the server saw requests at all.
[[ -s "$work/logs/requests-fixture.log" || -s "$work/logs/requests-debian.log" ]] \
    || { log "the loopback repositories saw no request"; exit 1; }

status=0
if ((check)); then
    for name in "${names[@]}"; do
        for tool in spark maven; do
            if ! diff -u --label "golden/$name.$tool" --label "now/$name.$tool" \
                "$golden_dir/$name.$tool" "$out/$name.$tool"; then
                status=1
                echo "--- last lines of the $tool log of $name:"
                grep -v -E 'Server access error|^\s*$|repo1\.maven\.org|repos\.spark-packages\.org|^\s+at ' \
                    "$work/logs/$name.$tool.log" | tail -25 || true
            fi
        done
    done
    if ((status)); then
        log "DIFFERENT from maven/fixtures/golden (regenerate with scripts/maven-golden.sh, rerun with --keep for the logs)"
    else
        log "all ${#names[@]} cases match maven/fixtures/golden"
    fi
elif ((${#only[@]} == 0)); then
    # Drop golden files of cases that no longer exist.
    for f in "$golden_dir"/*.spark "$golden_dir"/*.maven; do
        [[ -e "$f" ]] || continue
        base="$(basename "$f")"; base="${base%.*}"
        found=0
        for name in "${names[@]}"; do [[ "$name" == "$base" ]] && found=1; done
        ((found)) || { log "removing stale $f"; rm -f "$f"; }
    done
fi
log "total time $((SECONDS - start)) s"
exit "$status"
