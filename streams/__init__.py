"""The Faust stream processors: enrich readings with the registry, evaluate ``rules``, emit findings.

Readings arrive on Kafka as ``core.contracts.ReadingBatch`` records, one record per group of devices that hash
to the same partition, so per-device tables stay co-partitioned. The app, its topics, agents and tables are in
``streams.app``; one worker process is ``smartcity streams`` (docs/rules.md).
"""
