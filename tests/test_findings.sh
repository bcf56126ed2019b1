#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The findings catalog (tests/findings/): every catalogued bug in software
# nobody here wrote is replayed against the installed software, and the bug
# is EXPECTED.  Each trace carries
#   # expect: SIGNATURE-PREFIX   blkv run must exit 1 with this signature
#   # report: TEXT               (optional) the report must contain TEXT
#   # qemu-io: TEXT              (optional) the trace's qemu-io script, as
#                                `blkv export-qemu-io` writes it now, must
#                                fail, printing TEXT; the copy kept beside the
#                                trace (same name, .sh) must be that script
# The catalog's own traces are tests/findings/*.trace; tests/findings/
# referenced.list names the ones kept in tests/traces/.  A tests/findings/
# *.sh with no .trace beside it is a qemu-io-only entry: the script itself
# must fail printing its "# qemu-io: TEXT".  An entry whose
# software is missing (qemu-nbd/qemu-img/qemu-io, nbdkit, or blkv built without
# libqcow) is skipped; if all are, exit 77.  An entry that no longer fails
# at all is reported "fixed upstream?" and the test skips (77), so CI stays
# green and says so; one that fails otherwise than catalogued fails it.
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

ran=0 skipped=0 failed=0 fixed=0
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
    nbd*server=qsd*)
        if ! have qemu-storage-daemon || ! have qemu-img; then
            echo "SKIP $name: needs qemu-storage-daemon and qemu-img"
            skipped=$((skipped + 1)); continue
        fi
        if ! "$BLKV" drivers nbd >/dev/null 2>&1; then
            echo "SKIP $name: blkv built without the nbd driver"; skipped=$((skipped + 1)); continue
        fi ;;
    nbd*server=nbdkit*)
        if ! have nbdkit; then
            echo "SKIP $name: needs nbdkit"; skipped=$((skipped + 1)); continue
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
    # races in the servers are real concurrency: up to 5 tries, or what the
    # entry's "# tries: N" says (a race that shows one try in two needs more
    # than 5 for the test not to say "fixed upstream?" now and then)
    runs=0 maxruns=$(field "$t" tries)
    case $maxruns in '' | *[!0-9]* | 0) maxruns=5 ;; esac
    while :; do
        runs=$((runs + 1))
        (cd "$tmp" && "$BLKV" run "$t") > "$out" 2>&1
        rc=$?
        [ $rc -eq 0 ] && [ $runs -lt "$maxruns" ] || break
    done
    sig=$(sed -n 's/^ *signature: //p' "$out" | head -n 1)
    report=$(field "$t" report)
    why=""
    if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
        echo "FAIL $name: blkv run could not run it (exit $rc):"
        sed 's/^/       /' "$out" | head -n 20
        failed=$((failed + 1)); continue
    fi
    if [ $rc -eq 0 ]; then
        why="blkv run found nothing in $runs tries"
    else
        case $sig in
        "$expect"*) ;;
        *) why="signature '$sig', expected '$expect'" ;;
        esac
    fi
    if [ -z "$why" ] && [ -n "$report" ] && ! grep -qF -- "$report" "$out"; then
        why="report lacks '$report'"
    fi
    if [ $rc -eq 0 ]; then
        echo "FIXED? $name: the catalogued bug no longer reproduces ($why)."
        echo "     It may be fixed upstream (or the installed version changed): check,"
        echo "     then update tests/findings/ and its README."
        fixed=$((fixed + 1)); continue
    fi
    if [ -n "$why" ]; then
        echo "FAIL $name: the run fails otherwise than catalogued ($why):"
        sed 's/^/       /' "$out" | head -n 20
        failed=$((failed + 1)); continue
    fi
    echo "ok   $name: $sig (try $runs)"

    # QEMU's own tools: the qemu-io script beside the trace
    qio=$(field "$t" qemu-io)
    sh_=${t%.trace}.sh
    if [ -n "$qio" ] && [ -f "$sh_" ]; then
        if ! have qemu-io || ! have qemu-img; then
            echo "SKIP $name (qemu-io script): needs qemu-io and qemu-img"
        elif ! "$BLKV" export-qemu-io "$t" > "$tmp/export.sh" 2> "$tmp/export.err"; then
            echo "FAIL $name: blkv export-qemu-io refused it: $(head -1 "$tmp/export.err")"
            failed=$((failed + 1))
        elif grep -v '^#' "$sh_" > "$tmp/kept.cmds"; grep -v '^#' "$tmp/export.sh" > "$tmp/export.cmds"
             ! cmp -s "$tmp/kept.cmds" "$tmp/export.cmds"; then
            # the kept script is what the tool exports today (comments aside)
            echo "FAIL ${sh_#"$TESTS"/}: differs from what blkv export-qemu-io writes now;"
            echo "     regenerate it: blkv export-qemu-io ${t#"$TESTS"/} > ${sh_#"$TESTS"/}"
            failed=$((failed + 1))
        else
            # a race in QEMU need not show at every try (a loaded machine
            # changes qemu-io's timing): up to 5 tries, the first failure counts
            tries=0
            while :; do
                tries=$((tries + 1))
                (cd "$tmp" && rm -f img && IMG=$tmp/img sh "$tmp/export.sh") > "$tmp/qio.out" 2>&1
                qrc=$?
                [ $qrc -eq 0 ] && [ $tries -lt 5 ] || break
            done
            if [ $qrc -eq 0 ]; then
                echo "FIXED? ${sh_#"$TESTS"/}: exit 0 in $tries tries, the reproduction no longer fails."
                echo "     It may be fixed upstream: check, then update tests/findings/."
                fixed=$((fixed + 1))
            elif ! grep -qF -- "$qio" "$tmp/qio.out"; then
                echo "FAIL ${sh_#"$TESTS"/}: exit $qrc, but without '$qio'.  Output:"
                sed 's/^/       /' "$tmp/qio.out" | tail -n 12
                failed=$((failed + 1))
            else
                echo "ok   ${sh_#"$TESTS"/}: exit $qrc at try $tries, '$qio'"
            fi
        fi
    fi
done

# qemu-io-only entries: a .sh with no .trace beside it (a bug blkv's driver
# cannot drive, reproduced with QEMU's tools alone).  Its header carries
# "# qemu-io: TEXT": the script must fail printing TEXT; exit 0 means the
# bug no longer shows, exit 77 that a tool it needs is missing (a skip).  Up to 5 tries, as for the scripts above.
for sh_ in "$CAT"/*.sh; do
    [ -f "$sh_" ] && [ ! -f "${sh_%.sh}.trace" ] || continue
    name=${sh_#"$TESTS"/}
    qio=$(field "$sh_" qemu-io)
    if [ -z "$qio" ]; then
        echo "FAIL $name: no trace beside it and no '# qemu-io:' line"
        failed=$((failed + 1)); continue
    fi
    if ! have qemu-io || ! have qemu-img || ! have qemu-nbd; then
        echo "SKIP $name: needs qemu-io, qemu-img and qemu-nbd"; skipped=$((skipped + 1)); continue
    fi
    ran=$((ran + 1))
    tries=0
    while :; do
        tries=$((tries + 1))
        (cd "$tmp" && rm -f img && IMG=$tmp/img sh "$sh_") > "$tmp/qio.out" 2>&1
        qrc=$?
        [ $qrc -eq 0 ] && [ $tries -lt 5 ] || break
    done
    if [ $qrc -eq 77 ]; then
        echo "SKIP $name: $(tail -n 1 "$tmp/qio.out")"; skipped=$((skipped + 1)); ran=$((ran - 1))
    elif [ $qrc -eq 0 ]; then
        echo "FIXED? $name: exit 0 in $tries tries, the reproduction no longer fails."
        echo "     It may be fixed upstream: check, then update tests/findings/."
        fixed=$((fixed + 1))
    elif ! grep -qF -- "$qio" "$tmp/qio.out"; then
        echo "FAIL $name: exit $qrc, but without '$qio'.  Output:"
        sed 's/^/       /' "$tmp/qio.out" | tail -n 12
        failed=$((failed + 1))
    else
        echo "ok   $name: exit $qrc at try $tries, '$qio'"
    fi
done

echo "findings: $ran replayed, $skipped skipped, $failed failed, $fixed no longer reproduced"
[ $failed -eq 0 ] || exit 1
if [ $fixed -gt 0 ]; then
    echo "fixed upstream? $fixed finding(s) no longer reproduce: update tests/findings/"
    exit 77
fi
[ $ran -gt 0 ] || exit 77
exit 0
