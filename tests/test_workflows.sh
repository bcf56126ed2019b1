#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The ClusterFuzzLite workflows in .github/workflows/ parse as YAML and say
# what ClusterFuzzLite's documentation asks for: PR fuzzing on
# pull_request (mode code-change), batch fuzzing on a schedule (batch),
# pruning and coverage on a schedule (prune, coverage), continuous builds on
# push (upload-build); in every job build_fuzzers@v1 before run_fuzzers@v1,
# language c as in .clusterfuzzlite/project.yaml, and the sanitizers of
# project.yaml (coverage for the coverage job).
# usage: test_workflows.sh SRCDIR          check the workflows
#        test_workflows.sh SRCDIR broken   check that broken copies (a mode
#                                          removed, a typo in an action, ...)
#                                          are each caught
# Exit 0 pass, 1 fail, 77 skip (no python3 with yaml).
set -u
src=$1 what=${2:-check}
python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: no python3 yaml (Debian: python3-yaml)"; exit 77; }

# check WORKFLOWS-DIR PROJECT-YAML: the errors, one a line; exit 1 if any
check() {
    python3 - "$1" "$2" <<'EOF'
import os, sys, yaml

wdir, project = sys.argv[1], sys.argv[2]
errors = []
def err(f, msg):
    errors.append("%s: %s" % (f, msg))

proj = yaml.safe_load(open(project))
sanitizers = set(proj.get("sanitizers") or [])
BUILD = "google/clusterfuzzlite/actions/build_fuzzers@v1"
RUN = "google/clusterfuzzlite/actions/run_fuzzers@v1"
MATRIX = "${{ matrix.sanitizer }}"

# file: (trigger, {job: mode or None for a build-only job})
want = {
    "cflite_pr.yml": ("pull_request", {"PR": "code-change"}),
    "cflite_build.yml": ("push", {"Build": None}),
    "cflite_batch.yml": ("schedule", {"BatchFuzzing": "batch"}),
    "cflite_cron.yml": ("schedule", {"Pruning": "prune", "Coverage": "coverage"}),
}

for f, (trigger, jobs) in want.items():
    path = os.path.join(wdir, f)
    if not os.path.exists(path):
        err(f, "missing")
        continue
    try:
        doc = yaml.safe_load(open(path))
    except yaml.YAMLError as e:
        err(f, "not YAML: %s" % str(e).replace("\n", " "))
        continue
    if not isinstance(doc, dict):
        err(f, "not a mapping")
        continue
    if not doc.get("name"):
        err(f, "no name")
    # YAML 1.1 reads the key on as true
    on = doc.get("on", doc.get(True))
    if not isinstance(on, dict) or trigger not in on:
        err(f, "not run on %s" % trigger)
    elif trigger == "schedule":
        crons = [c.get("cron") for c in on["schedule"] or [] if isinstance(c, dict)]
        if not crons or not all(isinstance(c, str) and len(c.split()) == 5 for c in crons):
            err(f, "schedule without a five-field cron")
    if doc.get("permissions") != "read-all":
        err(f, "permissions are not read-all")
    js = doc.get("jobs")
    if not isinstance(js, dict):
        err(f, "no jobs")
        continue
    if set(js) != set(jobs):
        err(f, "jobs %s, not %s" % (sorted(js), sorted(jobs)))
    for name, mode in jobs.items():
        job = js.get(name)
        if not isinstance(job, dict):
            continue
        where = "%s: job %s" % (f, name)
        if not job.get("runs-on"):
            errors.append(where + ": no runs-on")
        steps = job.get("steps") or []
        uses = [s.get("uses") for s in steps if isinstance(s, dict)]
        expect = [BUILD] if mode is None else [BUILD, RUN]
        if uses != expect:
            errors.append(where + ": steps use %s, not %s" % (uses, expect))
            continue
        build = steps[0].get("with") or {}
        run = steps[1].get("with") or {} if mode else {}
        if build.get("language") != proj.get("language"):
            errors.append(where + ": language %r, project.yaml says %r"
                          % (build.get("language"), proj.get("language")))
        # sanitizers: the matrix (a subset of project.yaml's) passed to both
        # steps; the coverage job builds and runs with "coverage"; pruning
        # needs none
        matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("sanitizer")
        if mode == "coverage":
            if build.get("sanitizer") != "coverage" or run.get("sanitizer") != "coverage":
                errors.append(where + ": build and run not with sanitizer coverage")
        elif mode != "prune":
            if not matrix or not set(matrix) <= sanitizers:
                errors.append(where + ": sanitizer matrix %r is not a subset of %r"
                              % (matrix, sorted(sanitizers)))
            for step, w in (("build", build), ("run", run)) if mode else (("build", build),):
                if w.get("sanitizer") != MATRIX:
                    errors.append(where + ": %s step's sanitizer is %r, not %s"
                                  % (step, w.get("sanitizer"), MATRIX))
        if mode is None:
            if build.get("upload-build") is not True:
                errors.append(where + ": no upload-build: true")
            continue
        if run.get("mode") != mode:
            errors.append(where + ": mode %r, not %r" % (run.get("mode"), mode))
        if not isinstance(run.get("fuzz-seconds"), int) or run["fuzz-seconds"] <= 0:
            errors.append(where + ": fuzz-seconds %r" % run.get("fuzz-seconds"))
        if run.get("github-token") != "${{ secrets.GITHUB_TOKEN }}":
            errors.append(where + ": run step without github-token")

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF
}

wf=$src/.github/workflows project=$src/.clusterfuzzlite/project.yaml
if [ "$what" = check ]; then
    check "$wf" "$project" || { echo "FAIL: the workflows"; exit 1; }
    echo "workflows: ok ($(ls "$wf"/cflite_*.yml | wc -l) files)"
    exit 0
fi

# broken copies: FILE, sed expression; each must be caught
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
while IFS='|' read -r file expr; do
    [ -n "$file" ] || continue
    n=$((n + 1))
    rm -rf "$tmp/wf" && cp -r "$wf" "$tmp/wf"
    sed -i -e "$expr" "$tmp/wf/$file"
    if cmp -s "$wf/$file" "$tmp/wf/$file"; then
        echo "FAIL: '$expr' changes nothing in $file"
        fail=1
    elif out=$(check "$tmp/wf" "$project"); then
        echo "FAIL: not caught: $file with '$expr'"
        fail=1
    else
        echo "caught: $file '$expr': $(head -1 <<<"$out")"
    fi
done <<'EOF'
cflite_pr.yml|/mode: 'code-change'/d
cflite_pr.yml|s/mode: 'code-change'/mode: 'code_change'/
cflite_pr.yml|s/run_fuzzers@v1/run_fuzzer@v1/
cflite_pr.yml|s/build_fuzzers@v1/XX/;s/run_fuzzers@v1/build_fuzzers@v1/;s/XX/run_fuzzers@v1/
cflite_pr.yml|s/^  pull_request:/  pull_requests:/
cflite_pr.yml|s/language: c$/language: c++/
cflite_pr.yml|/^          - undefined/s/undefined/memory/
cflite_pr.yml|s/^      - name: Run Fuzzers/     - name: Run Fuzzers/
cflite_batch.yml|s/mode: 'batch'/mode: 'code-change'/
cflite_batch.yml|s/^  schedule:/  scheduled:/
cflite_batch.yml|s/fuzz-seconds: 3600/fuzz-seconds: 1h/
cflite_cron.yml|/mode: 'prune'/d
cflite_cron.yml|s/sanitizer: 'coverage'/sanitizer: address/
cflite_cron.yml|s/build_fuzzers@v1/build_fuzzers@v2/
cflite_cron.yml|s/^  Coverage:/  Coverge:/
cflite_build.yml|/upload-build: true/d
cflite_build.yml|s/sanitizer: \${{ matrix.sanitizer }}/sanitizer: address/
EOF
[ $fail = 0 ] && echo "workflows: all $n broken copies caught"
exit $fail
