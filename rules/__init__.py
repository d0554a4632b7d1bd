"""Pure hazard logic: a reading plus state in, findings out. No Kafka, MQTT, HTTP or Faust here (issue 4)."""
