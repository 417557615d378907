#!/usr/bin/env bash
# The SIPp load scenario: N concurrent callers, each listening to a 5 s prompt while sending
# its own PCMU, hanging up at 6 s. For each N it reports failed calls, SIP retransmissions,
# INVITE->200 time, hotline's CPU-seconds per call-minute, its peak RSS, and the pacing of
# the RTP it sends (inter-packet gaps from a capture of 100 calls' streams).
#
#   benches/load/run.sh 100 500 1000 2000 3000
#
# Needs root (capture), sipp, sox, dumpcap/tshark. hotline runs on core 1, SIPp on core 0.
# Each level runs calls at N/6 per second for RUN_S seconds (default 30), so N are up at once.
# ADMISSION=1 keeps hotline's default admission limits ([sip] max_calls, max_new_calls_per_s)
# to measure overload: calls beyond them are refused with 503 and counted in "refused".
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_S=${RUN_S:-30}
cargo build --release --quiet
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/hotline-load.XXXXXX)
mkdir -p "$work/flows" "$work/prompts"
sox -D -n -r 8000 -c 1 -b 16 "$work/prompts/five.wav" synth 5 sine 440 vol 0.3
cp prompts/hold.wav "$work/prompts/"
sox -D prompts/welcome.wav -r 8000 -c 1 -e u-law -t raw "$work/caller.ulaw"
cp benches/load/caller.xml "$work/"
cat > "$work/flows/main.toml" <<'TOML'
[flow]
entry = "prompt"
escape_digit = "0"
escape_to = "agents"

[nodes.prompt]
type = "play"
prompt = "five"
next = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 600
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
TOML
cat > "$work/hotline.toml" <<'TOML'
[sip]
listen = "127.0.0.1:5080"
answer_after_ms = 0
shutdown_grace_s = 1
trusted_addresses = ["127.0.0.1"]  # SIPp's thousands of messages a second are not a flood
LIMITS

[rtp]
address = "127.0.0.1"
ports = [20000, 59998]

[http]
listen = "127.0.0.1:18080"

# Bob staffs the queue without taking calls (set not ready below): after the prompt the
# callers hear hold music until they hang up. With nobody logged in each would go on to
# voicemail at once and leave a message, which is not this scenario.
[[agents]]
id = "bob"
password = "pw"
skills = { support = 1 }

[[queues]]
name = "support"
skills = ["support"]
TOML

if [ "${ADMISSION:-0}" = 1 ]; then
  sed -i 's/^LIMITS$/# the default admission limits: the bench measures overload/' "$work/hotline.toml"
else
  sed -i 's/^LIMITS$/max_calls = 0                 # the bench measures the capacity: no admission limit\nmax_new_calls_per_s = 0/' "$work/hotline.toml"
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf "%6s %7s %7s %7s %8s %9s %9s %10s %8s %8s %8s %8s %7s %9s\n" N calls failed refused retrans "inv200p50" "inv200p99" "cpu-s/min" "rss-MB" "gap-p50" "gap-p99" "gap-max" "pkt/s" "sipp-cpu%"
for n in "$@"; do
  rate=$(( (n + 5) / 6 ))
  total=$(( rate * RUN_S ))
  (cd "$work" && HOTLINE_TOKEN=bench HOTLINE_LOG=warn taskset -c 1 "$OLDPWD/target/release/hotline" serve --config hotline.toml 2>"$work/server-$n.log") &
  server=$!
  sleep 1
  pid=$(pgrep -P "$server" hotline || echo "$server")
  curl -sf -H 'Authorization: Bearer bench' -d '{"state":"not-ready","reason":"bench"}' \
    127.0.0.1:18080/api/agents/bob/state >/dev/null
  dumpcap -q -i lo -f "udp and src portrange 20000-20199 and udp[0:2] & 1 = 0" -B 64 -w "$work/cap-$n.pcap" -P 2>/dev/null &
  cap=$!
  sleep 1
  c0=$(cpu_ticks "$pid")
  # SIPp streams the callers' audio from threads of 1,000 calls each: with a thread per 100 calls
  # (36 threads at 3,000), its one signalling thread got a 37th of the core and answered late.
  (cd "$work" && taskset -c 0 timeout -k 5 $((RUN_S + 60)) sipp 127.0.0.1:5080 -sf caller.xml -s main \
      -i 127.0.0.1 -p 5090 -mp 40000 -r "$rate" -m "$total" -l $((n + n / 5)) \
      -rtp_threadtasks 1000 -max_socket 65000 -nostdin -trace_screen -screen_file "screen-$n.txt" \
      -trace_rtt -rtt_freq 1 -timeout $((RUN_S + 50))s >/dev/null 2>"$work/sipp-$n.err") &
  sipp=$!
  sleep 2
  spid=$(pgrep -n -x sipp || true)
  s0=$( [ -n "$spid" ] && cpu_ticks "$spid" || echo 0 ); t0=$(date +%s.%N)
  sleep $((RUN_S - 4))
  s1=$( [ -n "$spid" ] && [ -e "/proc/$spid" ] && cpu_ticks "$spid" || echo "$s0" ); t1=$(date +%s.%N)
  wait "$sipp" || true
  c1=$(cpu_ticks "$pid")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  refused=$(curl -sf 127.0.0.1:18080/metrics | awk '/^hotline_calls_refused_total/ {print $2}')
  kill "$cap" 2>/dev/null || true; wait "$cap" 2>/dev/null || true
  kill -INT "$pid"; wait "$server" 2>/dev/null || true
  python3 - "$work" "$n" "$total" "$c0" "$c1" "$hz" "$rss" "$s0" "$s1" "$t0" "$t1" "${refused:-0}" <<'PY'
import glob, re, subprocess, sys, statistics
work, n, total, c0, c1, hz, rss, s0, s1, t0, t1, refused = sys.argv[1:]
refused = int(float(refused))
n, total = int(n), int(total)
screen = open(f"{work}/screen-{n}.txt", errors="replace").read()
def counter(name):
    m = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(m[-1]) if m else -1
ok, failed = counter("Successful call"), counter("Failed call")
retrans = 0
for line in screen.splitlines():
    m = re.match(r"\s+(INVITE|ACK|BYE|\d{3}) (?:-+>|<-+)\s+(?:E-RTD1 )?(\d+)\s+(\d+)", line)
    if m: retrans += int(m.group(3))
rtts = []
for f in glob.glob(f"{work}/caller_*_rtt.csv"):
    for line in open(f).read().splitlines()[1:]:
        parts = line.split(";")
        if len(parts) >= 3:
            try: rtts.append(float(parts[1]))
            except ValueError: pass
rtts.sort()
pct = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
cpu = (int(c1) - int(c0)) / int(hz)
minutes = total * 6 / 60
out = subprocess.run(["tshark", "-r", f"{work}/cap-{n}.pcap", "-T", "fields", "-e", "udp.srcport", "-e", "frame.time_epoch"],
                     capture_output=True, text=True).stdout
last, gaps, first, count = {}, [], {}, {}
for line in out.splitlines():
    port, t = line.split("\t"); t = float(t)
    if port in last and t - last[port] < 1.0:
        gaps.append((t - last[port]) * 1000)
        count[port] = count.get(port, 0) + 1
    else:
        first[port] = t; count[port] = 0
    last[port] = t
gaps.sort()
# Packets a second each live call received: over each stream's span (a port is reused by
# later calls; a gap of a second or more starts a new stream).
span = sum(last[p] - first[p] for p in last if last[p] - first[p] >= 1.0)
pps = sum(count[p] for p in last if last[p] - first[p] >= 1.0) / span if span else float("nan")
sipp_cpu = (int(s1) - int(s0)) / int(hz) / max(1e-9, float(t1) - float(t0)) * 100
print(f"{n:6d} {ok + failed:7d} {failed - refused:7d} {refused:7d} {retrans:8d} {pct(rtts,.5):9.2f} {pct(rtts,.99):9.2f} {cpu / minutes:10.4f} {int(rss)/1024:8.1f} {pct(gaps,.5):8.2f} {pct(gaps,.99):8.2f} {gaps[-1] if gaps else float('nan'):8.2f} {pps:7.1f} {sipp_cpu:9.0f}")
PY
  mkdir -p "$work/rtt-$n" && mv "$work"/caller_*_rtt.csv "$work/rtt-$n/" 2>/dev/null || true
done
echo "work files: $work"
