# syntax=docker/dockerfile:1.7
#
# kube-vrrp: one image, two entrypoints (docs/container-image.md).
#
#   operator  kube-vrrp-operator               the default command; runs as uid 65532
#   daemon    vrrpd run --kube --node NODE     the per-node pods the operator creates; they
#                                              set runAsUser 0 with capabilities: drop ALL,
#                                              add NET_ADMIN and NET_RAW, nothing else
#
# The daemon needs root: Kubernetes adds capabilities to the bounding, permitted and
# effective sets of uid 0 only (no ambient capabilities for other users), and file
# capabilities on the interpreter would be ignored under allowPrivilegeEscalation: false
# (no_new_privs) and would break the operator, whose pods drop ALL. So the daemon is root
# without privileges: raw sockets (VRRP, gratuitous ARP / NA) and addresses on interfaces.
#
# Build: docker build -t kube-vrrp/vrrpd:0.1.0 .      (BuildKit: the heredoc below)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the kube-vrrp wheel and a wheel of every pinned dependency -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CONSTRAINT=/src/constraints.txt \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every package the image installs, at the versions the tests ran with (Python 3.11,
# linux/amd64). PIP_CONSTRAINT applies it to the isolated build of our wheel too
# (setuptools). tests/chart/test_image.py installs the same set into a fresh venv.
COPY <<EOF /src/constraints.txt
setuptools==84.2.1
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiohttp-retry==2.9.1
aiosignal==1.4.0
annotated-types==0.8.0
attrs==26.1.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
durationpy==0.11
frozenlist==1.8.0
idna==3.20
iso8601==2.1.0
jsonpatch==1.47
jsonpointer==3.12
kopf==1.45.2
kubernetes==37.0.2
multidict==7.2.1
oauthlib==4.0.1
propcache==0.5.4
pydantic==2.14.3
pydantic_core==2.50.4
python-dateutil==4.0.0
python-json-logger==4.2.0
PyYAML==6.0.3
requests==2.34.2
requests-oauthlib==2.0.0
typing-inspection==0.4.5
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
websocket-client==1.9.2
yarl==1.25.1
EOF
COPY pyproject.toml README.md ./
COPY vrrpd/ vrrpd/
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels ".[operator]"

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kube-vrrp" \
      org.opencontainers.image.description="Floating VIPs for bare-metal Kubernetes: vrrpd and its operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Only the wheels, from the build stage, offline (--no-index): no compiler, no sources and
# no wheel files stay in the image. Importing both packages proves the install is whole.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/constraints.txt,target=/constraints.txt \
    pip install --no-index --find-links /wheels --constraint /constraints.txt "kube-vrrp[operator]" \
    && vrrpd --help > /dev/null \
    && python -c "import vrrp_operator.handlers, vrrpd.daemon" \
    && groupadd --system --gid 65532 kube-vrrp \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kube-vrrp
USER 65532:65532
CMD ["kube-vrrp-operator"]
