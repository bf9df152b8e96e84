# The training image: runs the factory's steps (`Z4_EXECUTION=container`, one pod per step on
# Kubernetes). Built by `z4 image build`, never by hand, and never from a registry's base image:
# the build context holds only rootfs.tar, which `z4 image build` makes with mmdebstrap from
# Debian's own packages plus the hashed lock (requirements.lock, every wheel --require-hashes
# --no-deps, torch from the local CPU wheel) and the project's own wheel; pip is removed after.
# `podman build --timestamp <commit time>` makes the image digest depend on the inputs only.
# Checked statically by `z4 ci-gate` (dockerfile gate: hadolint, no floating base, non-root user,
# no package manager or network tool, no unhashed pip install).
FROM scratch
ADD rootfs.tar /
ADD project.tar /
ENV PATH=/opt/z4/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_INDEX=1 \
    HOME=/home/z4 \
    Z4_ENV_LOCK=/opt/z4/requirements.lock
WORKDIR /home/z4
USER 10001:10001
CMD ["python", "-m", "z4_assets.cli", "--help"]
