# Helpers shared by stack.sh and services.sh; sourced, not run.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE PATTERN: the pid in FILE runs and its command line matches PATTERN, so
# a recycled pid is never mistaken for ours.
pid_alive() {
    local file=$1 pattern=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

# stop_pid FILE PATTERN: SIGTERM the process and wait up to 10 s for it to go.
stop_pid() {
    local file=$1 pattern=$2
    if pid_alive "$file" "$pattern"; then
        kill -TERM "$(<"$file")"
        for _ in $(seq 100); do pid_alive "$file" "$pattern" || break; sleep 0.1; done
        rm -f "$file"
        return 0
    fi
    rm -f "$file"
    return 1
}
