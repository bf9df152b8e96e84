"""The build and security lane: lockfile, lint, SAST, secrets, SCA, SBOM and image checks.

Each module runs one check and returns a `LaneResult`; `runner.run_lane` runs them all and
prints the PASS/FAIL table (`z4 ci-gate`). No Dagster import here: the lane guards the build.
"""
