#!/usr/bin/env bash
# Side-by-side load test of this server and Ory Hydra v2.3.0 on loopback.
#
# One run builds both servers, Hydra only when no cached binary exists. It
# starts each server on a fresh SQLite file, pins it to core 0 and the load
# generator to core 1, and runs the same workloads against both servers,
# alternating ours and Hydra within each workload. It then prints:
#   - a table of request rates, their ratio, p99 latency, errors and peak RSS,
#   - the rates of the Go signing and argon2id benchmarks on the same core,
#   - the targets and whether this run meets them,
#   - the file I/O, lock and sleep syscalls per issued token.
# Every number comes from this one run on a shared machine,
# so compare the ratios, not the absolute rates across runs.
#
# Usage: bench/compare.sh
#
# Environment:
#   QUICK=1          short runs (about 3 minutes once both binaries exist)
#   SIGNING_ALG=ALG  our server's algorithm: RS256 (default), ES256 or EdDSA
#   STATELESS=1      start our server with --stateless-client-tokens, so
#                    client-credentials tokens are issued without a record
#   ROUNDS=N         runs per server and workload, alternating (default 2, minimum 2)
#   WORKLOADS="…"    subset of: cc1 cc8 cc32 introspect login password refresh jwks
#   HYDRA_BIN=PATH   use this Hydra binary; default the cached build below
#   CACHE_DIR=DIR    where the Hydra build is cached (default ~/.cache/authserver-bench)
#   OUT_DIR=DIR      where results.jsonl and summary.txt go (default a new /tmp directory)
#   KEEP_WORK=1      keep the temporary databases and server logs
#   REPORT_FROM=FILE print the report of a saved results.jsonl and exit
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
SIGNING_ALG=${SIGNING_ALG:-RS256}
STATELESS=${STATELESS:-0}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"cc1 cc8 cc32 introspect login password refresh jwks"}
HYDRA_VERSION=v2.3.0
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/authserver-bench}
HYDRA_BIN=${HYDRA_BIN:-$CACHE_DIR/hydra-$HYDRA_VERSION}

# Every load-generator run stops at MAX_REQUESTS or DURATION, whichever
# comes first, after an unmeasured warm-up. STRACE_TOKENS is the fixed
# number of tokens over which database syscalls are counted.
if [[ $QUICK == 1 ]]; then
	DURATION=3s WARMUP=1s MAX_REQUESTS=100000 STRACE_TOKENS=200 BENCHTIME=1s AUTH_BENCHTIME=10x
else
	DURATION=20s WARMUP=2s MAX_REQUESTS=1000000 STRACE_TOKENS=1000 BENCHTIME=3s AUTH_BENCHTIME=40x
fi
# The hard limit on one load-generator process: warm-up, measured phase,
# the last request's timeout, and a margin.
LOADGEN_LIMIT=$((${DURATION%s} + ${WARMUP%s} + 40))

case $SIGNING_ALG in RS256 | ES256 | EdDSA) ;; *)
	echo "SIGNING_ALG=$SIGNING_ALG is invalid: use RS256, ES256 or EdDSA" >&2
	exit 2
	;;
esac
if ((ROUNDS < 2)); then
	echo "ROUNDS=$ROUNDS is invalid: the runs alternate ours and Hydra at least twice, so use 2 or more" >&2
	exit 2
fi

# report prints the tables of a results file: the workload table with
# aligned columns, then the benchmark rates, targets and syscall counts.
report() {
	jq -rs -f "$ROOT/bench/table.jq" "$1" | awk -F'\t' '
		/^#/ || NF < 2 { print; next }
		{ rows[++n] = $0; for (i = 1; i <= NF; i++) if (length($i) > width[i]) width[i] = length($i) }
		END {
			for (r = 1; r <= n; r++) {
				m = split(rows[r], cell, "\t")
				line = ""
				for (i = 1; i <= m; i++) line = line sprintf(i <= 2 ? "%-*s  " : "%*s  ", width[i], cell[i])
				sub(/ +$/, "", line)
				print line
			}
		}'
	echo
	jq -rs -f "$ROOT/bench/targets.jq" "$1"
}

if [[ -n ${REPORT_FROM:-} ]]; then
	report "$REPORT_FROM"
	exit
fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { log "WARNING: $*"; }

MAIN_PID=$$
CHILDREN=()
WORK=$(mktemp -d /tmp/authserver-bench.XXXXXX)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/authserver-bench-results.XXXXXX)}
mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.jsonl
: >"$RESULTS"

# stop_child ends one process this script started: SIGTERM, up to 15 s for
# a graceful exit, then SIGKILL. It acts only while the PID is still this
# shell's child, so a reused PID never hits another process.
stop_child() {
	local pid=$1 state i
	[[ $(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) == "$MAIN_PID" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || break
		[[ -z $state || $state == Z ]] && break
		sleep 0.1
	done
	if [[ $(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) == "$MAIN_PID" && $state != Z ]]; then
		warn "process $pid did not stop after SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${CHILDREN[@]}"; do
		stop_child "$pid"
	done
	if [[ ${KEEP_WORK:-0} == 1 ]]; then
		log "kept the databases and logs in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools

need_packages=()
command -v taskset >/dev/null || need_packages+=(util-linux)
command -v strace >/dev/null || need_packages+=(strace)
command -v jq >/dev/null || need_packages+=(jq)
command -v curl >/dev/null || need_packages+=(curl)
if ((${#need_packages[@]} > 0)); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing ${need_packages[*]} with apt-get"
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null ||
			warn "apt-get install ${need_packages[*]} failed"
	else
		warn "missing ${need_packages[*]} and cannot install them here (needs root and apt-get)"
	fi
fi
for tool in jq curl go; do
	command -v "$tool" >/dev/null || {
		echo "$tool is required and not installed" >&2
		exit 1
	}
done

# Each server gets core 0 and the load generator core 1. Go sets
# GOMAXPROCS from the affinity mask, so each process runs one P.
if command -v taskset >/dev/null && (($(nproc --all) >= 2)) && taskset -c 0,1 true 2>/dev/null; then
	PIN_SERVER=(taskset -c 0)
	PIN_LOAD=(taskset -c 1)
	PINNED="server on core 0, load generator on core 1"
else
	warn "taskset is unavailable or the machine has fewer than 2 cores: running unpinned, so server and load generator share the cores"
	PIN_SERVER=()
	PIN_LOAD=()
	PINNED="unpinned"
fi
HAVE_STRACE=0
command -v strace >/dev/null && HAVE_STRACE=1

# ---------------------------------------------------------------- build

mkdir -p "$WORK/bin" "$CACHE_DIR"
log "building the server, the load generator and the benchmark binaries"
(
	cd "$ROOT"
	go build -o "$WORK/bin/authserver" ./cmd/authserver
	go build -o "$WORK/bin/loadgen" ./bench/loadgen
	go test -c -o "$WORK/bin/keys.test" ./keys
	go test -c -o "$WORK/bin/oauth.test" ./oauth
) || {
	echo "the build failed; fix it or check that go.mod and go.sum are consistent" >&2
	exit 1
}
AUTHSERVER=$WORK/bin/authserver
LOADGEN=$WORK/bin/loadgen

# build_hydra builds Hydra in a scratch module, because its go.mod has a
# replace directive that go install rejects, and caches the binary.
build_hydra() {
	local dir=$WORK/hydra-build
	mkdir -p "$dir"
	log "building Hydra $HYDRA_VERSION from the Go module proxy (about 3 minutes on 2 cores)"
	(
		cd "$dir"
		go mod init hydrabench >/dev/null 2>&1
		go mod edit -replace github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
		timeout 900 go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION"
		CGO_ENABLED=1 timeout 1200 go build -tags sqlite,sqlite_omit_load_extension -o hydra github.com/ory/hydra/v2
	) >"$dir/build.log" 2>&1 || {
		tail -20 "$dir/build.log" >&2
		echo "building Hydra failed; the log is above" >&2
		exit 1
	}
	mkdir -p "$(dirname "$HYDRA_BIN")"
	cp "$dir/hydra" "$HYDRA_BIN.tmp"
	mv "$HYDRA_BIN.tmp" "$HYDRA_BIN"
}
if [[ ! -x $HYDRA_BIN ]]; then
	build_hydra
fi
log "Hydra binary: $HYDRA_BIN"

jq -nc --arg alg "$SIGNING_ALG" --arg stateless "$STATELESS" --arg version "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)" \
	--arg hydra "$HYDRA_VERSION" --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
	--arg cores "$(nproc --all)" --arg pinning "$PINNED" --arg warmup "$WARMUP" --arg duration "$DURATION" \
	--arg max "$MAX_REQUESTS" --arg rounds "$ROUNDS" --arg workloads "$WORKLOADS" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
	'{label: "run", signing_alg: $alg, stateless: ($stateless == "1"), version: $version, hydra_version: $hydra, cpu: $cpu, cores: ($cores | tonumber),
	  pinning: $pinning, warmup: $warmup, duration: $duration, max_requests: ($max | tonumber), rounds: ($rounds | tonumber),
	  workloads: $workloads, loadavg_start: $load, started: (now | todate)}' >>"$RESULTS"

# ---------------------------------------------------------------- helpers

# free_port prints a loopback port that nothing listens on now.
free_port() {
	local port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "no free loopback port found in 100 tries" >&2
	return 1
}

# wait_ready polls a health URL for up to 60 s while the process lives.
wait_ready() {
	local url=$1 pid=$2 name=$3 i
	for ((i = 0; i < 120; i++)); do
		curl -fsS --max-time 2 "$url" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || {
			echo "$name exited during start-up; its log is $4" >&2
			tail -20 "$4" >&2
			exit 1
		}
		sleep 0.5
	done
	echo "$name was not ready at $url after 60 s" >&2
	exit 1
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# ---------------------------------------------------------------- our server

OURS_DIR=$WORK/ours
mkdir -p "$OURS_DIR"
OURS_DB=$OURS_DIR/auth.db
OURS_PORT=$(free_port)
OURS_URL=http://127.0.0.1:$OURS_PORT
BENCH_USER=bench
BENCH_PASSWORD=bench-$(random_hex 12)

log "creating the user and clients of our server"
printf '%s\n' "$BENCH_PASSWORD" | "$AUTHSERVER" users create --database "$OURS_DB" --username "$BENCH_USER" \
	--scopes "bench:read bench:write" --password-stdin >/dev/null 2>"$OURS_DIR/admin.log"
create_client() {
	"$AUTHSERVER" clients create --database "$OURS_DB" --owner "$BENCH_USER" --json "$@" 2>>"$OURS_DIR/admin.log"
}
OURS_CC=$(create_client --name bench-cc)
OURS_PW=$(create_client --name bench-password --grant-types "password refresh_token")
OURS_INTRO=$(create_client --name bench-introspect --introspect)
field() { jq -r ".$2" <<<"$1"; }

# The brute-force limits are raised so the load is never throttled. All
# load comes from 127.0.0.1, which the address limit would throttle. A
# password attempt counts as failed until it succeeds, so at most
# --max-failures requests for one username may be in flight at once, and
# the login, password and refresh workloads all use one user.
OURS_FLAGS=(--addr "127.0.0.1:$OURS_PORT" --issuer "$OURS_URL" --database "$OURS_DB" --signing-alg "$SIGNING_ALG"
	--address-rate 1000000 --address-burst 1000000 --max-failures 1000000)
if [[ $STATELESS == 1 ]]; then
	OURS_FLAGS+=(--stateless-client-tokens)
fi
log "starting our server on $OURS_URL ($SIGNING_ALG)"
"${PIN_SERVER[@]}" "$AUTHSERVER" serve "${OURS_FLAGS[@]}" >"$OURS_DIR/serve.log" 2>&1 &
OURS_PID=$!
CHILDREN+=("$OURS_PID")
wait_ready "$OURS_URL/health/ready" "$OURS_PID" "our server" "$OURS_DIR/serve.log"

# ---------------------------------------------------------------- Hydra

HYDRA_DIR=$WORK/hydra
mkdir -p "$HYDRA_DIR"
HYDRA_PUBLIC_PORT=$(free_port)
HYDRA_ADMIN_PORT=$(free_port)
while [[ $HYDRA_ADMIN_PORT == "$HYDRA_PUBLIC_PORT" || $HYDRA_ADMIN_PORT == "$OURS_PORT" ]]; do
	HYDRA_ADMIN_PORT=$(free_port)
done
HYDRA_URL=http://127.0.0.1:$HYDRA_PUBLIC_PORT
HYDRA_ADMIN=http://127.0.0.1:$HYDRA_ADMIN_PORT
HYDRA_CONFIG=$HYDRA_DIR/hydra.yml
# Hydra's defaults apply except for what a local run needs (loopback
# listeners, issuer, system secret) and JWT access tokens.
cat >"$HYDRA_CONFIG" <<EOF
serve:
  public:
    host: 127.0.0.1
    port: $HYDRA_PUBLIC_PORT
  admin:
    host: 127.0.0.1
    port: $HYDRA_ADMIN_PORT
urls:
  self:
    issuer: $HYDRA_URL
secrets:
  system:
    - $(random_hex 32)
strategies:
  access_token: jwt
EOF
export DSN="sqlite://$HYDRA_DIR/db.sqlite?_fk=true"
log "migrating Hydra's database"
"$HYDRA_BIN" migrate sql up -e --yes -c "$HYDRA_CONFIG" >"$HYDRA_DIR/migrate.log" 2>&1 || {
	tail -20 "$HYDRA_DIR/migrate.log" >&2
	exit 1
}
log "starting Hydra on $HYDRA_URL (admin $HYDRA_ADMIN)"
"${PIN_SERVER[@]}" "$HYDRA_BIN" serve all --dev -c "$HYDRA_CONFIG" >"$HYDRA_DIR/serve.log" 2>&1 &
HYDRA_PID=$!
CHILDREN+=("$HYDRA_PID")
wait_ready "$HYDRA_ADMIN/health/ready" "$HYDRA_PID" "Hydra" "$HYDRA_DIR/serve.log"
wait_ready "$HYDRA_URL/health/ready" "$HYDRA_PID" "Hydra" "$HYDRA_DIR/serve.log"

HYDRA_CC_ID=bench-cc
HYDRA_CC_SECRET=$(random_hex 24)
"$HYDRA_BIN" create oauth2-client --endpoint "$HYDRA_ADMIN" --format json \
	--grant-type client_credentials --token-endpoint-auth-method client_secret_basic \
	--id "$HYDRA_CC_ID" --secret "$HYDRA_CC_SECRET" >"$HYDRA_DIR/client.json" 2>>"$HYDRA_DIR/admin.log"

# ---------------------------------------------------------------- baselines

# run_baselines runs the Go benchmarks pinned to the server's core and
# appends their rates (operations per second) to the results.
run_baselines() {
	local pass=$1 out
	log "Go benchmarks on core 0 ($pass)"
	out=$(cd "$ROOT/keys" && "${PIN_SERVER[@]}" "$WORK/bin/keys.test" -test.run '^$' \
		-test.bench '^(BenchmarkSignerGenerate|BenchmarkRSASignPKCS1v15)$' -test.benchtime "$BENCHTIME" 2>&1) || {
		warn "keys benchmarks failed: $(tail -3 <<<"$out")"
	}
	out+=$'\n'$(cd "$ROOT/oauth" && "${PIN_SERVER[@]}" "$WORK/bin/oauth.test" -test.run '^$' \
		-test.bench '^BenchmarkAuthenticate$/^right_password$' -test.benchtime "$AUTH_BENCHTIME" 2>&1) || {
		warn "oauth benchmarks failed: $(tail -3 <<<"$out")"
	}
	# Benchmark names end in -N when GOMAXPROCS is N > 1.
	awk -v pass="$pass" '$1 ~ /^Benchmark/ {
		for (i = 2; i < NF; i++) if ($(i + 1) == "ns/op") {
			name = $1; sub(/-[0-9]+$/, "", name)
			printf "{\"label\":\"baseline\",\"pass\":\"%s\",\"benchmark\":\"%s\",\"ns_per_op\":%s,\"ops_per_s\":%.1f}\n", pass, name, $i, 1e9 / $i
		}
	}' <<<"$out" >>"$RESULTS"
}

run_baselines before

# ---------------------------------------------------------------- load

# loadgen runs one measured workload and appends its JSON line.
loadgen() {
	local label=$1 pid=$2 out
	shift 2
	if out=$(timeout "$LOADGEN_LIMIT" "${PIN_LOAD[@]}" "$LOADGEN" --label "$label" --pid "$pid" \
		--requests "$MAX_REQUESTS" --duration "$DURATION" --warmup "$WARMUP" "$@" 2>&1); then
		printf '%s\n' "$out" >>"$RESULTS"
		jq -r '"  \(.label) \(.workload) c=\(.concurrency): \(.rps | floor) req/s, p99 \(.p99_ms) ms, \(.errors) errors" +
			(if .errors > 0 then " (first: \(.error_samples[0] // "" | .[0:160]))" else "" end)' <<<"$out" >&2
	else
		warn "load generator failed on $label: $(tail -3 <<<"$out")"
	fi
}

ours() {
	local workload=$1 concurrency=$2
	local args=(--url "$OURS_URL" --workload "$workload" --concurrency "$concurrency")
	case $workload in
	cc) args+=(--client-id "$(field "$OURS_CC" client_id)" --client-secret "$(field "$OURS_CC" client_secret)") ;;
	introspect)
		args+=(--client-id "$(field "$OURS_INTRO" client_id)" --client-secret "$(field "$OURS_INTRO" client_secret)"
			--token-client-id "$(field "$OURS_CC" client_id)" --token-client-secret "$(field "$OURS_CC" client_secret)")
		;;
	login) args+=(--username "$BENCH_USER" --password "$BENCH_PASSWORD") ;;
	password | refresh)
		args+=(--client-id "$(field "$OURS_PW" client_id)" --client-secret "$(field "$OURS_PW" client_secret)"
			--username "$BENCH_USER" --password "$BENCH_PASSWORD")
		;;
	esac
	loadgen ours "$OURS_PID" "${args[@]}"
}

hydra() {
	local workload=$1 concurrency=$2
	local args=(--url "$HYDRA_URL" --workload "$workload" --concurrency "$concurrency")
	case $workload in
	cc) args+=(--client-id "$HYDRA_CC_ID" --client-secret "$HYDRA_CC_SECRET") ;;
	# The admin endpoint takes no client authentication.
	introspect) args+=(--introspect-url "$HYDRA_ADMIN/admin/oauth2/introspect"
		--token-client-id "$HYDRA_CC_ID" --token-client-secret "$HYDRA_CC_SECRET") ;;
	esac
	loadgen hydra "$HYDRA_PID" "${args[@]}"
}

# Workload keys: the loadgen workload and its concurrency, and whether
# Hydra can run it. Hydra v2.3.0 has no password grant, so it has no
# legacy login, no password grant and no way to obtain a refresh token
# without the authorization-code flow and a login UI.
declare -A WL_NAME=([cc1]=cc [cc8]=cc [cc32]=cc [introspect]=introspect [login]=login [password]=password [refresh]=refresh [jwks]=jwks)
declare -A WL_CONC=([cc1]=1 [cc8]=8 [cc32]=32 [introspect]=8 [login]=8 [password]=8 [refresh]=8 [jwks]=8)
declare -A WL_HYDRA=([cc1]=1 [cc8]=1 [cc32]=1 [introspect]=1 [login]=0 [password]=0 [refresh]=0 [jwks]=1)
for key in $WORKLOADS; do
	[[ -n ${WL_NAME[$key]:-} ]] || {
		echo "WORKLOADS names unknown workload $key: use cc1 cc8 cc32 introspect login password refresh jwks" >&2
		exit 2
	}
done

for key in $WORKLOADS; do
	name=${WL_NAME[$key]} conc=${WL_CONC[$key]}
	log "workload $key: $name at concurrency $conc, $ROUNDS rounds"
	for ((round = 1; round <= ROUNDS; round++)); do
		ours "$name" "$conc"
		if [[ ${WL_HYDRA[$key]} == 1 ]]; then
			hydra "$name" "$conc"
		fi
	done
done

run_baselines after

# ---------------------------------------------------------------- database I/O

# count_db_syscalls attaches strace to a server for a fixed number of
# client-credentials tokens at the given concurrency and records the
# counts of the file I/O, lock and sleep syscalls per token. The load
# generator's own syscalls are not traced. The Go runtime sleeps with
# nanosleep, so clock_nanosleep calls come from C code: in our server,
# SQLite's busy handler waiting for the write lock of another connection.
count_db_syscalls() {
	local label=$1 pid=$2 concurrency=$3 out=$WORK/strace-$1-$3.txt line tokens strace_pid
	shift 3
	strace -f -c -e trace=pread64,pwrite64,fdatasync,fsync,fcntl,clock_nanosleep -o "$out" -p "$pid" 2>"$out.log" &
	strace_pid=$!
	CHILDREN+=("$strace_pid")
	sleep 1
	line=$(timeout 120 "${PIN_LOAD[@]}" "$LOADGEN" --label "$label" --workload cc --concurrency "$concurrency" \
		--requests "$STRACE_TOKENS" --duration 100s "$@" 2>&1) || warn "load generator failed under strace on $label: $line"
	kill -INT "$strace_pid" 2>/dev/null || true
	wait "$strace_pid" 2>/dev/null || true
	tokens=$(jq -r '.requests' <<<"$line" 2>/dev/null || echo 0)
	if [[ ! $tokens =~ ^[0-9]+$ ]] || ((tokens == 0)); then
		warn "no tokens issued under strace on $label"
		return 0
	fi
	awk -v label="$label" -v tokens="$tokens" -v concurrency="$concurrency" '
		$NF ~ /^(pread64|pwrite64|fdatasync|fsync|fcntl|clock_nanosleep)$/ { calls[$NF] = $4 }
		END {
			printf "{\"label\":\"syscalls\",\"server\":\"%s\",\"concurrency\":%d,\"tokens\":%d", label, concurrency, tokens
			n = split("pread64 pwrite64 fdatasync fsync fcntl clock_nanosleep", names, " ")
			for (i = 1; i <= n; i++) printf ",\"%s\":%.2f", names[i], (calls[names[i]] + 0) / tokens
			print "}"
		}' "$out" >>"$RESULTS"
}

if [[ $HAVE_STRACE == 1 ]]; then
	log "counting syscalls over $STRACE_TOKENS client-credentials tokens at concurrency 1 and 32 on each server"
	for concurrency in 1 32; do
		count_db_syscalls ours "$OURS_PID" "$concurrency" --url "$OURS_URL" \
			--client-id "$(field "$OURS_CC" client_id)" --client-secret "$(field "$OURS_CC" client_secret)"
		count_db_syscalls hydra "$HYDRA_PID" "$concurrency" --url "$HYDRA_URL" --client-id "$HYDRA_CC_ID" --client-secret "$HYDRA_CC_SECRET"
	done
else
	warn "strace is unavailable: skipping the syscall count"
fi

# The lifetime peak RSS of each server, over every workload it ran.
for server in ours hydra; do
	pid=$OURS_PID
	[[ $server == hydra ]] && pid=$HYDRA_PID
	awk -v s="$server" '/^VmHWM:/ {printf "{\"label\":\"lifetime\",\"server\":\"%s\",\"vmhwm_kib\":%d}\n", s, $2}' \
		"/proc/$pid/status" >>"$RESULTS"
done

# ---------------------------------------------------------------- report

jq -nc --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '{label: "run_end", loadavg_end: $load}' >>"$RESULTS"

{
	report "$RESULTS"
	echo
	echo "Hydra wrote $(grep -c . "$HYDRA_DIR/serve.log" || true) log lines at its default log level."
	echo "Raw results: $RESULTS"
} | tee "$OUT_DIR/summary.txt"
