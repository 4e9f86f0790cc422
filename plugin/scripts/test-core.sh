#!/usr/bin/env bash
# Compiles the plugin's platform-free core (dev.finetunestudio.core) and its JUnit 4 tests with plain kotlinc,
# and runs them: the check that works where no Gradle or IntelliJ SDK can be downloaded (CI here).
#
#   plugin/scripts/test-core.sh            compile (when sources changed) and run every core test
#   plugin/scripts/test-core.sh --classpath  compile the core only, print its runtime classpath (for
#                                            tests/test_kotlin_client.py, which runs FollowJobMain)
#
# kotlinc comes from npm's `kotlin-compiler` package (JetBrains' full compiler), installed once under
# .tools/kotlinc; Gson and JUnit 4 + Hamcrest come from ~/.m2/repository. Output: build/plugin-core.
# Exits non-zero when a test fails; the last line reads "N passed, N failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools/kotlinc"
OUT="$ROOT/build/plugin-core"
M2="${M2_REPOSITORY:-$HOME/.m2/repository}"
KOTLIN_VERSION="${KOTLIN_COMPILER_VERSION:-2.4.20}"

find_kotlinc() {
    if [[ -n "${KOTLINC:-}" ]]; then echo "$KOTLINC"; return; fi
    local npm_kotlinc="$TOOLS/node_modules/kotlin-compiler/bin/kotlinc"
    if [[ ! -x "$npm_kotlinc" ]]; then
        command -v npm >/dev/null || { echo "test-core: npm is needed to install kotlinc (apt-get install npm)" >&2; exit 2; }
        echo "test-core: installing kotlin-compiler@$KOTLIN_VERSION from npm into $TOOLS" >&2
        mkdir -p "$TOOLS"
        npm install --silent --no-audit --no-fund --prefix "$TOOLS" "kotlin-compiler@$KOTLIN_VERSION" >&2
    fi
    echo "$npm_kotlinc"
}

# The newest version of a jar in the local Maven repository: $1 = group path, $2 = artifact.
m2_jar() {
    local dir="$M2/$1/$2"
    local version
    version="$(ls "$dir" 2>/dev/null | sort -V | tail -n 1)"
    local jar="$dir/$version/$2-$version.jar"
    [[ -f "$jar" ]] || { echo "test-core: no $2 jar under $dir" >&2; exit 2; }
    echo "$jar"
}

KOTLINC_BIN="$(find_kotlinc)"
STDLIB="$(dirname "$KOTLINC_BIN")/../lib/kotlin-stdlib.jar"
GSON="$(m2_jar com/google/code/gson gson)"
# JUnit 4 (not 3.x, which the same folder may hold) and the Hamcrest 1.3 core it was built against
JUNIT="$M2/junit/junit/4.13.2/junit-4.13.2.jar"
HAMCREST="$M2/org/hamcrest/hamcrest-core/1.3/hamcrest-core-1.3.jar"
for jar in "$STDLIB" "$JUNIT" "$HAMCREST"; do
    [[ -f "$jar" ]] || { echo "test-core: missing $jar" >&2; exit 2; }
done
RUNTIME_CP="$OUT/main:$STDLIB:$GSON"

MAIN_SRC="$ROOT/plugin/src/main/kotlin/dev/finetunestudio/core"
TEST_SRC="$ROOT/plugin/src/test/kotlin/dev/finetunestudio/core"

# Compiles $2 into $1 with classpath $3, unless no source is newer than the last compile.
compile() {
    local dest="$1" src="$2" cp="$3" stamp="$1.stamp"
    # a folder's own time changes when a file is added or removed there
    if [[ -f "$stamp" ]] && [[ -z "$(find "$src" "$MAIN_SRC" -newer "$stamp" -print -quit)" ]]; then
        return
    fi
    rm -rf "$dest" "$stamp"
    mkdir -p "$dest"
    echo "test-core: compiling $(find "$src" -name '*.kt' | wc -l) files into ${dest#$ROOT/}" >&2
    # -no-stdlib + the jar: the compiler's own stdlib, and nothing it finds by itself on this machine
    "$KOTLINC_BIN" -jvm-target 17 -no-stdlib -no-reflect -nowarn -cp "$cp" -d "$dest" "$src" \
        2> >(grep -v '^warning: unable to find kotlin-stdlib' >&2)
    touch "$stamp"
}

mkdir -p "$OUT"
compile "$OUT/main" "$MAIN_SRC" "$STDLIB:$GSON"
if [[ "${1:-}" == "--classpath" ]]; then
    echo "$RUNTIME_CP"
    exit 0
fi
compile "$OUT/test" "$TEST_SRC" "$RUNTIME_CP:$JUNIT:$HAMCREST"

# Every *Test class of the core, by file name (one top-level test class per file).
mapfile -t CLASSES < <(cd "$TEST_SRC" && ls *Test.kt | sed 's/\.kt$//; s/^/dev.finetunestudio.core./' | sort)

FIXTURES="$ROOT/tests/fixtures/wire"
set +e
java -Dfinetunestudio.wireFixtures="$FIXTURES" \
    -Dfinetunestudio.schema="$ROOT/plugin/src/main/resources/schemas/finetune.schema.json" -cp "$RUNTIME_CP:$OUT/test:$JUNIT:$HAMCREST" \
    org.junit.runner.JUnitCore "${CLASSES[@]}" | tee "$OUT/junit.log"
STATUS=${PIPESTATUS[0]}
set -e

# JUnitCore ends with "OK (N tests)" or "Tests run: N,  Failures: F": restate it as the plain closing line.
RUN_LINE="$(grep -E '^OK \([0-9]+ tests?\)' "$OUT/junit.log" | tail -n 1 || true)"
if [[ -n "$RUN_LINE" ]]; then
    PASSED="$(sed -E 's/^OK \(([0-9]+) tests?\)/\1/' <<<"$RUN_LINE")"
    FAILED=0
else
    # nothing of the kind when the JVM died before the end: then it counts as one failure
    TOTALS="$(grep -E '^Tests run: [0-9]+, +Failures: [0-9]+' "$OUT/junit.log" | tail -n 1 || true)"
    RUN="$(sed -E 's/^Tests run: ([0-9]+),.*/\1/' <<<"$TOTALS")"
    FAILED="$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$TOTALS")"
    PASSED=$(( ${RUN:-0} - ${FAILED:-0} ))
fi
echo "plugin-core: ${PASSED:-0} passed, ${FAILED:-1} failed"
exit "$STATUS"
