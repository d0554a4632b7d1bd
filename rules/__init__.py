"""Pure hazard logic: a reading plus state in, findings out. No Kafka, MQTT, HTTP or Faust here (issue 4).

``pack`` loads a rule pack; ``kinds`` is the table of rule kinds, each a module of its own (``threshold``, ``rate``,
``condition``, ``offline``, ``site``) built on ``rule`` (what a rule is, and the stages the engine runs rules at).
``engine`` evaluates a device's rules on its ``state``; all of them share the alarm state machine of ``alarm``.
``window`` is the rate rules' event-time window, ``dedup`` recognises redelivered readings.
"""
