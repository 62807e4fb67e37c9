#!/usr/bin/env bash
# The main job end to end: a local Apache Kafka broker, a synthetic clickstream, a small model
# trained on the spot, the live scoring flow, the stream replayed into it, thresholds changed
# live, scores on the risk topic and the Prometheus metrics URL.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
DC=.venv/bin/deepcredit
# A fresh set of topics per run, so the scores shown are this run's.
export DEEPCREDIT_TOPIC_PREFIX="demo-$(date +%Y%m%d-%H%M%S)-"
METRICS_PORT=${DEEPCREDIT_METRICS_PORT:-9464}
GATEWAY_PORT=${DEEPCREDIT_GATEWAY_PORT:-8080}
GATEWAY=
mkdir -p data

echo "== starting Apache Kafka (single node, KRaft, 127.0.0.1:9092) and topics ${DEEPCREDIT_TOPIC_PREFIX}*"
$DC kafka up

echo "== generating a synthetic clickstream (200 users, about 100,000 events)"
$DC generate --users 200 --seed 1 --out data/demo-events.jsonl --quiet > data/demo-stats.txt
head -8 data/demo-stats.txt

echo "== training a small model on it (hidden size 16, 8 short epochs, about 40 s; the 10,000-user model is in the README)"
$DC train --events data/demo-events.jsonl --out-dir artifacts/models --hidden 16 --epochs 8 \
    --batch-users 8 --lr 0.003 --quiet
MODEL=$(ls -td artifacts/models/dc-* | head -1)

echo "== starting the live flow: deepcredit serve --model $MODEL"
$DC serve --model "$MODEL" --recovery-dir "data/recovery/$DEEPCREDIT_TOPIC_PREFIX" \
    --metrics-port "$METRICS_PORT" > data/serve.log 2>&1 &
FLOW=$!
trap 'kill -TERM $FLOW $GATEWAY 2>/dev/null; wait $FLOW $GATEWAY 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do  # ready when its metrics endpoint answers; stop if it died
    kill -0 $FLOW 2>/dev/null || { tail -5 data/serve.log >&2; echo "deepcredit: the flow did not start; see data/serve.log" >&2; exit 1; }
    .venv/bin/python - "$METRICS_PORT" "$(basename "$MODEL")" 2>/dev/null <<'PY' && break
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=1).read().decode()
sys.exit(f'version="{sys.argv[2]}"' not in text)  # our flow's endpoint, not an older one's
PY
    sleep 1
done
$DC thresholds show

echo "== replaying the clickstream into Kafka at 4,000 events/s (plus two malformed lines)"
{ cat data/demo-events.jsonl; printf '%s\n' 'not json' '{"event_id": "e-1", "user_id": "u-1"}'; } \
    > data/demo-stream.jsonl
$DC replay data/demo-stream.jsonl --rate 4000 --quiet &
REPLAY=$!
sleep 8
echo "== risk operations tighten the default thresholds, live, while events flow"
$DC thresholds set --default-review 0.05 --default-decline 0.12 --by demo --note "demo: tighter" --yes
wait $REPLAY

POSTS=$(grep -c '"activity":"post"' data/demo-events.jsonl)
echo "== waiting for the flow to score all $POSTS loan posts"
for _ in $(seq 1 120); do
    SCORED=$($DC scores --latest 0 | awk '/^scored posts/ {gsub(",", "", $3); print $3}')
    [ "${SCORED:-0}" -ge "$POSTS" ] && break
    sleep 1
done
$DC scores --latest 5
echo "== metrics at http://127.0.0.1:$METRICS_PORT/metrics (excerpt)"
.venv/bin/python - "$METRICS_PORT" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("deepcredit_scores_total", "deepcredit_decisions_total",
                        "deepcredit_dead_letters_total", "deepcredit_users_in_state",
                        "deepcredit_thresholds_version", "deepcredit_event_to_score_seconds_count",
                        "bytewax_kafka_consumer_lag")):
        print("  " + line)
PY
[ "${SCORED:-0}" -ge "$POSTS" ] || { echo "deepcredit: only ${SCORED:-0} of $POSTS posts scored; see data/serve.log" >&2; exit 1; }

echo "== one loan post scored on request: deepcredit gateway on port $GATEWAY_PORT, POST /v1/score"
$DC gateway --port "$GATEWAY_PORT" --flow-url "http://127.0.0.1:$METRICS_PORT" > data/gateway.log 2>&1 &
GATEWAY=$!
.venv/bin/python - "$GATEWAY_PORT" data/demo-events.jsonl <<'PY'
import json, sys, time, uuid
import msgspec
from deepcredit.client import GatewayClient
from deepcredit.codec import encode_click
from deepcredit.events import Activity, ClickEvent

first = json.loads(open(sys.argv[2]).readline())
user = first["user_id"]  # a user with a history, asking for a new loan after its last event
last = max(e["ts"] for e in map(json.loads, open(sys.argv[2])) if e.get("user_id") == user)
run = uuid.uuid4().hex[:8]
post = ClickEvent(event_id=f"demo-{run}", user_id=user, ts=last + 3600, activity=Activity.POST,
                  amount=2500.0, loan_id=f"demo-loan-{run}", rate=0.18, term_days=90)
with GatewayClient(f"http://127.0.0.1:{sys.argv[1]}") as gw:
    for _ in range(60):
        if gw.ready():
            break
        time.sleep(0.5)
    print("  request:", encode_click(post).decode())
    print("  answer: ", msgspec.json.encode(gw.score(post)).decode())
PY
cat <<TXT

Done: $SCORED loan posts scored live by model $(basename "$MODEL") and written to the topic
${DEEPCREDIT_TOPIC_PREFIX}risk-scores; the malformed lines went to ${DEEPCREDIT_TOPIC_PREFIX}dead-letter.
The gateway answered one more post on request (data/gateway.log). The flow and the gateway stop
now (the flow's state is kept in data/recovery/). The broker keeps running; stop it with
  .venv/bin/deepcredit kafka down
TXT
