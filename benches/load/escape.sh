#!/usr/bin/env bash
# Escape digit -> agent INVITE latency under load. N background callers (the load scenario of
# run.sh: a 5 s prompt while sending their own PCMU, hanging up at 6 s) keep the server busy
# while one caller at a time presses 0 (RFC 4733, SIPp's dtmf_2833_0.pcap) during a prompt; a
# SIPp agent phone, registered with digest auth, answers and hangs up after 0.5 s. From a
# loopback capture: the time from the first packet of the key press to the INVITE leaving for
# the agent's phone, p50/p99/max over CALLS presses.
#
# After their prompt the background callers wait in a queue with hold music until they hang
# up: its one agent is logged in but not ready. With MESSAGES=1 nobody is logged in to that
# queue, so each of them goes on to voicemail at once and leaves a 1 s message (N/6 messages
# a second written and synced to disk): a heavier load than the scenario's.
#
# While the keys are pressed it samples the calls up, SIP retransmissions, each core's load and
# hotline's RTP packets per call and late ticks, and warns when the media was not paced (the
# server past its capacity: the latency is then not a figure at that load). From the capture it
# also reports the gaps between the packets of the audio each pressing caller hears, on the wire.
#
#   benches/load/escape.sh 1000             # N background callers (default 1000)
#   MESSAGES=1 benches/load/escape.sh 3000  # every background caller leaves a message
#
# Needs root (capture), sipp, sox, dumpcap/tshark. hotline runs on core 1, SIPp on core 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
CALLS=${CALLS:-100}
MESSAGES=${MESSAGES:-0}
# A press's call takes about 1 s; the load is sized to outlast them all and stopped once
# they are done.
RUN_S=$(( 30 + CALLS * 2 ))
cargo build --release --quiet
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/hotline-escape.XXXXXX)
mkdir -p "$work/flows" "$work/prompts"
sox -D -n -r 8000 -c 1 -b 16 "$work/prompts/five.wav" synth 5 sine 440 vol 0.3
cp prompts/hold.wav "$work/prompts/"
sox -D prompts/welcome.wav -r 8000 -c 1 -e u-law -t raw "$work/caller.ulaw"
cp benches/load/caller.xml "$work/"
for line in main load; do
  queue=$([ "$line" = main ] && echo support || echo overflow)
  cat > "$work/flows/$line.toml" <<TOML
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
queue = "$queue"
max_wait_s = 60
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "$line"
TOML
done
cat > "$work/hotline.toml" <<'TOML'
[sip]
listen = "127.0.0.1:5080"
answer_after_ms = 0
shutdown_grace_s = 1
max_calls = 0                 # the bench measures the capacity: no admission limit
max_new_calls_per_s = 0
trusted_addresses = ["127.0.0.1"]  # SIPp's thousands of messages a second are not a flood

[rtp]
address = "127.0.0.1"
ports = [20000, 59998]

[http]
listen = "127.0.0.1:18080"

[lines]
main = "main"
load = "load"

[[agents]]
id = "alice"
password = "pw"
skills = { support = 1 }

[[queues]]
name = "support"
skills = ["support"]
ring_timeout_s = 15
wrap_up_s = 0

[[agents]]
id = "bob"
password = "pw"
skills = { overflow = 1 }

[[queues]]
name = "overflow"
skills = ["overflow"]
TOML
cat > "$work/register.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
      REGISTER sip:hotline.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@hotline.local>;tag=[pid]R
      To: <sip:alice@hotline.local>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:alice@127.0.0.1:5072>
      Expires: 3600
      Content-Length: 0
  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
      REGISTER sip:hotline.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@hotline.local>;tag=[pid]R
      To: <sip:alice@hotline.local>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:alice@127.0.0.1:5072>
      [authentication]
      Expires: 3600
      Content-Length: 0
  ]]></send>
  <recv response="200"/>
</scenario>
XML
cat > "$work/agent.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent phone">
  <recv request="INVITE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:alice@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=alice 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
  ]]></send>
  <recv request="ACK">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
    </action>
  </recv>
  <pause milliseconds="500"/>
  <send retrans="500"><![CDATA[
      BYE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Content-Length: 0
  ]]></send>
  <recv response="200"/>
</scenario>
XML
cat > "$work/escape.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="escape caller">
  <send retrans="500"><![CDATA[
      INVITE sip:main@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:escape@[local_ip]:[local_port]>;tag=[pid]E[call_number]
      To: <sip:main@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:escape@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=escape 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0
  ]]></send>
  <pause milliseconds="300"/>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_0.pcap"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
  ]]></send>
</scenario>
XML

(cd "$work" && HOTLINE_TOKEN=bench HOTLINE_LOG=warn taskset -c 1 "$OLDPWD/target/release/hotline" serve --config hotline.toml 2>"$work/server.log") &
server=$!
sleep 1
pid=$(pgrep -P "$server" hotline || echo "$server")
s() { (cd "$work" && taskset -c 0 timeout -k 5 $((RUN_S + 60)) sipp 127.0.0.1:5080 -i 127.0.0.1 -nostdin "$@"); }
# Stops a background SIPp and the processes between it and this script.
stop() { local p; for p in $(pgrep -P "$1"); do stop "$p"; done; kill "$1" 2>/dev/null || true; }
s -sf agent.xml -p 5072 -mp 42000 -m "$CALLS" >/dev/null 2>&1 &
agent=$!
s -sf register.xml -p 5070 -au alice -ap pw -m 1 >/dev/null
if [ "$MESSAGES" = 0 ]; then
  # Bob staffs the background callers' queue without taking calls: they hear hold music.
  curl -sf -H 'Authorization: Bearer bench' -d '{"state":"not-ready","reason":"bench"}' \
    127.0.0.1:18080/api/agents/bob/state >/dev/null
fi
rate=$(( (N + 5) / 6 ))
# SIPp streams each caller's audio from threads of 1,000 calls each: with a thread per 100 calls
# (36 threads at 3,000), its one signalling thread got a 37th of the core and answered late.
s -sf caller.xml -s load -p 5090 -mp 40000 -r "$rate" -l $((N + N / 5)) -m $(( rate * RUN_S )) \
  -rtp_threadtasks 1000 -max_socket 65000 -timeout $((RUN_S + 50))s >/dev/null 2>&1 &
load=$!
sleep 8   # the load ramps up to N
dumpcap -q -i lo -f "udp port 41000 or (udp src port 5080 and udp dst port 5072)" -B 64 -w "$work/escape.pcap" -P 2>/dev/null &
cap=$!
sleep 1
# While the keys are pressed, about every 2 s: the time, the calls hotline has up, its SIP
# retransmissions, the RTP packets it sent, its media ticks that started late, and each core's
# busy and idle ticks (/proc/stat: user nice system idle iowait irq softirq steal).
metrics() {
  curl -s 127.0.0.1:18080/metrics |
    awk '/^hotline_(active_calls|sip_retransmissions_total|rtp_packets_sent_total|media_late_ticks_total) /{printf "%s ", $2}'
}
cores() { awk '/^cpu[01] /{printf "%s %s ", $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
(while sleep 2; do echo "$(date +%s.%N) $(metrics)$(cores)"; done) > "$work/load.txt" 2>/dev/null &
sampler=$!
s -sf escape.xml -p 5074 -mp 41000 -m "$CALLS" -l 1 -r 2 -trace_screen -screen_file escape-screen.txt >/dev/null 2>&1 || true
kill "$sampler" 2>/dev/null || true
kill "$cap" 2>/dev/null || true; wait "$cap" 2>/dev/null || true
loaded=$(kill -0 "$load" 2>/dev/null && echo 1 || echo 0)
wait "$agent" 2>/dev/null || true
stop "$load"; wait "$load" 2>/dev/null || true
kill -INT "$pid" 2>/dev/null || true; wait "$server" 2>/dev/null || true
[ "$loaded" = 1 ] || echo "warning: the background load ended before the key presses did" >&2
python3 - "$work" "$N" "$MESSAGES" <<'PY'
import subprocess, sys
work, n = sys.argv[1], int(sys.argv[2])
load = "each leaving a message" if sys.argv[3] != "0" else "holding in a queue"
out = subprocess.run(["tshark", "-r", f"{work}/escape.pcap", "-T", "fields", "-e", "frame.time_epoch",
                      "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload"],
                     capture_output=True, text=True).stdout
presses, invites, last_ts, last_t = [], [], None, 0.0
# The audio hotline sends each pressing caller, by the port it leaves from: its pacing on the
# wire, under the load.
last_sent, gaps = {}, []
for line in out.splitlines():
    t, sport, dport, payload = line.split("\t")
    t, b = float(t), bytes.fromhex(payload)
    if dport == "41000" and sport != "5080":
        if sport in last_sent:
            gaps.append((t - last_sent[sport]) * 1000)
        last_sent[sport] = t
    elif sport == "41000" and len(b) >= 16 and b[1] & 0x7f == 101:
        ts = int.from_bytes(b[4:8], "big")
        # Every press replays the same capture, so the same RTP timestamp: a new press is
        # a new timestamp or an event packet after a pause.
        if ts != last_ts or t - last_t > 0.5:
            presses.append(t)
        last_ts, last_t = ts, t
    elif sport == "5080" and dport == "5072" and b.startswith(b"INVITE "):
        invites.append(t)
lat, i = [], 0
for p in presses:
    while i < len(invites) and invites[i] < p:
        i += 1
    if i < len(invites):
        lat.append((invites[i] - p) * 1000)
        i += 1
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
if lat:
    print(f"N={n} ({load}): {len(presses)} key presses, {len(lat)} agent INVITEs; escape -> INVITE "
          f"p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1]:.2f} ms")
else:
    print(f"N={n}: no key press matched an INVITE; see {work}")
# Samples: (time, calls up, retransmissions, RTP sent, late ticks, core 0 busy, core 0 idle,
# core 1 busy, core 1 idle).
rows = [[float(x) for x in l.split()] for l in open(f"{work}/load.txt") if len(l.split()) == 9]
if len(rows) > 1:
    first, last = rows[0], rows[-1]
    d = [b - a for a, b in zip(first, last)]
    up = sorted(int(r[1]) for r in rows)
    busy = lambda core: 100 * d[5 + 2 * core] / max(1, d[5 + 2 * core] + d[6 + 2 * core])
    median = up[len(up) // 2]
    per_call, late = d[3] / d[0] / max(1, median), d[4] / d[0]
    print(f"  while pressing: {up[0]}-{up[-1]} calls up (median {median}), "
          f"{d[2] / d[0]:.0f} SIP retransmissions/s, "
          f"core 0 (SIPp) {busy(0):.0f}% busy, core 1 (hotline) {busy(1):.0f}% busy")
    print(f"  media: {per_call:.1f} RTP packets/s sent per call (50 when paced), "
          f"{late:.1f} ticks/s started late")
    gaps.sort()
    if gaps:
        g = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))]
        print(f"  the pressing callers' audio on the wire: gaps p50 {g(0.5):.2f} ms, "
              f"p99 {g(0.99):.2f} ms, max {gaps[-1]:.2f} ms ({len(gaps)} gaps)")
    # A call's audio is a packet every 20 ms: below that the server is past its capacity and
    # the latency above is not a figure at this load.
    if per_call < 49:
        print("  warning: hotline sent fewer packets than the calls need: it is over capacity "
              "at this load, and the latency above is not a figure at this load")
    elif late > 1:
        print("  warning: more than one tick a second started over 5 ms late: the calls got "
              "their packets (49 or more a second), with the jitter in the gaps above")
PY
