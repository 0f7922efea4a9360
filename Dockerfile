# sagashop: one image for every process (the front door and each service group); what a
# container runs is chosen by its flags or environment (`python run.py --help`).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 10001 sagashop \
    && useradd --create-home --no-log-init --uid 10001 --gid sagashop sagashop

WORKDIR /app
# The package first, so that editing run.py does not reinstall every dependency.
COPY pyproject.toml README.md ./
COPY sagashop ./sagashop
RUN pip install --no-cache-dir './[otel]' \
    && mkdir /app/data \
    && chown sagashop:sagashop /app/data
COPY run.py ./

USER 10001:10001

# Listen beyond the container; the data directory serves SQLite and the embedded Redis when no
# DATABASE_URL or REDIS_URL is given (a single `docker run`).
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data
EXPOSE 3000

# slim has no curl: Python asks /readyz (an error status raises, and the check fails).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/readyz\", timeout=4)"]

ENTRYPOINT ["python", "run.py"]
