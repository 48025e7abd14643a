# One image, two uses:
#   - a Lambda container image for the archival sink (the default command: our runtime loop,
#     python -m archiver.runtime, which speaks Lambda's Runtime API itself), and
#   - the CLIs: docker run IMAGE archiver ingest ... / docker run IMAGE replayer events ...
# Build: docker build -t dynamodb-stream-archive .

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY archiver ./archiver
COPY replayer ./replayer
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -c constraints.txt '.[crt]' \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin archiver
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER 10001
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["python", "-m", "archiver.runtime"]
