#!/bin/sh
# The aiops container: a Ray head, then `serve deploy` of serve_config.yaml, then wait.
# serve_config.yaml binds Serve to 127.0.0.1 (a laptop default); in a container it must listen on
# all interfaces, so a copy with http_options.host 0.0.0.0 is deployed (everything else as is).
set -eu
CONFIG=${AIOPS_SERVE_CONFIG:-/app/serve_config.yaml}
python -c '
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config.setdefault("http_options", {})["host"] = "0.0.0.0"
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
' "$CONFIG" /tmp/serve_config.yaml

ray start --head --dashboard-host=0.0.0.0 --disable-usage-stats --num-cpus="${AIOPS_NUM_CPUS:-4}"
trap 'ray stop; exit 0' TERM INT

tries=0
until serve deploy /tmp/serve_config.yaml; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then echo "serve deploy failed 30 times" >&2; ray stop; exit 1; fi
    sleep 2
done
echo "ray-aiops deployed: http://0.0.0.0:8000/health, Ray dashboard on :8265"
while :; do sleep 3600 & wait $!; done
