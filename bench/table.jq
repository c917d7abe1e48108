# Renders the workload table of a compare.sh results file (read with
# jq -rs) as tab-separated rows, headed by comment lines that describe the run.
#
# req/s is the mean over rounds, p99 the largest over rounds, errors the
# sum, RSS the largest VmRSS sampled during the measured phases, and CPU
# ms/req the server's user+system time over the measured phases divided by
# the requests sent. "per round" is the range of the ratios of the runs
# made back to back (ours, then Hydra), which drift less than the means.

def key: "\(.workload)\(if .workload == "cc" then "\(.concurrency)" else "" end)";
def mean(f): if length == 0 then null else (map(f) | add / length) end;
def fmt(x; digits): if x == null then "-" else (x * pow(10; digits) | round / pow(10; digits) | tostring) end;
def mib(x): if x == null then "-" else "\(x / 1024 | round) MiB" end;
def cpu_ms(runs): if (runs | length) == 0 then null
  else (runs | map(.server_cpu_s // 0) | add) * 1000 / (runs | map(.requests + .errors) | add) end;

(.[] | select(.label == "run")) as $run
| ([.[] | select(.label == "run_end") | .loadavg_end] | first // "-") as $load_end
| [.[] | select(.label == "ours" or .label == "hydra")] as $runs
| "# authserver \($run.signing_alg)\(if $run.stateless then ", stateless client tokens" else "" end) (\($run.version)) vs Ory Hydra \($run.hydra_version) (its defaults: RS256 with RSA-4096; JWT access tokens)",
  "# \($run.cores) cores: \($run.cpu); \($run.pinning)",
  "# load average before the run: \($run.loadavg_start); after: \($load_end)",
  "# each run: warm-up \($run.warmup), then \($run.max_requests) requests or \($run.duration), whichever comes first; \($run.rounds) rounds per server, alternating",
  "# req/s: mean over rounds; p99: largest over rounds; errors: sum; RSS: largest VmRSS sampled every 100 ms; CPU: server CPU time per request",
  "",
  (["workload", "c", "ours req/s", "Hydra req/s", "ours/Hydra", "per round", "ours p99 ms", "Hydra p99 ms",
    "ours err", "Hydra err", "ours RSS", "Hydra RSS", "ours CPU ms", "Hydra CPU ms"] | @tsv),
  ($run.workloads | split(" ") | .[] as $k
   | [$runs[] | select(key == $k)] as $r
   | ($r | map(select(.label == "ours"))) as $o
   | ($r | map(select(.label == "hydra"))) as $h
   | select(($r | length) > 0)
   | ($o | mean(.rps)) as $ours_rps
   | ($h | mean(.rps)) as $hydra_rps
   | [$k, ($r[0].concurrency | tostring),
      fmt($ours_rps; 0), fmt($hydra_rps; 0),
      (if $ours_rps != null and $hydra_rps != null and $hydra_rps > 0 then "\(fmt($ours_rps / $hydra_rps; 2))x" else "-" end),
      ([range([$o, $h] | map(length) | min) as $i | select($h[$i].rps > 0) | $o[$i].rps / $h[$i].rps]
       | if length == 0 then "-" else "\(fmt(min; 1))-\(fmt(max; 1))x" end),
      fmt($o | map(.p99_ms) | max; 1), fmt($h | map(.p99_ms) | max; 1),
      (if ($o | length) > 0 then $o | map(.errors) | add | tostring else "-" end),
      (if ($h | length) > 0 then $h | map(.errors) | add | tostring else "-" end),
      mib($o | map(.peak_rss_kib) | max), mib($h | map(.peak_rss_kib) | max),
      fmt(cpu_ms($o); 2), fmt(cpu_ms($h); 2)]
   | @tsv)
