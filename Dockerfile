# authsvc image: slim Python, the package installed as `make venv` installs it (pip with
# constraints.txt, no dev extras), run as an unprivileged numeric user.
#   docker build -t ghcr.io/authsvc/authsvc:0.1.0 .
# Works with readOnlyRootFilesystem: bytecode is compiled at build time, nothing is written.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY authsvc ./authsvc
RUN python -m venv /opt/authsvc \
 && /opt/authsvc/bin/python -m pip install -q --upgrade pip \
 && /opt/authsvc/bin/python -m pip install -q -c constraints.txt . \
 && /opt/authsvc/bin/python -m compileall -q /opt/authsvc

FROM python:3.11-slim
ENV PATH=/opt/authsvc/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# iptables (nft backend) for the opt-in authsvc-redirect init container (inject
# --inbound-redirect), which runs this image as root with NET_ADMIN; the server never uses it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 authsvc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin authsvc
COPY --from=build /opt/authsvc /opt/authsvc
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
ENTRYPOINT ["authsvc"]
CMD ["serve"]
