"""One partition per Z3 snapshot: `<dataset_id>@<snapshot_id>`. Every factory asset is partitioned by
it, so an asset reads its upstream only from its own snapshot, and a blocked snapshot's status never
repaints another's."""

import dagster as dg

snapshots = dg.DynamicPartitionsDefinition(name="z3_snapshots")
PARTITION_TAG = "dagster/partition"   # the run's partition, as Dagster tags it
INVOCATION_TAG = "z4/invocation"      # `z4 run` finds the run it launched by this tag
