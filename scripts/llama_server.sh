#!/usr/bin/env bash
# Install (if missing) and start llama-cpp-python's OpenAI-compatible server on a GGUF model.
#   scripts/llama_server.sh [MODEL.gguf|smollm2|gemma3-270m] [PORT]
# Prints the server's pid; stop it with `kill <pid>`. Logs go to ${LOG:-/tmp/llama_server.$PORT.log}.
set -euo pipefail
PY=${PYTHON:-python}
MODEL=${1:-smollm2}
PORT=${2:-8012}
LLAMA_CPP_VERSION=${LLAMA_CPP_VERSION:-0.3.36}
if ! "$PY" -c "import llama_cpp.server, uvicorn, fastapi, sse_starlette, starlette_context, pydantic_settings" 2>/dev/null; then
  # builds llama.cpp from source (~6 min on 2 cores); portable CPU build
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PY" -m pip install "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
fi
case "$MODEL" in
  smollm2|gemma3-270m) MODEL=$("$PY" -c "from rankstack.llm.backends.models import resolve_model as r; print(r('$MODEL').gguf_path)");;
esac
LOG=${LOG:-/tmp/llama_server.$PORT.log}
"$PY" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --n_ctx 2048 \
  --logits_all true --n_threads "${THREADS:-1}" --verbose false > "$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 120); do
  if "$PY" -c "import httpx,sys; sys.exit(0 if httpx.get('http://127.0.0.1:$PORT/v1/models', timeout=1).status_code==200 else 1)" 2>/dev/null; then
    echo "$PID"; exit 0
  fi
  kill -0 "$PID" 2>/dev/null || { echo "server died; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
  sleep 1
done
echo "server did not answer on port $PORT in 120 s; see $LOG" >&2; kill "$PID"; exit 1
