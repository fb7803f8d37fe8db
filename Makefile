# Two commands matter: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PACKAGES := mikey mikey_cli srtp sdp sipglue rtspglue
APT_PEERS := sip-tester tshark gstreamer1.0-tools gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gir1.2-gst-plugins-base-1.0 \
	gir1.2-gst-rtsp-server-1.0 python3-gi ffmpeg kamailio iproute2 util-linux openssl

.PHONY: demo test lint typecheck pytest peers venv bench fuzz clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The C accelerator (mikey/_speedups.c) builds against OpenSSL's headers; as root they are
# installed when missing (without them the install still works, on the pure-Python code).
$(STAMP): $(PY) pyproject.toml mikey/_speedups.c
	@if [ "$$(id -u)" = "0" ] && ! dpkg -s libssl-dev >/dev/null 2>&1; then \
	  apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libssl-dev >/dev/null; \
	fi
	$(PIP) install -q -e '.[dev,media]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# Real peers (docs/INTEROP.md), installed only when run as root and something is missing.
peers:
	@if [ "$$(id -u)" = "0" ]; then \
	  missing=""; \
	  for p in $(APT_PEERS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing peers:$$missing"; \
	    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	    apt-get update -q >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping Debian peer installation"; fi

demo: $(STAMP)
	$(PY) -m samples.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict $(PACKAGES)

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

test: $(STAMP) peers lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench

# Coverage-guided fuzzing (atheris when it installs, else the pure-Python mutation fuzzer).
# FUZZ_ARGS e.g. "--time 600 --crypto-time 300 --jobs 2 --report fuzz.md"
fuzz: $(STAMP)
	$(PIP) install -q 'atheris>=2.3' || echo "atheris unavailable: using the pure-Python fuzzer"
	$(PY) -m tests.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
