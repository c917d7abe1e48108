# Renders the Go benchmark rates, the performance targets with whether
# this run meets them, the lifetime peak RSS and the database syscalls
# per token of a compare.sh results file (read with jq -rs).

def mean(f): if length == 0 then null else (map(f) | add / length) end;
def r0(x): if x == null then "-" else x | round | tostring end;
def r2(x): if x == null then "-" else (x * 100 | round) / 100 | tostring end;
def pct(x): if x == null then "-" else "\((x * 1000 | round) / 10)%" end;
def verdict(ok; miss): if ok then "met" else "NOT met (\(miss))" end;

(.[] | select(.label == "run")) as $run
| $run.signing_alg as $alg
| [.[] | select(.label == "baseline")] as $baselines
| [.[] | select(.label == "ours" or .label == "hydra")] as $runs
| [.[] | select(.label == "syscalls")] as $syscalls
| [.[] | select(.label == "lifetime")] as $lifetime
| def base($name): [$baselines[] | select(.benchmark == $name)] | mean(.ops_per_s);
  def rps($server; $workload; $c): [$runs[] | select(.label == $server and .workload == $workload and ($c == null or .concurrency == $c))] | mean(.rps);
  def p99($server; $workload; $c): [$runs[] | select(.label == $server and .workload == $workload and .concurrency == $c) | .p99_ms] | max;

  "Go benchmarks on the server's core (operations/s, mean of the passes before and after the load):",
  ($baselines | map(.benchmark) | unique | .[] | "  \(.): \(r0(base(.)))"),
  "",
  "Targets, as measured in this run:",
  ( [1, 8, 32] | map({c: ., ours: rps("ours"; "cc"; .), hydra: rps("hydra"; "cc"; .)}) | map(select(.ours != null))
    | (max_by(.ours) // null) as $best
    | if $best == null then "  client credentials: not run"
      else
        ( if $alg == "RS256" then
            base("BenchmarkRSASignPKCS1v15") as $raw
            | ($raw != null and $best.ours >= 0.7 * $raw) as $ok
            | "  client credentials RS256 >= 70% of the raw RS256 signing rate: best \(r0($best.ours)) req/s (c=\($best.c)) is \(pct(if $raw then $best.ours / $raw else null end)) of \(r0($raw))/s: \(verdict($ok; "needs \(r0(if $raw then 0.7 * $raw else null end)) req/s, \(pct(if $raw then 1 - $best.ours / (0.7 * $raw) else null end)) short"))"
          else
            "  client credentials \($alg) >= 3,000 tokens/s: best \(r0($best.ours)) req/s (c=\($best.c)): \(verdict($best.ours >= 3000; "\(pct(1 - $best.ours / 3000)) short"))"
          end ),
        ( if $best.hydra == null then "  client credentials >= 10x Hydra: Hydra not run"
          else "  client credentials >= 10x Hydra (c=\($best.c)): \(r2($best.ours / $best.hydra))x: \(verdict($best.ours >= 10 * $best.hydra; "\(pct(1 - $best.ours / (10 * $best.hydra))) short"))"
          end )
      end ),
  ( rps("ours"; "introspect"; null) as $o | rps("hydra"; "introspect"; null) as $h
    | if $o != null and $h != null then
        "  introspection >= 10x Hydra: \(r2($o / $h))x: \(verdict($o >= 10 * $h; "\(pct(1 - $o / (10 * $h))) short"))"
      else "  introspection >= 10x Hydra: not run on both servers" end ),
  ( rps("ours"; "login"; null) as $o | base("BenchmarkAuthenticate/right_password") as $a
    | if $o != null and $a != null then
        "  legacy login >= 90% of the argon2id verification rate: \(r2($o)) req/s is \(pct($o / $a)) of \(r2($a))/s: \(verdict($o >= 0.9 * $a; "\(pct(1 - $o / (0.9 * $a))) short"))"
      else "  legacy login >= 90% of the argon2id verification rate: not run" end ),
  ( p99("ours"; "cc"; 32) as $p
    | if $alg != "ES256" then "  p99 at c=32 with ES256 < 50 ms: not measured, this run signs with \($alg)"
      elif $p == null then "  p99 at c=32 with ES256 < 50 ms: not run"
      else "  p99 at c=32 with ES256 < 50 ms: \($p) ms: \(verdict($p < 50; "\(r2($p - 50)) ms over"))" end ),
  ( [$runs[] | select(.label == "hydra") | .workload] | unique as $shared
    | ([$runs[] | select(.label == "ours" and (.workload | IN($shared[]))) | .peak_rss_kib] | max) as $o
    | ([$runs[] | select(.label == "hydra") | .peak_rss_kib] | max) as $h
    | if $o != null and $h != null then
        "  peak RSS <= Hydra's, on the workloads both ran: \(r0($o / 1024)) MiB vs \(r0($h / 1024)) MiB: \(verdict($o <= $h; "\(pct($o / $h - 1)) over"))"
      else "  peak RSS <= Hydra's: not run on both servers" end ),
  ( $lifetime[] | "  lifetime peak RSS (VmHWM) of \(.server), over every workload it ran: \(r0(.vmhwm_kib / 1024)) MiB" ),
  "",
  ( if ($syscalls | length) == 0 then "Database syscalls per token: not measured"
    else
      "Syscalls per client-credentials token (strace -f -c on every thread of the server; clock_nanosleep is sleeping C code, such as SQLite's busy handler):",
      ( $syscalls[] | "  \(.server) c=\(.concurrency // 1): \(.tokens) tokens; pread64 \(.pread64), pwrite64 \(.pwrite64), fdatasync \(.fdatasync), fsync \(.fsync), fcntl \(.fcntl), clock_nanosleep \(.clock_nanosleep // "-")" )
    end )
