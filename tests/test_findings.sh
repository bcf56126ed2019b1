#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The findings catalog (tests/findings/): every catalogued bug in software
# nobody here wrote is replayed against the installed software, and the bug
# is EXPECTED.  Each trace carries
#   # expect: SIGNATURE-PREFIX   blkv run must exit 1 with this signature
#   # report: TEXT               (optional) the report must contain TEXT
#   # qemu-io: TEXT              (optional) the qemu-io script beside the
#                                trace (same name, .sh) must fail, printing TEXT
# The catalog's own traces are tests/findings/*.trace; tests/findings/
# referenced.list names the ones kept in tests/traces/.  An entry whose
# software is missing (qemu-nbd/qemu-img/qemu-io, or blkv built without
# libqcow) is skipped; if all are, exit 77.  An entry that no longer fails
# fails this test: the finding may be fixed upstream, so update the catalog.
#
# usage: test_findings.sh BLKV TESTS-DIR
set -u
case $1 in /*) BLKV=$1 ;; *) BLKV=$(pwd)/$1 ;; esac
TESTS=$(cd "$2" && pwd) || exit 1
CAT=$TESTS/findings

tmp=$(mktemp -d "${TMPDIR:-/tmp}/blkv-findings.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

have() { command -v "$1" >/dev/null 2>&1; }

# "# KEY: value" from a trace header
field() { sed -n "s/^# $2: //p" "$1" | head -n 1; }

list=$(ls "$CAT"/*.trace)
while read -r rel; do
    case $rel in ''|'#'*) continue ;; esac
    list="$list
$TESTS/$rel"
done < "$CAT/referenced.list"

ran=0 skipped=0 failed=0
for t in $list; do
    name=${t#"$TESTS"/}
    if [ ! -f "$t" ]; then
        echo "FAIL $name: listed in the catalog but missing"
        failed=$((failed + 1)); continue
    fi
    expect=$(field "$t" expect)
    if [ -z "$expect" ]; then
        echo "FAIL $name: no '# expect:' line"
        failed=$((failed + 1)); continue
    fi
    driver=$(sed -n 's/^driver //p' "$t" | head -n 1)
    case $driver in
    nbd*server=qemu-nbd*|nbd)
        if ! have qemu-nbd || ! have qemu-img; then
            echo "SKIP $name: needs qemu-nbd and qemu-img"; skipped=$((skipped + 1)); continue
        fi
        if ! "$BLKV" drivers nbd >/dev/null 2>&1; then
            echo "SKIP $name: blkv built without the nbd driver"; skipped=$((skipped + 1)); continue
        fi ;;
    libqcow*)
        if ! "$BLKV" drivers libqcow >/dev/null 2>&1; then
            echo "SKIP $name: blkv built without libqcow"; skipped=$((skipped + 1)); continue
        fi ;;
    esac
    ran=$((ran + 1))
    out=$tmp/run.out
    (cd "$tmp" && "$BLKV" run "$t") > "$out" 2>&1
    rc=$?
    sig=$(sed -n 's/^ *signature: //p' "$out" | head -n 1)
    report=$(field "$t" report)
    why=""
    if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
        echo "FAIL $name: blkv run could not run it (exit $rc):"
        sed 's/^/       /' "$out" | head -n 20
        failed=$((failed + 1)); continue
    fi
    if [ $rc -eq 0 ]; then
        why="blkv run found nothing (exit 0)"
    else
        case $sig in
        "$expect"*) ;;
        *) why="signature '$sig', expected '$expect'" ;;
        esac
    fi
    if [ -z "$why" ] && [ -n "$report" ] && ! grep -qF -- "$report" "$out"; then
        why="report lacks '$report'"
    fi
    if [ -n "$why" ]; then
        echo "FAIL $name: the catalogued bug no longer reproduces ($why)."
        echo "     The finding may be fixed upstream (or the installed version changed):"
        echo "     check, then update tests/findings/ and its README.  blkv run said:"
        sed 's/^/       /' "$out" | head -n 20
        failed=$((failed + 1)); continue
    fi
    echo "ok   $name: $sig"

    # QEMU's own tools: the qemu-io script beside the trace
    qio=$(field "$t" qemu-io)
    sh_=${t%.trace}.sh
    if [ -n "$qio" ] && [ -f "$sh_" ]; then
        if ! have qemu-io || ! have qemu-img; then
            echo "SKIP $name (qemu-io script): needs qemu-io and qemu-img"
        else
            (cd "$tmp" && rm -f img && IMG=$tmp/img sh "$sh_") > "$tmp/qio.out" 2>&1
            qrc=$?
            if [ $qrc -eq 0 ] || ! grep -qF -- "$qio" "$tmp/qio.out"; then
                echo "FAIL ${sh_#"$TESTS"/}: exit $qrc, expected a failure printing '$qio'."
                echo "     The finding may be fixed upstream: update tests/findings/.  Output:"
                sed 's/^/       /' "$tmp/qio.out" | tail -n 12
                failed=$((failed + 1))
            else
                echo "ok   ${sh_#"$TESTS"/}: exit $qrc, '$qio'"
            fi
        fi
    fi
done

echo "findings: $ran replayed, $skipped skipped, $failed failed"
[ $failed -eq 0 ] || exit 1
[ $ran -gt 0 ] || exit 77
exit 0
