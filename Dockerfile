# Worker image for docker-compose.yml: `docker compose build worker` or `docker build -t parcel-screener .`
FROM python:3.11-slim

# site-packages is read-only for the worker user, so Numba caches compiled kernels in /tmp.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    SCREENER_DATA_DIR=/tmp/screener-data

WORKDIR /app
# Dependencies in their own layer (installed with an empty package), so a code change does not
# reinstall numba and friends.
COPY pyproject.toml README.md ./
RUN mkdir screener && touch screener/__init__.py && pip install . && pip uninstall -y parcel-screener \
    && rm -rf screener build *.egg-info && useradd --create-home --uid 10001 screener
COPY screener ./screener
RUN pip install --no-deps . && rm -rf build *.egg-info
# The default rule pack is read from rules/ relative to the working directory.
COPY rules ./rules

USER screener
EXPOSE 9100
CMD ["screener", "worker", "--broker", "kafka://kafka:9092", "--metrics-port", "9100"]
