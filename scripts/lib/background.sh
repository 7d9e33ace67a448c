# Background jobs for scripts/test, sourced: jobs that run beside the foreground, each waited for
# where its output is needed, and none outliving the script.
#
#   background+=("$pid")           remember a job, so that the EXIT trap ends it
#   await PID LOG WHAT             wait for it; if it failed, print its LOG, say WHAT failed, exit 1
#   kill_tree PID...               end each process and every process under it

background=()

# Children before their parent, so that none is re-parented to init and missed (cargo's rustc,
# go's compiles).
kill_tree() {
    local pid
    for pid in "$@"; do
        kill_tree $(pgrep -P "$pid" || true)
        kill "$pid" 2>/dev/null || true
    done
}

# A failed job's own log is the only place its error is: it goes to stderr before the exit.
await() {
    local pid=$1 log=$2 what=$3
    if ! wait "$pid"; then
        cat "$log" >&2
        echo "test: $what failed" >&2
        exit 1
    fi
}
