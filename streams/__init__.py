"""The Faust stream processors: enrich readings with the registry, evaluate ``rules``, emit alert events.

Not built yet (issue 4). Readings arrive on Kafka as ``smartcity.contracts.ReadingBatch`` records, one record per
group of devices that hash to the same partition, so per-device tables stay co-partitioned.
"""
