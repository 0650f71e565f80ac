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
# Build: `make image` (podman, docker or buildah; a base from Debian packages where no
# registry is reachable), or `docker build -t kube-vrrp/vrrpd:0.1.0 .`. No heredocs and no
# BuildKit-only syntax: bookworm's buildah 1.28 builds it unchanged.

# Any Debian-based image with Python 3.11 and its venv module: the registry's python image,
# or the one `make image` builds from Debian packages (scripts/image).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: a venv holding kube-vrrp and every pinned dependency ------------------------------
FROM ${BASE_IMAGE} AS build
# Marks the build stage's cached images, which .ci/run removes from earlier runs.
LABEL io.kube-vrrp.stage="build"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# binutils for `strip`: PyPI's wheels ship their C extensions with symbol tables and debug
# information (about 10 MB of the venv), which nothing at run time reads. Debian's mirror,
# over plain HTTP as apt verifies packages by signature.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# constraints.txt pins every package the image installs to the version the tests ran with
# (Python 3.11, linux/amd64); PIP_CONSTRAINT applies it to the isolated build of our wheel
# too (setuptools).
COPY constraints.txt pyproject.toml README.md ./
COPY vrrpd/ vrrpd/
COPY operator/ operator/
COPY scripts/prune_venv.py scripts/
# The optional secret `build-ca` is a CA bundle for pip, where HTTPS goes through an
# intercepting proxy (scripts/image hands over the host's when the host's pip uses one); it
# is mounted for this step only and never lands in a layer. Byte code is compiled once
# here, with hashes that are not checked against sources (the tree never changes), because
# the pods' root filesystem is read-only: nothing could cache it at run time.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
    && python3 -m venv /opt/kube-vrrp \
    && PIP_CONSTRAINT=/src/constraints.txt \
        /opt/kube-vrrp/bin/pip install --no-compile ".[operator]" \
    && /opt/kube-vrrp/bin/pip uninstall --yes pip setuptools \
    && /opt/kube-vrrp/bin/python scripts/prune_venv.py \
    && find /opt/kube-vrrp -name "*.so" -exec strip --strip-unneeded {} + \
    && /opt/kube-vrrp/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        /opt/kube-vrrp/lib

# --- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="kube-vrrp" \
      org.opencontainers.image.description="Floating VIPs for bare-metal Kubernetes: vrrpd and its operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kube-vrrp/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# nftables: the daemon's accept: false is a table it writes with `nft -f` (vrrpd/net/nft.py).
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables \
        >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && nft --version >/dev/null
# Only the venv: no pip, compiler, sources, wheels or caches. Running both entrypoints
# proves the install is whole.
COPY --from=build /opt/kube-vrrp /opt/kube-vrrp
RUN vrrpd --help > /dev/null \
    && python -c "import vrrp_operator.handlers, vrrpd.daemon" \
    && groupadd --system --gid 65532 kube-vrrp \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kube-vrrp
USER 65532:65532
CMD ["kube-vrrp-operator"]
