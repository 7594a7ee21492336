"""Run inside the container's network namespace: /healthz, then one chat request with the official client."""

from __future__ import annotations

import json
import sys
import time

import httpx
import openai

base, key = sys.argv[1], sys.argv[2]
health = httpx.get(f"{base}/healthz", timeout=10).json()
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
served = [m.id for m in client.models.list().data]
# The starter (the default embeddings deployment is listed too, and answers /v1/embeddings only).
model = "smollm2-135m-instruct" if "smollm2-135m-instruct" in served else served[0]
deadline = time.monotonic() + 240
while True:  # READY comes before the starter's backend has loaded: 503 until then
    try:
        answer = client.chat.completions.create(model=model, max_tokens=24, temperature=0, messages=[
            {"role": "user", "content": "What is the capital of France?"}])
        break
    except openai.InternalServerError:
        if time.monotonic() > deadline:
            raise
        time.sleep(1)
unauthorized = httpx.get(f"{base}/v1/models", timeout=10).status_code
print(json.dumps({"health": health, "model": model, "answer": answer.choices[0].message.content,
                  "no_key_status": unauthorized}))
