# ccmon as an image: the `ccmon` command (worker, gateway, simulate, replay, demo).
#   docker build -t ccmon .        (or `docker compose up`, which builds it)
#   docker run --rm ccmon worker --help
# Every dependency installs from a wheel for CPython 3.11 on x86-64: no compiler needed.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Only what `pip install .` reads (pyproject.toml fixes these four package folders).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ccmon ./ccmon
COPY stream ./stream
COPY consumers ./consumers
COPY alerts ./alerts
RUN pip install . && rm -rf /src

# Unprivileged; the worker keeps Faust's data folder (ccmon-data/) in its working directory.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/ccmon ccmon
USER ccmon
WORKDIR /var/lib/ccmon

# Worker /metrics (CCMON_METRICS_PORT), gateway /ws, page and /metrics (CCMON_WS_PORT).
# Both listen on 127.0.0.1 unless CCMON_BIND says otherwise (0.0.0.0 in a container).
EXPOSE 9464 8765
ENTRYPOINT ["ccmon"]
CMD ["--help"]
