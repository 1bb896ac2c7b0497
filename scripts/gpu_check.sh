#!/usr/bin/env bash
# Check 5 (real CUDA) and the GPU halves of the tests, on a bare GPU machine without network.
#
#   make gpu-wheels   # beforehand, where the package index is reachable: fills wheels/
#   make gpu-check    # on the GPU machine, from the working tree (wheels/ brought along)
#
# Steps, each with its own time limit (all of them well under 8 minutes on one GPU):
#   1. install from WHEELS what PY lacks (scripts/gpu_install.py; no network);
#   2. the harness on the bundled model (package mode; check 5: original and fixed on the GPU);
#   3. the harness on the real DVIS-DAQ (DAQ, its online R50 config; check 5 likewise);
#   4. the tests that skip without CUDA (the virtual device's predictions against the
#      hardware, the fixed code's GPU branches).
# Reports go to OUT (default out/gpu): bundled/, daq/, tests.txt, summary.txt.
# Without CUDA every step still runs (check 5 is SKIP with its reason) and the script
# exits 3 saying so; a failed step exits 1. Environment: PY (default python3), WHEELS
# (default wheels), DAQ (default ../shared/realworld/DVIS_DAQ), OUT, GPU_TESTS, SKIP_INSTALL=1,
# INSTALL_DRY_RUN=1 (say what would be installed, install nothing: a dry run on a CPU machine).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-python3}"
WHEELS="${WHEELS:-$ROOT/wheels}"
DAQ="${DAQ:-$ROOT/../shared/realworld/DVIS_DAQ}"
OUT="${OUT:-$ROOT/out/gpu}"
GPU_TESTS="${GPU_TESTS:-tests/test_virtual_gpu_differential.py tests/test_fix_goldens.py tests/test_harness_checks.py}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
log() { printf '[gpu-check] %s\n' "$*" | tee -a "$SUMMARY" >&2; }

START=$(date +%s)
if [ "${SKIP_INSTALL:-0}" != "1" ]; then
    timeout 180 "$PY" scripts/gpu_install.py "$WHEELS" ${INSTALL_DRY_RUN:+--dry-run} || { log "install: FAILED (see above)"; exit 1; }
fi
if ! "$PY" -c "import torch, flake8_device.harness, detectron2" 2>>"$SUMMARY"; then
    log "import of torch, flake8_device.harness or detectron2 failed with $PY: install step incomplete"
    exit 1
fi
CUDA="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)"
if [ -n "$CUDA" ]; then
    log "CUDA device: $CUDA"
else
    log "no CUDA device (torch.cuda.is_available() is False): check 5 will be SKIP with that reason"
fi

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    local t0=$(date +%s)
    timeout "$limit" "$@"
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    if [ "$rc" = 0 ]; then
        log "$name: OK (${dt} s)"
    else
        [ "$rc" = 124 ] && log "$name: TIMED OUT after ${limit} s" || log "$name: FAILED, exit $rc (${dt} s)"
        FAILED=1
    fi
}
check5() {  # the line of check 5 in a harness report
    "$PY" - "$1" <<'PYEOF' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
c = {k["id"]: k for k in r["checks"]}.get(5)
print(f"check 5 {c['status']}: {c['message']}" if c else f"no check 5 (setup: {r.get('setup_error')})")
PYEOF
}

step "bundled model harness" 150 "$PY" -m flake8_device.harness.cli --out "$OUT/bundled" -q
[ -f "$OUT/bundled/report.json" ] && log "bundled: $(check5 "$OUT/bundled/report.json")"
if [ -d "$DAQ" ]; then
    step "DVIS-DAQ harness" 270 "$PY" -m flake8_device.harness.cli --project "$DAQ" \
        --config configs/dvis_daq/ytvis19/DAQ_Online_R50.yaml --out "$OUT/daq" --threads 4 -q
    [ -f "$OUT/daq/report.json" ] && log "DVIS-DAQ: $(check5 "$OUT/daq/report.json")"
else
    log "DVIS-DAQ harness: not run, no folder $DAQ (give DAQ=path/to/DVIS_Plus/DVIS_DAQ)"
    FAILED=1
fi
step "GPU halves of the tests" 150 bash -c \
    "\"$PY\" -m pytest -q -p no:cacheprovider -rs $GPU_TESTS -o addopts='' > \"$OUT/tests.txt\" 2>&1"
tail -n 3 "$OUT/tests.txt" | sed 's/^/[gpu-check]   /' | tee -a "$SUMMARY" >&2
log "total $(( $(date +%s) - START )) s; reports in $OUT"
if [ "$FAILED" = 1 ]; then
    exit 1
fi
if [ -z "$CUDA" ]; then
    log "NOT A GPU CHECK: no CUDA device here, so check 5 was skipped; run this on a machine with a GPU"
    exit 3
fi
exit 0
