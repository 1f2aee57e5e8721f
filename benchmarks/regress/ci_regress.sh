#!/usr/bin/env bash
# CI regression check: a small sweep, then `mobexport regress` against the
# committed baseline. Run from anywhere; it works in the repository root.
# By default the sweep counts instructions per inference under callgrind
# (deterministic: about 0.3% spread, so a 2% threshold catches a 10% regression
# at one point every time); MOBEXPORT_CI_METRIC=latency times it instead.
#
#   benchmarks/regress/ci_regress.sh                    check (exit status of mobexport regress:
#                                                       0 ok, 1 regression, 2 bad input)
#   benchmarks/regress/ci_regress.sh --update-baseline  measure N times and rewrite the baseline instead
#   benchmarks/regress/ci_regress.sh --min-effect 15%   other arguments go to mobexport regress
#
# Environment:
#   MOBEXPORT_CI_METRIC    instructions (default; needs valgrind) or latency
#   MOBEXPORT_CI_OUT       keep outputs (results, curves, plots) here; exported
#                          artifacts there are reused by the next run
#                          (default: a temporary directory, removed at exit)
#   MOBEXPORT_CI_BASELINE  baseline file (default: benchmarks/regress/baselines/ci_instructions.json
#                          for instructions, benchmarks/regress/baselines/ci_local_cpu.json for latency)
#   MOBEXPORT_CI_BASELINE_RUNS  sweeps behind a new baseline (default: 5 for latency,
#                          1 for instructions); several latency runs let the check see
#                          the machine's run-to-run variation
#   MOBEXPORT_CACHE_DIR    export cache shared by every run on this machine
#                          (default: ~/.cache/mobexport/artifacts; "off" disables it):
#                          a re-run exports nothing that an earlier run exported with
#                          the same model, options, mobexport source and package versions
#
# The plot is written beside the results as regress-results-<UTC time>.png, one
# per run (the output names it).
#
# The sweep: Mobile-Former 52M and 294M against MobileNetV3-Large (the
# reference of relative mode), ONNX Runtime, three resolutions. See
# docs/regression.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODELS="mobile_former_52m,mobile_former_294m,mobilenet_v3_large_100"
RESOLUTIONS="160,192,224"
metric="${MOBEXPORT_CI_METRIC:-instructions}"
case "$metric" in
    instructions)
        baseline="${MOBEXPORT_CI_BASELINE:-benchmarks/regress/baselines/ci_instructions.json}"
        default_runs=1 ;;
    latency)
        baseline="${MOBEXPORT_CI_BASELINE:-benchmarks/regress/baselines/ci_local_cpu.json}"
        default_runs=5 ;;
    *)
        echo "ci_regress: MOBEXPORT_CI_METRIC must be instructions or latency, not '$metric'" >&2
        exit 2 ;;
esac

update=0
if [ "${1:-}" = "--update-baseline" ]; then
    update=1
    shift
fi

if [ -n "${MOBEXPORT_CI_OUT:-}" ]; then
    out="$MOBEXPORT_CI_OUT"
    mkdir -p "$out"
    rm -f "$out/results.jsonl"  # a fresh measurement; exported artifacts stay and are reused
else
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi

# One sweep into "$out"; exported artifacts already there are reused.
# bench exits 1 when some cases failed: regress reports those as failed points.
sweep() {
    rm -f "$out/results.jsonl"
    set +e
    mobexport bench --metric "$metric" --models "$MODELS" --targets onnx --resolutions "$RESOLUTIONS" \
        --export-jobs 2 --out "$out"
    local status=$?
    set -e
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
        echo "ci_regress: mobexport bench failed (exit $status)" >&2
        exit "$status"
    fi
}

# Not exec: the EXIT trap must still remove a temporary output directory.
if [ "$update" -eq 1 ]; then
    # Several runs, so that the baseline knows this machine's run-to-run variation.
    runs="${MOBEXPORT_CI_BASELINE_RUNS:-$default_runs}"
    rm -rf "$out/baseline-runs"
    mkdir -p "$out/baseline-runs"
    for i in $(seq 1 "$runs"); do
        echo "ci_regress: baseline run $i of $runs" >&2
        sweep
        mv "$out/results.jsonl" "$out/baseline-runs/run-$i.jsonl"
    done
    set +e
    mobexport regress --metric "$metric" --update-baseline --results "$out"/baseline-runs/run-*.jsonl \
        --baseline "$baseline"
    exit $?
fi

sweep
set +e
mobexport regress --metric "$metric" --baseline "$baseline" --results "$out/results.jsonl" \
    --markdown "$out/regress.md" "$@"
exit $?
